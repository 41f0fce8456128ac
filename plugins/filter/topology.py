# Copyright: cloudpatterns.mysql contributors
# Apache License 2.0 (see LICENSE)
"""Filters that read the topology (inventory/group_vars/all/topology.yml)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: topology
short_description: Validate the topology and derive networks, security-group rules and addresses from it
version_added: 0.1.0
description:
  - C(topology_nodes) validates the node list and returns it with defaults filled in.
  - C(topology_links) validates the link list and returns one entry per link with the names the Docker
    network and the security groups use.
  - C(reach_from) returns the address at which a host is reached from a given tier.
options: {}
"""

EXAMPLES = r"""
- name: Validate the topology
  ansible.builtin.set_fact:
    nodes: "{{ topology_nodes | cloudpatterns.mysql.topology_nodes(topology_default_size, known_roles) }}"
    links: "{{ topology_links | cloudpatterns.mysql.topology_links(topology_nodes, topology_project) }}"

- name: Address of the proxy as seen from the trusted host's tier
  ansible.builtin.debug:
    msg: "{{ hostvars['proxy'] | cloudpatterns.mysql.reach_from('trusted') }}"
"""

RETURN = r"""
_value:
  description: See each filter's description.
  type: raw
"""

INTERNET = "internet"
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_TIER = re.compile(r"^[a-z][a-z0-9_]*$")


def _fail(message: str) -> None:
    raise AnsibleFilterError(f"topology: {message}")


def topology_nodes(nodes: Any, default_size: str, known_roles: Sequence[str]) -> list[dict[str, Any]]:
    """Check every node and return the list with `size` filled in."""
    if not isinstance(nodes, Sequence) or isinstance(nodes, (str, bytes)) or not nodes:
        _fail("topology_nodes must be a non-empty list of nodes, each {name, roles, tier[, size]}")
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            _fail(f"entry {index} of topology_nodes is not a mapping; write it as {{name: ..., roles: [...], tier: ...}}")
        unknown_keys = sorted(set(node) - {"name", "roles", "tier", "size"})
        if unknown_keys:
            _fail(f"node {node.get('name', index)!r} has unknown keys {unknown_keys}; allowed: name, roles, tier, size")
        name = node.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            _fail(f"node {index} has name {name!r}; use lower-case letters, digits and single hyphens (e.g. worker1)")
        if name in seen:
            _fail(f"node name {name!r} appears twice; node names must be unique")
        seen.add(name)
        roles = node.get("roles")
        if not isinstance(roles, Sequence) or isinstance(roles, (str, bytes)) or not roles:
            _fail(f"node {name!r} needs a non-empty list of roles")
        for role in roles:
            if role not in known_roles:
                _fail(f"node {name!r} has unknown role {role!r}; known roles: {', '.join(sorted(known_roles))}")
        tier = node.get("tier")
        if not isinstance(tier, str) or not _TIER.match(tier) or tier == INTERNET:
            _fail(f"node {name!r} has tier {tier!r}; use a lower-case word other than {INTERNET!r}")
        size = node.get("size", default_size)
        if not isinstance(size, str) or not size:
            _fail(f"node {name!r} has size {size!r}; give an instance type such as t2.micro")
        checked.append({"name": name, "roles": list(roles), "tier": tier, "size": size})
    return checked


def _ports(link: Mapping[str, Any], label: str) -> list[int]:
    ports = link.get("ports")
    if not isinstance(ports, Sequence) or isinstance(ports, (str, bytes)) or not ports:
        _fail(f"link {label} needs a non-empty list of TCP ports")
    checked = []
    for port in ports:
        try:
            number = int(port)
        except (TypeError, ValueError):
            number = 0
        if not 1 <= number <= 65535:
            _fail(f"link {label} has port {port!r}; ports are integers within 1..65535")
        checked.append(number)
    return sorted(set(checked))


def topology_links(links: Any, nodes: Sequence[Mapping[str, Any]], project: str) -> list[dict[str, Any]]:
    """Check the links and name what each becomes: a Docker network, security-group rules."""
    if not isinstance(project, str) or not _NAME.match(project):
        _fail(f"topology_project is {project!r}; use lower-case letters, digits and single hyphens")
    if not isinstance(links, Sequence) or isinstance(links, (str, bytes)) or not links:
        _fail("topology_links must be a non-empty list of {from, to, ports}")
    tiers = {node["tier"] for node in nodes}
    checked: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for index, link in enumerate(links):
        if not isinstance(link, Mapping):
            _fail(f"entry {index} of topology_links is not a mapping {{from, to, ports}}")
        source, target = link.get("from"), link.get("to")
        label = f"{source}->{target}"
        if source not in tiers and source != INTERNET:
            _fail(f"link {label}: 'from' must be a tier of topology_nodes or {INTERNET!r}; tiers: {', '.join(sorted(tiers))}")
        if target not in tiers:
            _fail(f"link {label}: 'to' must be a tier of topology_nodes; tiers: {', '.join(sorted(tiers))}")
        if (source, target) in seen:
            _fail(f"link {label} appears twice; merge its ports into one entry")
        seen.add((source, target))
        name = f"{source}-{target}"
        checked.append({
            "from": source,
            "to": target,
            "ports": _ports(link, label),
            "name": name,
            # The internet reaches the gatekeeper through a published port, not a network of its own.
            "network": None if source == INTERNET else f"{project}-{name}",
            "tiers": sorted({source, target}) if source != INTERNET else [target],
        })
    return checked


def tier_networks(links: Sequence[Mapping[str, Any]], tier: str) -> list[dict[str, str]]:
    """The Docker networks a container of this tier joins, as docker_container's `networks` list."""
    names = sorted(link["network"] for link in links if link["network"] and tier in link["tiers"])
    return [{"name": name} for name in names]


def tier_ingress(links: Sequence[Mapping[str, Any]], tier: str) -> list[dict[str, Any]]:
    """The links that open ports on this tier (its inbound rules)."""
    return [link for link in links if link["to"] == tier]


def reach_from(host: Mapping[str, Any], tier: str) -> str:
    """Address at which `host` (its hostvars) is reached from `tier`.

    In the local lab a container has one address per network (fleet_addresses, keyed by the peer tier);
    on AWS one private address serves every tier.
    """
    if not isinstance(host, Mapping):
        _fail("reach_from expects a host's hostvars, e.g. hostvars['proxy'] | cloudpatterns.mysql.reach_from('trusted')")
    address = (host.get("fleet_addresses") or {}).get(tier) or host.get("fleet_private_address")
    if not address:
        name = host.get("inventory_hostname", "<unknown host>")
        _fail(f"host {name} has no address reachable from tier {tier!r}; is a link between their tiers declared in topology_links?")
    return str(address)


class FilterModule:
    """Topology filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "topology_nodes": topology_nodes,
            "topology_links": topology_links,
            "tier_networks": tier_networks,
            "tier_ingress": tier_ingress,
            "reach_from": reach_from,
        }
