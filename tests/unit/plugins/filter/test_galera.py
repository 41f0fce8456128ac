"""Unit tests of the galera filters: the bootstrap decision and the parsers it reads."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloudpatterns.mysql.plugins.filter.galera import (
    galera_grastate,
    galera_plan,
    galera_recovered_seqno,
)

UUID = "8c1b4f6e-7a52-11ef-9d2f-2b8b1c0c5a11"
NODES = ["manager", "worker1", "worker2", "worker3"]


def state(host: str, **overrides: object) -> dict[str, object]:
    base = {"host": host, "running": False, "cluster_status": "", "uuid": UUID, "seqno": -1, "safe_to_bootstrap": False}
    base.update(overrides)
    return base


def test_grastate_of_a_clean_shutdown() -> None:
    text = f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   1234\nsafe_to_bootstrap: 1\n"
    assert galera_grastate(text) == {"uuid": UUID, "seqno": 1234, "safe_to_bootstrap": True}


def test_grastate_missing_or_never_joined() -> None:
    assert galera_grastate("") == {"uuid": "", "seqno": -1, "safe_to_bootstrap": False}
    zero = "uuid: 00000000-0000-0000-0000-000000000000\nseqno: -1\nsafe_to_bootstrap: 0\n"
    assert galera_grastate(zero)["uuid"] == ""


def test_grastate_unreadable() -> None:
    with pytest.raises(AnsibleFilterError, match="not readable"):
        galera_grastate(f"uuid: {UUID}\nseqno: twelve\n")


def test_running_primary_means_join_never_bootstrap() -> None:
    states = [state("manager", running=True, cluster_status="Primary")] + [state(h) for h in NODES[1:]]
    plan = galera_plan(states, "manager")
    assert plan["action"] == "join" and plan["host"] is None


def test_running_primary_wins_even_when_another_node_is_safe() -> None:
    states = [state("worker1", running=True, cluster_status="Primary"), state("manager", safe_to_bootstrap=True)]
    assert galera_plan(states, "manager")["action"] == "join"


def test_running_without_primary_stops_for_a_human() -> None:
    states = [state("manager", running=True, cluster_status="non-Primary"), state("worker1")]
    plan = galera_plan(states, "manager")
    assert plan["action"] == "fail" and "pc.bootstrap" in plan["reason"]


def test_fresh_cluster_bootstraps_the_preferred_node() -> None:
    states = [state(h, uuid="") for h in NODES]
    assert galera_plan(states, "manager") == {
        "action": "bootstrap",
        "host": "manager",
        "reason": "no node has ever joined",
    }


def test_fresh_cluster_without_the_preferred_node_takes_the_first_name() -> None:
    states = [state(h, uuid="") for h in ["worker2", "worker1"]]
    assert galera_plan(states, "manager")["host"] == "worker1"


def test_full_stop_bootstraps_the_node_that_left_last() -> None:
    states = [state(h) for h in NODES[:3]] + [state("worker3", safe_to_bootstrap=True, seqno=80)]
    plan = galera_plan(states, "manager")
    assert plan["action"] == "bootstrap" and plan["host"] == "worker3"


def test_crash_needs_recovery_first() -> None:
    states = [state(h) for h in NODES]
    assert galera_plan(states, "manager")["action"] == "recover"
    assert galera_plan(states, "manager", recovered={"manager": 3})["action"] == "recover"


def test_crash_bootstraps_the_highest_recovered_position() -> None:
    states = [state(h) for h in NODES]
    recovered = {"manager": 70, "worker1": 80, "worker2": 79, "worker3": 80}
    plan = galera_plan(states, "worker3", recovered=recovered)
    assert plan == {"action": "bootstrap", "host": "worker3", "reason": "it holds the highest recovered seqno (80)"}
    assert galera_plan(states, "manager", recovered=recovered)["host"] == "worker1"


def test_crash_with_no_recoverable_position_fails() -> None:
    states = [state(h) for h in NODES]
    plan = galera_plan(states, "manager", recovered=dict.fromkeys(NODES, -1))
    assert plan["action"] == "fail"


def test_nodes_of_different_clusters_fail() -> None:
    states = [state("manager"), state("worker1", uuid="11111111-2222-3333-4444-555555555555")]
    assert galera_plan(states, "manager")["action"] == "fail"


def test_no_states_is_an_error() -> None:
    with pytest.raises(AnsibleFilterError, match="no node states"):
        galera_plan([], "manager")


def test_recovered_seqno_from_galera_recovery_output() -> None:
    assert galera_recovered_seqno(f"--wsrep_start_position={UUID}:80\n") == 80
    assert galera_recovered_seqno("WSREP: failed to recover\n") == -1
