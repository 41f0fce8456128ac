# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
name: ndb_node_ids
short_description: Assign MySQL NDB Cluster node ids to inventory hosts
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - Takes the hosts of an NDB Cluster, grouped by node type, and gives every node a C(NodeId) for
    C(config.ini) and C(--ndb-nodeid).
  - A host may run several nodes (for example the manager is both C(mgmd) and C(mysqld)); each node
    gets its own id.
  - Hosts are sorted with a natural sort (C(worker2) before C(worker10)) before ids are handed out, so
    the same hosts in any order give the same ids.
  - "Scheme: data nodes (C(ndbd)) get 1, 2, 3, ... (NDB allows data nodes only in 1..144); management
    nodes (C(mgmd)) get 145, 146, ...; SQL nodes (C(mysqld)) continue after the management nodes. Ids
    above 144 for management and SQL nodes leave 1..144 to data nodes, so data nodes can be added later
    without renumbering the other nodes."
  - Pinned ids are used as given and automatic ids skip them. A pin is the way to keep an id stable
    when hosts are added in the middle of the sort order, or to place a management or SQL node in 1..144.
  - Any invalid input fails with a message that names the problem and how to fix it.
options:
  _input:
    description:
      - Inventory hostnames per node type.
      - Only the keys C(mgmd), C(ndbd) and C(mysqld) are allowed; each value is a list of host names.
      - At least one C(mgmd) and one C(ndbd) host are required; C(mysqld) may be empty or missing.
    type: dict
    required: true
  pins:
    description:
      - "Fixed ids, as a mapping of host name to a mapping of node type to id, for example
        C({'manager': {'mgmd': 1}})."
      - Ids must be unique and within 1..255; C(ndbd) ids within 1..144.
      - Every pinned host and type must be present in O(_input).
    type: dict
    default: {}
  replicas:
    description:
      - C(NoOfReplicas) of the cluster. Must be within 1..4 and divide the number of data nodes, since NDB
        groups data nodes into node groups of this size.
    type: int
    default: 2
"""

EXAMPLES = r"""
- name: Node ids for one manager (also an SQL node) and three workers (data and SQL nodes)
  ansible.builtin.debug:
    msg: "{{ cluster | cloudpatterns.mysql.ndb_node_ids(replicas=3) }}"
  vars:
    cluster:
      mgmd: [manager]
      ndbd: [worker1, worker2, worker3]
      mysqld: [manager, worker1, worker2, worker3]
# msg:
#   mgmd:   [{host: manager, node_id: 145}]
#   ndbd:   [{host: worker1, node_id: 1}, {host: worker2, node_id: 2}, {host: worker3, node_id: 3}]
#   mysqld: [{host: manager, node_id: 146}, {host: worker1, node_id: 147},
#            {host: worker2, node_id: 148}, {host: worker3, node_id: 149}]

- name: Build the input from inventory groups and pin the management node to id 1
  ansible.builtin.set_fact:
    __ndb_node_ids: >-
      {{ {'mgmd': groups['ndb_mgmd'], 'ndbd': groups['ndbd'], 'mysqld': groups['ndb_sqlnode']}
         | cloudpatterns.mysql.ndb_node_ids(pins={'manager': {'mgmd': 1}}, replicas=3) }}

- name: The id of this host's data node
  ansible.builtin.debug:
    msg: "{{ (__ndb_node_ids.ndbd | selectattr('host', '==', inventory_hostname) | first).node_id }}"
"""

RETURN = r"""
_value:
  description:
    - Node type (C(mgmd), C(ndbd), C(mysqld); all three always present) to a list of
      C({host, node_id}) mappings sorted by C(node_id).
  type: dict
  contains:
    host:
      description: The inventory host name.
      type: str
    node_id:
      description: The NDB node id, unique in the cluster.
      type: int
"""

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from ansible.errors import AnsibleFilterError

NODE_TYPES = ("mgmd", "ndbd", "mysqld")
MAX_NODE_ID = 255
MAX_DATA_NODE_ID = 144
MAX_REPLICAS = 4

_DIGITS = re.compile(r"([0-9]+)")


def _natural_key(host: str) -> tuple[tuple[str | int, ...], str]:
    # re.split with one group alternates text and digit runs, so equal positions always hold equal
    # types; the whole name breaks ties such as 'w01' and 'w1'.
    parts = _DIGITS.split(host)
    return tuple(
        int(part) if index % 2 else part for index, part in enumerate(parts)
    ), host


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(message: str) -> NoReturn:
    raise AnsibleFilterError(f"ndb_node_ids: {message}")


def _validate_hosts(nodes: Any) -> dict[str, list[str]]:
    if not isinstance(nodes, Mapping):
        _fail(
            f"the input must be a mapping of node type to host list, got {type(nodes).__name__}; "
            "pass e.g. {'mgmd': [...], 'ndbd': [...], 'mysqld': [...]}."
        )
    unknown = sorted(str(key) for key in nodes if key not in NODE_TYPES)
    if unknown:
        _fail(
            f"unknown node type(s) {', '.join(unknown)} in the input; "
            f"use only {', '.join(NODE_TYPES)}."
        )
    hosts: dict[str, list[str]] = {}
    for node_type in NODE_TYPES:
        value = nodes.get(node_type, [])
        if not isinstance(value, (list, tuple)):
            _fail(
                f"'{node_type}' must be a list of host names, got {type(value).__name__}; "
                f"write e.g. {node_type}: [host1, host2]."
            )
        seen: set[str] = set()
        for host in value:
            if not isinstance(host, str):
                _fail(
                    f"'{node_type}' contains {host!r} ({type(host).__name__}); "
                    "host names must be strings."
                )
            if not host.strip():
                _fail(
                    f"'{node_type}' contains an empty host name; remove it or give the host a name."
                )
            if host in seen:
                _fail(
                    f"host '{host}' is listed twice under '{node_type}'; list each host once per type."
                )
            seen.add(host)
        hosts[node_type] = list(value)
    return hosts


def _validate_counts(hosts: dict[str, list[str]], replicas: Any) -> None:
    if not hosts["mgmd"]:
        _fail(
            "no management node: 'mgmd' is empty or missing; add at least one host to it."
        )
    data_nodes = len(hosts["ndbd"])
    if not data_nodes:
        _fail("no data node: 'ndbd' is empty or missing; add at least one host to it.")
    if data_nodes > MAX_DATA_NODE_ID:
        _fail(
            f"{data_nodes} data nodes, but NDB allows at most {MAX_DATA_NODE_ID}; "
            "use fewer ndbd hosts."
        )
    total = sum(len(group) for group in hosts.values())
    if total > MAX_NODE_ID:
        _fail(
            f"{total} nodes need {total} ids, but NDB has only {MAX_NODE_ID}; "
            "use fewer hosts (a host listed under two types needs two ids)."
        )
    if not _is_int(replicas) or not 1 <= replicas <= MAX_REPLICAS:
        _fail(
            f"replicas must be an integer within 1..{MAX_REPLICAS}, got {replicas!r}; "
            'pass e.g. replicas=2 (use "| int" on a string).'
        )
    if data_nodes % replicas:
        _fail(
            f"replicas={replicas} does not divide the {data_nodes} data nodes; "
            f"pass a replicas value that divides {data_nodes}, or change the number of ndbd hosts."
        )


def _validate_pins(
    pins: Any, hosts: dict[str, list[str]]
) -> dict[tuple[str, str], int]:
    if pins is None:
        return {}
    if not isinstance(pins, Mapping):
        _fail(
            f"pins must be a mapping of host to {{type: id}}, got {type(pins).__name__}; "
            "write e.g. pins={'manager': {'mgmd': 1}}."
        )
    pinned: dict[tuple[str, str], int] = {}
    owner_of: dict[int, tuple[str, str]] = {}
    for host in sorted(pins, key=lambda name: _natural_key(str(name))):
        by_type = pins[host]
        if not isinstance(by_type, Mapping):
            _fail(
                f"pins for host '{host}' must be a mapping of node type to id, "
                f"got {type(by_type).__name__}; write e.g. {{'{host}': {{'mgmd': 1}}}}."
            )
        for node_type in sorted(by_type, key=str):
            node_id = by_type[node_type]
            if node_type not in NODE_TYPES:
                _fail(
                    f"pin for host '{host}' names unknown node type '{node_type}'; "
                    "use mgmd, ndbd or mysqld."
                )
            if host not in hosts[node_type]:
                _fail(
                    f"pin for host '{host}' as '{node_type}', but the input has no such node; "
                    f"add '{host}' under '{node_type}' in the input or remove the pin."
                )
            if not _is_int(node_id) or not 1 <= node_id <= MAX_NODE_ID:
                _fail(
                    f"pin {node_id!r} for '{host}' as '{node_type}' is not an id within "
                    f"1..{MAX_NODE_ID}; pin an integer within that range."
                )
            if node_type == "ndbd" and node_id > MAX_DATA_NODE_ID:
                _fail(
                    f"pin {node_id} for '{host}' as 'ndbd' is above {MAX_DATA_NODE_ID}; "
                    f"data node ids must be within 1..{MAX_DATA_NODE_ID}."
                )
            if node_id in owner_of:
                other_host, other_type = owner_of[node_id]
                _fail(
                    f"duplicate pin: id {node_id} is pinned for '{other_host}' as '{other_type}' "
                    f"and for '{host}' as '{node_type}'; give each pinned node its own id."
                )
            owner_of[node_id] = (host, node_type)
            pinned[(host, node_type)] = node_id
    return pinned


def _free_ids(first: int, last: int, taken: set[int]) -> Iterator[int]:
    return (node_id for node_id in range(first, last + 1) if node_id not in taken)


def ndb_node_ids(
    nodes: Mapping[str, Any], pins: Mapping[str, Any] | None = None, replicas: int = 2
) -> dict[str, list[dict[str, Any]]]:
    """Return type -> [{'host', 'node_id'}] sorted by node_id; see DOCUMENTATION for the scheme."""
    hosts = _validate_hosts(nodes)
    _validate_counts(hosts, replicas)
    pinned = _validate_pins(pins, hosts)

    assigned: dict[str, list[dict[str, Any]]] = {
        node_type: [] for node_type in NODE_TYPES
    }
    for (host, node_type), node_id in pinned.items():
        assigned[node_type].append({"host": host, "node_id": node_id})

    # Data nodes count up from 1; management nodes and then SQL nodes draw from one shared
    # sequence from 145, so the mysqld ids follow the mgmd ids. Both skip pinned ids.
    taken = set(pinned.values())
    data_ids = _free_ids(1, MAX_DATA_NODE_ID, taken)
    high_ids = _free_ids(MAX_DATA_NODE_ID + 1, MAX_NODE_ID, taken)
    for node_type, free_ids in (
        ("ndbd", data_ids),
        ("mgmd", high_ids),
        ("mysqld", high_ids),
    ):
        for host in sorted(hosts[node_type], key=_natural_key):
            if (host, node_type) in pinned:
                continue
            node_id = next(free_ids, None)
            if node_id is None:
                _fail(_exhausted_message(node_type, hosts, pinned))
            assigned[node_type].append({"host": host, "node_id": node_id})

    for entries in assigned.values():
        entries.sort(key=lambda entry: entry["node_id"])
    return assigned


def _exhausted_message(
    node_type: str, hosts: dict[str, list[str]], pinned: dict[tuple[str, str], int]
) -> str:
    if node_type == "ndbd":
        pinned_low = sorted(
            node_id for node_id in pinned.values() if node_id <= MAX_DATA_NODE_ID
        )
        return (
            f"the {len(hosts['ndbd'])} data nodes do not fit in ids 1..{MAX_DATA_NODE_ID} next "
            f"to the ids pinned there ({', '.join(map(str, pinned_low))}); pin management or "
            f"SQL nodes above {MAX_DATA_NODE_ID} instead."
        )
    high_free = (MAX_NODE_ID - MAX_DATA_NODE_ID) - sum(
        1 for node_id in pinned.values() if node_id > MAX_DATA_NODE_ID
    )
    automatic = sum(
        1
        for node_type in ("mgmd", "mysqld")
        for host in hosts[node_type]
        if (host, node_type) not in pinned
    )
    return (
        f"{automatic} management and SQL nodes without a pin need ids in "
        f"{MAX_DATA_NODE_ID + 1}..{MAX_NODE_ID}, but only {high_free} are free there; pin some "
        f"of them to free ids in 1..{MAX_DATA_NODE_ID} or use fewer nodes."
    )


class FilterModule:
    """The ndb_node_ids filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"ndb_node_ids": ndb_node_ids}
