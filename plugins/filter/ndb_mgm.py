# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Read what the NDB management client and the management server's config.ini say."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: ndb_mgm
short_description: Parse ndb_mgm output and config.ini of a MySQL NDB Cluster
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - C(ndb_mgm_show) parses the output of C(ndb_mgm -e show) into one mapping per node slot
    (C(type) V(ndbd), V(mgmd) or V(mysqld); C(node_id); C(connected); C(address); C(state); C(nodegroup)).
    A connected data node without a state word in its line is V(started).
  - C(ndb_mgm_status) parses the output of C(ndb_mgm -e 'N status') (or C(ALL STATUS)) into a mapping of
    node id to state, lower case (V(started), V(starting), V(not connected), V(shutting down), ...).
  - C(ndb_unready) compares parsed C(show) output with the node ids the cluster should have (the output of
    C(cloudpatterns.mysql.ndb_node_ids)) and returns one sentence per node that is missing, not connected, or
    (for a data node) not started. An empty list means every node is connected.
  - C(ndb_config_ini) parses a C(config.ini) into a list of C({section, params}) in file order. Sections
    repeat (one C([ndbd]) per data node), which is why C(community.general.from_ini) cannot read it.
  - Text that is not what the filter expects fails with a message that quotes it.
options: {}
"""

EXAMPLES = r"""
- name: Ask the management server for the cluster's state
  ansible.builtin.command: ndb_mgm --ndb-connectstring=10.0.0.2:1186 -e show
  register: show
  changed_when: false

- name: Nodes that are not connected yet
  ansible.builtin.debug:
    msg: "{{ show.stdout | cloudpatterns.mysql.ndb_mgm_show | cloudpatterns.mysql.ndb_unready(node_ids) }}"
  vars:
    node_ids: >-
      {{ {'mgmd': ['manager'], 'ndbd': ['w1', 'w2'], 'mysqld': ['manager']}
         | cloudpatterns.mysql.ndb_node_ids }}

- name: State of data node 2
  ansible.builtin.debug:
    msg: "{{ (status.stdout | cloudpatterns.mysql.ndb_mgm_status)[2] | default('unknown') }}"

- name: Every [ndbd] section of a config.ini
  ansible.builtin.debug:
    msg: >-
      {{ lookup('ansible.builtin.file', 'config.ini') | cloudpatterns.mysql.ndb_config_ini
         | selectattr('section', '==', 'ndbd') }}
"""

RETURN = r"""
_value:
  description: See each filter's description.
  type: raw
"""

# ndb_mgm prints these section headers; the type names follow ndb_node_ids' keys.
_SHOW_SECTIONS = {"ndbd(NDB)": "ndbd", "ndb_mgmd(MGM)": "mgmd", "mysqld(API)": "mysqld"}
_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s+\d+\s+node\(s\)\s*$")
_NODE = re.compile(r"^id=(?P<id>\d+)\s*(?:@(?P<address>\S+))?\s*\((?P<details>.*)\)\s*$")
_STATUS = re.compile(r"^Node (?P<id>\d+): (?P<state>[^(]+?)\s*(?:\(.*)?$", re.IGNORECASE)
_INI_SECTION = re.compile(r"^\[\s*(?P<name>[A-Za-z_ ]+?)\s*\]$")
_INI_PARAM = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*(?P<value>.*?)\s*$")
_NODE_TYPES = ("mgmd", "ndbd", "mysqld")
_LABELS = {"mgmd": "management node", "ndbd": "data node", "mysqld": "SQL node"}


def _fail(message: str) -> NoReturn:
    raise AnsibleFilterError(f"ndb_mgm: {message}")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        _fail(f"{name} expects the command's output as a string (e.g. result.stdout), got {type(value).__name__}")
    return value


def _node_details(details: str) -> tuple[str | None, int | None, bool]:
    """State word, node group and master flag from '(mysql-8.4.3 ndb-8.4.3, starting, Nodegroup: 0, *)'."""
    state: str | None = None
    nodegroup: int | None = None
    master = False
    # The first field is the version; the rest are flags.
    for field in (part.strip() for part in details.split(",")[1:]):
        if field == "*":
            master = True
        elif field.lower().startswith("nodegroup:"):
            nodegroup = int(field.split(":", 1)[1])
        elif field.lower() == "no nodegroup":
            continue
        elif field:
            state = field.lower()
    return state, nodegroup, master


def ndb_mgm_show(output: Any) -> list[dict[str, Any]]:
    """Every node slot that `ndb_mgm -e show` lists, in its order."""
    text = _text(output, "ndb_mgm_show")
    nodes: list[dict[str, Any]] = []
    section: str | None = None
    for line in (raw.strip() for raw in text.splitlines()):
        header = _SECTION.match(line)
        if header:
            section = _SHOW_SECTIONS.get(header.group("name"))
            if section is None:
                _fail(f"unknown section {line!r} in ndb_mgm's output")
            continue
        node = _NODE.match(line)
        if not node:
            continue
        if section is None:
            _fail(f"node line {line!r} comes before any [section] header; is this `ndb_mgm -e show` output?")
        details = node.group("details")
        connected = node.group("address") is not None and not details.startswith("not connected")
        state, nodegroup, master = _node_details(details) if connected else ("not connected", None, False)
        if connected and state is None:
            state = "started" if section == "ndbd" else "connected"
        nodes.append(
            {
                "type": section,
                "node_id": int(node.group("id")),
                "connected": connected,
                "address": node.group("address"),
                "state": state,
                "nodegroup": nodegroup,
                "master": master,
            }
        )
    if not nodes:
        _fail(f"no node in ndb_mgm's output; expected lines such as 'id=1 @10.0.0.3 (...)', got {text[:300]!r}")
    return nodes


def ndb_mgm_status(output: Any) -> dict[int, str]:
    """Node id -> state from `ndb_mgm -e 'N status'` or `ALL STATUS`; the last line of a node wins."""
    text = _text(output, "ndb_mgm_status")
    states: dict[int, str] = {}
    for line in (raw.strip() for raw in text.splitlines()):
        match = _STATUS.match(line)
        if match:
            states[int(match.group("id"))] = match.group("state").strip().lower()
    if not states:
        _fail(f"no 'Node N: state' line in ndb_mgm's output, got {text[:300]!r}")
    return states


def _expected(node_ids: Any) -> Iterable[tuple[str, str, int]]:
    if not isinstance(node_ids, Mapping):
        _fail("ndb_unready expects the output of cloudpatterns.mysql.ndb_node_ids as its argument")
    for node_type in _NODE_TYPES:
        for entry in node_ids.get(node_type, []):
            yield node_type, entry["host"], int(entry["node_id"])


def ndb_unready(nodes: Any, node_ids: Any) -> list[str]:
    """One sentence per expected node that is not connected (or, for a data node, not started)."""
    if not isinstance(nodes, list):
        _fail("ndb_unready expects the output of ndb_mgm_show as its input")
    seen = {(node["type"], node["node_id"]): node for node in nodes}
    problems: list[str] = []
    for node_type, host, node_id in _expected(node_ids):
        label = f"{_LABELS[node_type]} {node_id} ({host})"
        node = seen.get((node_type, node_id))
        if node is None:
            problems.append(f"{label} is not in the management server's configuration")
        elif not node["connected"]:
            problems.append(f"{label} is not connected")
        elif node_type == "ndbd" and node["state"] != "started":
            problems.append(f"{label} is {node['state']}, not started")
    return problems


def ndb_config_ini(text: Any) -> list[dict[str, Any]]:
    """The sections of a config.ini in file order, each {'section': lower-case name, 'params': {key: value}}."""
    content = _text(text, "ndb_config_ini")
    sections: list[dict[str, Any]] = []
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = _INI_SECTION.match(line)
        if header:
            sections.append({"section": header.group("name").lower(), "params": {}})
            continue
        param = _INI_PARAM.match(line)
        if not param:
            _fail(f"line {number} of config.ini is neither a [section] nor key=value: {line!r}")
        if not sections:
            _fail(f"line {number} of config.ini sets {param.group('key')} before any [section]")
        sections[-1]["params"][param.group("key")] = param.group("value")
    return sections


class FilterModule:
    """Filters that read NDB Cluster tools' output and configuration."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "ndb_mgm_show": ndb_mgm_show,
            "ndb_mgm_status": ndb_mgm_status,
            "ndb_unready": ndb_unready,
            "ndb_config_ini": ndb_config_ini,
        }
