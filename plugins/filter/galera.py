# Copyright: cloudpatterns.mysql contributors
# Apache License 2.0 (see LICENSE)
"""Decide how a MariaDB Galera cluster starts: join, bootstrap, recover, or stop for a human."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: galera_plan
short_description: Decide which Galera node bootstraps, if any
version_added: 0.1.0
description:
  - C(galera_grastate) parses the text of C(grastate.dat) into uuid, seqno and safe_to_bootstrap.
  - C(galera_plan) takes the state of every node and returns what the cluster must do.
  - C(join) when a node is in a Primary component (never bootstrap a running cluster);
    C(bootstrap) with the node to bootstrap when no node runs (the preferred node for a cluster that never
    formed, else the node marked safe_to_bootstrap, else the node with the highest recovered seqno);
    C(recover) when no node is safe and the recovered positions are still unknown;
    C(fail) when nodes run but none is Primary (a split brain needs a human).
options:
  _input:
    description: One entry per node, with host, running, cluster_status, uuid, seqno and safe_to_bootstrap.
    type: list
    elements: dict
    required: true
  preference:
    description: Node to bootstrap a cluster that never formed; also wins ties.
    type: str
    required: true
  recovered:
    description: After recovery, every node's recovered seqno (host to seqno; -1 when unknown).
    type: dict
"""

EXAMPLES = r"""
- name: Decide how the cluster starts
  ansible.builtin.set_fact:
    plan: "{{ states | cloudpatterns.mysql.galera_plan(groups['cluster_manager'] | first) }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    action:
      description: join, bootstrap, recover or fail.
      type: str
    host:
      description: The node that bootstraps (bootstrap only).
      type: str
    reason:
      description: Why, in a sentence.
      type: str
"""

_NO_UUID = "00000000-0000-0000-0000-000000000000"
_LINE = re.compile(r"^\s*(uuid|seqno|safe_to_bootstrap)\s*:\s*(\S+)\s*$", re.MULTILINE)


def galera_grastate(text: str) -> dict[str, Any]:
    """uuid, seqno and safe_to_bootstrap from grastate.dat (empty text: a node that never joined)."""
    values = dict(_LINE.findall(text or ""))
    try:
        seqno = int(values.get("seqno", "-1"))
        safe = int(values.get("safe_to_bootstrap", "0")) == 1
    except ValueError as error:
        raise AnsibleFilterError(
            f"galera_grastate: grastate.dat is not readable ({error}); inspect it by hand"
        ) from error
    uuid = values.get("uuid", _NO_UUID)
    return {"uuid": "" if uuid == _NO_UUID else uuid, "seqno": seqno, "safe_to_bootstrap": safe}


def _preferred(hosts: Sequence[str], preference: str) -> str:
    return preference if preference in hosts else sorted(hosts)[0]


def galera_plan(
    states: Sequence[Mapping[str, Any]], preference: str, recovered: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """What the cluster must do; see DOCUMENTATION."""
    if not states:
        raise AnsibleFilterError("galera_plan: no node states given; is the Galera group empty?")
    hosts = [state["host"] for state in states]
    primary = [s["host"] for s in states if s.get("running") and s.get("cluster_status") == "Primary"]
    if primary:
        return {"action": "join", "host": None, "reason": f"{', '.join(sorted(primary))} run in a Primary component"}
    running = [s["host"] for s in states if s.get("running")]
    if running:
        return {
            "action": "fail",
            "host": None,
            "reason": (
                f"{', '.join(sorted(running))} run but none is in a Primary component (split brain or lost quorum): "
                "find the node with the latest data (SHOW STATUS LIKE 'wsrep_last_committed') and run "
                "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES' on it, then run the playbook again"
            ),
        }
    uuids = {s.get("uuid") for s in states if s.get("uuid")}
    if not uuids:
        return {"action": "bootstrap", "host": _preferred(hosts, preference), "reason": "no node has ever joined"}
    if len(uuids) > 1:
        return {
            "action": "fail",
            "host": None,
            "reason": (
                f"the nodes hold state of different clusters ({', '.join(sorted(uuids))}); "
                "remove the stray node's grastate.dat"
            ),
        }
    safe = [s["host"] for s in states if s.get("safe_to_bootstrap")]
    if safe:
        return {
            "action": "bootstrap",
            "host": _preferred(safe, preference),
            "reason": "it left the cluster last (safe_to_bootstrap)",
        }
    if not recovered or any(host not in recovered for host in hosts):
        return {
            "action": "recover",
            "host": None,
            "reason": "no node is safe to bootstrap: recover every node's position",
        }
    best = max(int(recovered[host]) for host in hosts)
    if best < 0:
        return {"action": "fail", "host": None, "reason": "no node could recover its position; inspect the error logs"}
    candidates = [host for host in hosts if int(recovered[host]) == best]
    return {
        "action": "bootstrap",
        "host": _preferred(candidates, preference),
        "reason": f"it holds the highest recovered seqno ({best})",
    }


def galera_recovered_seqno(text: str) -> int:
    """The seqno from galera_recovery's output (`--wsrep_start_position=<uuid>:<seqno>`), -1 when absent."""
    match = re.search(r"--wsrep_start_position=[0-9a-f-]+:(-?\d+)", text or "")
    return int(match.group(1)) if match else -1


class FilterModule:
    """Galera filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "galera_grastate": galera_grastate,
            "galera_plan": galera_plan,
            "galera_recovered_seqno": galera_recovered_seqno,
        }
