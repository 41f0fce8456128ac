# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

import random
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cloudpatterns.mysql.plugins.filter.ndb_node_ids import (
    FilterModule,
    ndb_node_ids,
)
from hypothesis import given
from hypothesis import strategies as st

REFERENCE = {
    "mgmd": ["manager"],
    "ndbd": ["worker1", "worker2", "worker3"],
    "mysqld": ["manager", "worker1", "worker2", "worker3"],
}


def ids(result: dict[str, list[dict[str, Any]]], node_type: str) -> dict[str, int]:
    return {entry["host"]: entry["node_id"] for entry in result[node_type]}


def all_ids(result: dict[str, list[dict[str, Any]]]) -> list[int]:
    return [entry["node_id"] for entries in result.values() for entry in entries]


def workers(count: int, prefix: str = "worker") -> list[str]:
    return [f"{prefix}{number}" for number in range(1, count + 1)]


# --- the scheme --------------------------------------------------------------------------------


def test_reference_deployment() -> None:
    assert ndb_node_ids(REFERENCE, replicas=3) == {
        "mgmd": [{"host": "manager", "node_id": 145}],
        "ndbd": [
            {"host": "worker1", "node_id": 1},
            {"host": "worker2", "node_id": 2},
            {"host": "worker3", "node_id": 3},
        ],
        "mysqld": [
            {"host": "manager", "node_id": 146},
            {"host": "worker1", "node_id": 147},
            {"host": "worker2", "node_id": 148},
            {"host": "worker3", "node_id": 149},
        ],
    }


def test_data_nodes_count_from_one() -> None:
    result = ndb_node_ids({"mgmd": ["m"], "ndbd": ["a", "b", "c", "d"]})
    assert ids(result, "ndbd") == {"a": 1, "b": 2, "c": 3, "d": 4}


def test_management_nodes_start_above_data_node_range() -> None:
    result = ndb_node_ids({"mgmd": ["m1", "m2"], "ndbd": ["a", "b"]})
    assert ids(result, "mgmd") == {"m1": 145, "m2": 146}


def test_sql_nodes_follow_management_nodes() -> None:
    result = ndb_node_ids(
        {"mgmd": ["m1", "m2"], "ndbd": ["a", "b"], "mysqld": ["s1", "m1"]}
    )
    assert ids(result, "mysqld") == {"m1": 147, "s1": 148}


def test_host_under_several_types_gets_one_id_per_type() -> None:
    result = ndb_node_ids(REFERENCE, replicas=3)
    assert ids(result, "mgmd")["manager"] != ids(result, "mysqld")["manager"]
    assert ids(result, "ndbd")["worker1"] != ids(result, "mysqld")["worker1"]


def test_natural_sort_puts_worker2_before_worker10() -> None:
    result = ndb_node_ids(
        {"mgmd": ["m"], "ndbd": ["worker10", "worker2", "worker1", "worker11"]}
    )
    assert ids(result, "ndbd") == {
        "worker1": 1,
        "worker2": 2,
        "worker10": 3,
        "worker11": 4,
    }


def test_natural_sort_orders_names_equal_in_value() -> None:
    result = ndb_node_ids({"mgmd": ["m"], "ndbd": ["w1", "w01"]})
    assert ids(result, "ndbd") == {"w01": 1, "w1": 2}


def test_input_order_does_not_matter() -> None:
    shuffled = {
        "mysqld": ["worker3", "manager", "worker2", "worker1"],
        "ndbd": ["worker3", "worker1", "worker2"],
        "mgmd": ["manager"],
    }
    assert ndb_node_ids(shuffled, replicas=3) == ndb_node_ids(REFERENCE, replicas=3)


def test_output_lists_are_sorted_by_node_id() -> None:
    result = ndb_node_ids(
        {"mgmd": ["m"], "ndbd": ["a", "b", "c", "d"]},
        pins={"c": {"ndbd": 1}, "a": {"ndbd": 100}},
    )
    assert [entry["node_id"] for entry in result["ndbd"]] == [1, 2, 3, 100]
    assert [entry["host"] for entry in result["ndbd"]] == ["c", "b", "d", "a"]


def test_sql_nodes_are_optional() -> None:
    assert ndb_node_ids({"mgmd": ["m"], "ndbd": ["a"]}, replicas=1)["mysqld"] == []
    assert (
        ndb_node_ids({"mgmd": ["m"], "ndbd": ["a"], "mysqld": []}, replicas=1)["mysqld"]
        == []
    )


def test_tuples_are_accepted_as_host_lists() -> None:
    result = ndb_node_ids({"mgmd": ("m",), "ndbd": ("a", "b")})
    assert ids(result, "ndbd") == {"a": 1, "b": 2}


# --- pins ----------------------------------------------------------------------------------------


def test_pin_is_honoured() -> None:
    result = ndb_node_ids(REFERENCE, pins={"manager": {"mgmd": 1}}, replicas=3)
    assert ids(result, "mgmd") == {"manager": 1}


def test_automatic_data_node_ids_skip_pins() -> None:
    result = ndb_node_ids(REFERENCE, pins={"manager": {"mgmd": 1}}, replicas=3)
    assert ids(result, "ndbd") == {"worker1": 2, "worker2": 3, "worker3": 4}


def test_automatic_high_ids_skip_pins() -> None:
    result = ndb_node_ids(REFERENCE, pins={"worker2": {"mysqld": 145}}, replicas=3)
    assert ids(result, "mgmd") == {"manager": 146}
    assert ids(result, "mysqld") == {
        "worker2": 145,
        "manager": 147,
        "worker1": 148,
        "worker3": 149,
    }


def test_pinned_data_node_keeps_its_id() -> None:
    result = ndb_node_ids(REFERENCE, pins={"worker3": {"ndbd": 1}}, replicas=3)
    assert ids(result, "ndbd") == {"worker3": 1, "worker1": 2, "worker2": 3}


def test_pins_none_means_no_pins() -> None:
    assert ndb_node_ids(REFERENCE, pins=None, replicas=3) == ndb_node_ids(
        REFERENCE, replicas=3
    )


# --- limits that are allowed ---------------------------------------------------------------------


def test_144_data_nodes_fill_1_to_144() -> None:
    result = ndb_node_ids({"mgmd": ["m"], "ndbd": workers(144)})
    assert sorted(ids(result, "ndbd").values()) == list(range(1, 145))


def test_255_nodes_fill_every_id() -> None:
    result = ndb_node_ids(
        {"mgmd": ["m"], "ndbd": workers(144), "mysqld": workers(110, "sql")}
    )
    assert sorted(all_ids(result)) == list(range(1, 256))


@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_replicas_1_to_4_are_accepted(replicas: int) -> None:
    result = ndb_node_ids({"mgmd": ["m"], "ndbd": workers(12)}, replicas=replicas)
    assert len(result["ndbd"]) == 12


# --- invalid input -------------------------------------------------------------------------------


def fails(match: str, nodes: Any, **kwargs: Any) -> None:
    with pytest.raises(AnsibleFilterError, match=match) as error:
        ndb_node_ids(nodes, **kwargs)
    assert str(error.value).startswith("ndb_node_ids: ")


def test_duplicate_pin_across_hosts() -> None:
    fails(
        r"duplicate pin: id 7 .*'worker1'.*'worker2'.*give each pinned node its own id",
        REFERENCE,
        pins={"worker1": {"ndbd": 7}, "worker2": {"ndbd": 7}},
        replicas=3,
    )


def test_duplicate_pin_across_types_of_one_host() -> None:
    fails(
        r"duplicate pin: id 200 .*own id",
        REFERENCE,
        pins={"manager": {"mgmd": 200, "mysqld": 200}},
        replicas=3,
    )


@pytest.mark.parametrize("node_id", [0, -1, 256, 1000])
def test_pin_outside_1_to_255(node_id: int) -> None:
    fails(
        r"is not an id within 1\.\.255; pin an integer",
        REFERENCE,
        pins={"manager": {"mysqld": node_id}},
        replicas=3,
    )


@pytest.mark.parametrize("node_id", ["1", 1.0, True, None])
def test_pin_that_is_not_an_integer(node_id: Any) -> None:
    fails(
        r"is not an id within 1\.\.255; pin an integer",
        REFERENCE,
        pins={"manager": {"mgmd": node_id}},
        replicas=3,
    )


@pytest.mark.parametrize("node_id", [145, 255])
def test_data_node_pin_above_144(node_id: int) -> None:
    fails(
        r"'ndbd' is above 144; data node ids must be within 1\.\.144",
        REFERENCE,
        pins={"worker1": {"ndbd": node_id}},
        replicas=3,
    )


def test_pin_for_unknown_host() -> None:
    fails(
        r"pin for host 'ghost' as 'mgmd'.*add 'ghost' under 'mgmd' .*or remove the pin",
        REFERENCE,
        pins={"ghost": {"mgmd": 1}},
        replicas=3,
    )


def test_pin_for_type_the_host_does_not_run() -> None:
    fails(
        r"pin for host 'manager' as 'ndbd', but the input has no such node",
        REFERENCE,
        pins={"manager": {"ndbd": 1}},
        replicas=3,
    )


def test_pin_for_unknown_type() -> None:
    fails(
        r"pin for host 'manager' names unknown node type 'api'; use mgmd, ndbd or mysqld",
        REFERENCE,
        pins={"manager": {"api": 1}},
        replicas=3,
    )


@pytest.mark.parametrize("pins", [["manager"], "manager=1", []])
def test_pins_not_a_mapping(pins: Any) -> None:
    fails(
        r"pins must be a mapping of host to \{type: id\}.*pins=\{'manager'",
        REFERENCE,
        pins=pins,
        replicas=3,
    )


def test_pins_for_host_not_a_mapping() -> None:
    fails(
        r"pins for host 'manager' must be a mapping of node type to id",
        REFERENCE,
        pins={"manager": 1},
        replicas=3,
    )


@pytest.mark.parametrize(
    "nodes",
    [
        {"ndbd": ["a", "b"]},
        {"mgmd": [], "ndbd": ["a", "b"]},
    ],
)
def test_no_management_node(nodes: dict[str, list[str]]) -> None:
    fails(
        r"no management node: 'mgmd' is empty or missing; add at least one host", nodes
    )


@pytest.mark.parametrize(
    "nodes",
    [
        {"mgmd": ["m"]},
        {"mgmd": ["m"], "ndbd": [], "mysqld": ["m"]},
    ],
)
def test_no_data_node(nodes: dict[str, list[str]]) -> None:
    fails(r"no data node: 'ndbd' is empty or missing; add at least one host", nodes)


def test_more_than_144_data_nodes() -> None:
    fails(
        r"146 data nodes, but NDB allows at most 144; use fewer ndbd hosts",
        {"mgmd": ["m"], "ndbd": workers(146)},
    )


def test_more_than_255_ids() -> None:
    fails(
        r"256 nodes need 256 ids, but NDB has only 255; use fewer hosts",
        {"mgmd": ["m"], "ndbd": workers(144), "mysqld": workers(111, "sql")},
    )


def test_host_under_two_types_counts_twice_towards_255() -> None:
    fails(
        r"256 nodes need 256 ids",
        {"mgmd": ["m"], "ndbd": workers(144), "mysqld": ["m", *workers(110, "sql")]},
    )


def test_management_and_sql_nodes_exhaust_145_to_255() -> None:
    fails(
        r"112 management and SQL nodes without a pin need ids in 145\.\.255, but only 111 are free"
        r".*pin some of them to free ids in 1\.\.144",
        {"mgmd": ["m"], "ndbd": ["a", "b"], "mysqld": workers(111, "sql")},
    )


def test_pins_fill_145_to_255() -> None:
    fails(
        r"only 110 are free there",
        {"mgmd": ["m"], "ndbd": ["a", "b"], "mysqld": workers(111, "sql")},
        pins={"sql1": {"mysqld": 200}},
    )


def test_pinning_a_high_node_low_makes_room() -> None:
    result = ndb_node_ids(
        {"mgmd": ["m"], "ndbd": ["a", "b"], "mysqld": workers(111, "sql")},
        pins={"m": {"mgmd": 100}},
    )
    assert ids(result, "mgmd") == {"m": 100}
    assert sorted(ids(result, "mysqld").values()) == list(range(145, 256))


def test_pins_below_145_crowd_out_data_nodes() -> None:
    fails(
        r"the 144 data nodes do not fit in ids 1\.\.144 next to the ids pinned there \(1\); "
        r"pin management or SQL nodes above 144",
        {"mgmd": ["m"], "ndbd": workers(144)},
        pins={"m": {"mgmd": 1}},
    )


@pytest.mark.parametrize("replicas", [0, 5, -2, "2", 2.0, True, None])
def test_replicas_outside_1_to_4(replicas: Any) -> None:
    fails(
        r"replicas must be an integer within 1\.\.4, got .*; pass e\.g\. replicas=2",
        {"mgmd": ["m"], "ndbd": workers(12)},
        replicas=replicas,
    )


def test_default_replicas_does_not_divide_three_data_nodes() -> None:
    fails(
        r"replicas=2 does not divide the 3 data nodes; pass a replicas value that divides 3",
        REFERENCE,
    )


def test_replicas_larger_than_data_nodes() -> None:
    fails(
        r"replicas=4 does not divide the 2 data nodes",
        {"mgmd": ["m"], "ndbd": ["a", "b"]},
        replicas=4,
    )


def test_unknown_key_in_input() -> None:
    fails(
        r"unknown node type\(s\) api, ndb_mgmd in the input; use only mgmd, ndbd, mysqld",
        {"mgmd": ["m"], "ndbd": ["a", "b"], "ndb_mgmd": ["m"], "api": []},
    )


@pytest.mark.parametrize("value", ["worker1", {"worker1": 1}, None, 3])
def test_non_list_value(value: Any) -> None:
    fails(
        r"'ndbd' must be a list of host names, got \w+; write e\.g\. ndbd: \[host1, host2\]",
        {"mgmd": ["m"], "ndbd": value},
    )


@pytest.mark.parametrize("nodes", [["m"], "m", None])
def test_input_not_a_mapping(nodes: Any) -> None:
    fails(r"the input must be a mapping of node type to host list", nodes)


@pytest.mark.parametrize("host", ["", "   "])
def test_empty_host_name(host: str) -> None:
    fails(
        r"'mysqld' contains an empty host name; remove it or give the host a name",
        {"mgmd": ["m"], "ndbd": ["a", "b"], "mysqld": ["m", host]},
    )


@pytest.mark.parametrize("host", [1, None, ["m"]])
def test_non_string_host_name(host: Any) -> None:
    fails(
        r"'mgmd' contains .*; host names must be strings",
        {"mgmd": [host], "ndbd": ["a", "b"]},
    )


def test_same_host_twice_under_one_key() -> None:
    fails(
        r"host 'worker1' is listed twice under 'ndbd'; list each host once per type",
        {"mgmd": ["m"], "ndbd": ["worker1", "worker2", "worker1"]},
        replicas=3,
    )


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"ndb_node_ids": ndb_node_ids}


# --- properties ----------------------------------------------------------------------------------

HOST_NAMES = st.one_of(
    st.from_regex(r"\A[a-z]{1,3}-?[0-9]{0,3}[a-z]?\Z"),
    st.text(min_size=1, max_size=6).filter(str.strip),
)


@st.composite
def clusters(
    draw: st.DrawFn,
) -> tuple[dict[str, list[str]], dict[str, dict[str, int]], int]:
    """A valid input: nodes, pins and replicas."""
    pool = draw(st.lists(HOST_NAMES, min_size=1, max_size=14, unique=True))
    replicas = draw(st.integers(1, min(4, len(pool))))
    node_groups = draw(st.integers(1, len(pool) // replicas))
    nodes = {
        "mgmd": draw(
            st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)
        ),
        "ndbd": draw(st.permutations(pool))[: node_groups * replicas],
        "mysqld": draw(st.lists(st.sampled_from(pool), max_size=8, unique=True)),
    }
    pairs = [(host, node_type) for node_type, hosts in nodes.items() for host in hosts]
    chosen = (
        draw(st.lists(st.sampled_from(pairs), max_size=4, unique=True)) if pairs else []
    )
    pins: dict[str, dict[str, int]] = {}
    used: set[int] = set()
    for host, node_type in chosen:
        high = 144 if node_type == "ndbd" else 255
        node_id = draw(st.integers(1, high).filter(lambda value: value not in used))
        used.add(node_id)
        pins.setdefault(host, {})[node_type] = node_id
    return nodes, pins, replicas


def shuffled(
    nodes: dict[str, list[str]], pins: dict[str, dict[str, int]], seed: int
) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    node_types = list(nodes)
    rng.shuffle(node_types)
    hosts = list(pins)
    rng.shuffle(hosts)
    return (
        {
            node_type: rng.sample(nodes[node_type], len(nodes[node_type]))
            for node_type in node_types
        },
        {
            host: dict(rng.sample(list(pins[host].items()), len(pins[host])))
            for host in hosts
        },
    )


@given(clusters(), st.integers())
def test_property_any_order_gives_the_same_ids(cluster: Any, seed: int) -> None:
    nodes, pins, replicas = cluster
    other_nodes, other_pins = shuffled(nodes, pins, seed)
    assert ndb_node_ids(
        other_nodes, pins=other_pins, replicas=replicas
    ) == ndb_node_ids(nodes, pins=pins, replicas=replicas)


@given(clusters())
def test_property_every_node_gets_one_unique_id(cluster: Any) -> None:
    nodes, pins, replicas = cluster
    result = ndb_node_ids(nodes, pins=pins, replicas=replicas)
    node_ids = all_ids(result)
    assert len(node_ids) == len(set(node_ids))
    for node_type, hosts in nodes.items():
        assert sorted(entry["host"] for entry in result[node_type]) == sorted(hosts)


@given(clusters())
def test_property_ids_stay_in_their_ranges(cluster: Any) -> None:
    nodes, pins, replicas = cluster
    result = ndb_node_ids(nodes, pins=pins, replicas=replicas)
    assert all(1 <= node_id <= 255 for node_id in all_ids(result))
    assert all(1 <= node_id <= 144 for node_id in ids(result, "ndbd").values())
    for node_type in ("mgmd", "mysqld"):
        for host, node_id in ids(result, node_type).items():
            if node_type not in pins.get(host, {}):
                assert node_id > 144


@given(clusters())
def test_property_pins_are_honoured(cluster: Any) -> None:
    nodes, pins, replicas = cluster
    result = ndb_node_ids(nodes, pins=pins, replicas=replicas)
    for host, by_type in pins.items():
        for node_type, node_id in by_type.items():
            assert ids(result, node_type)[host] == node_id


@given(clusters())
def test_property_output_is_sorted_by_node_id(cluster: Any) -> None:
    nodes, pins, replicas = cluster
    result = ndb_node_ids(nodes, pins=pins, replicas=replicas)
    assert set(result) == {"mgmd", "ndbd", "mysqld"}
    for entries in result.values():
        node_ids = [entry["node_id"] for entry in entries]
        assert node_ids == sorted(node_ids)


@given(st.integers(1, 40), st.integers(1, 4))
def test_property_replicas_must_divide_data_nodes(
    data_nodes: int, replicas: int
) -> None:
    nodes = {"mgmd": ["m"], "ndbd": workers(data_nodes)}
    if data_nodes % replicas:
        with pytest.raises(AnsibleFilterError, match="does not divide"):
            ndb_node_ids(nodes, replicas=replicas)
    else:
        assert len(ndb_node_ids(nodes, replicas=replicas)["ndbd"]) == data_nodes
