# Copyright: cloudpatterns.mysql contributors
# Apache License 2.0 (see LICENSE)
"""Filters that read the topology (inventory/group_vars/all/topology.yml)."""

from __future__ import annotations

import ipaddress
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
  - C(link_ports) returns the ports of the link between two tiers.
  - C(published_ports) returns the Docker port publications of a tier's link from the internet.
  - C(reach_from) returns the address at which a host is reached from a given tier.
  - C(addresses) returns C([{name, host}]) for a list of hosts, with their inventory names and the addresses
    a tier reaches them at.
  - C(security_group_rules) returns the inbound rules of one tier's AWS security group, in the form of
    M(amazon.aws.ec2_security_group)'s O(rules) option, one rule per link into the tier (from the source
    tier's group, or from the public CIDRs for the C(internet) link) and SSH from the operator's CIDRs.
  - C(invalid_cidrs) returns the entries of a list that are not IPv4 or IPv6 networks in CIDR notation
    (an address with its prefix length and no host bits, such as C(203.0.113.7/32)).
options: {}
"""

EXAMPLES = r"""
- name: Validate the topology
  ansible.builtin.set_fact:
    nodes: "{{ topology_nodes | cloudpatterns.mysql.topology_nodes(topology_default_size, known_roles) }}"
    links: "{{ topology_links | cloudpatterns.mysql.topology_links(topology_nodes, topology_project) }}"

- name: Inbound rules of the cluster's security group
  amazon.aws.ec2_security_group:
    name: cloudpatterns-mysql-cluster
    description: cluster tier
    rules: >-
      {{ links | cloudpatterns.mysql.security_group_rules('cluster', group_ids, ['0.0.0.0/0'], ['203.0.113.7/32']) }}

- name: Stop on a malformed CIDR
  ansible.builtin.assert:
    that: "[operator_cidr] | cloudpatterns.mysql.invalid_cidrs | length == 0"

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
SSH_PORT = 22
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
            _fail(
                f"entry {index} of topology_nodes is not a mapping; write it as {{name: ..., roles: [...], tier: ...}}"
            )
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
            _fail(
                f"link {label}: 'from' must be a tier of topology_nodes or {INTERNET!r}; "
                f"tiers: {', '.join(sorted(tiers))}"
            )
        if target not in tiers:
            _fail(f"link {label}: 'to' must be a tier of topology_nodes; tiers: {', '.join(sorted(tiers))}")
        if (source, target) in seen:
            _fail(f"link {label} appears twice; merge its ports into one entry")
        seen.add((source, target))
        name = f"{source}-{target}"
        checked.append(
            {
                "from": source,
                "to": target,
                "ports": _ports(link, label),
                "name": name,
                # The internet reaches the gatekeeper through a published port, not a network of its own.
                "network": None if source == INTERNET else f"{project}-{name}",
                "tiers": sorted({source, target}) if source != INTERNET else [target],
            }
        )
    return checked


def tier_networks(links: Sequence[Mapping[str, Any]], tier: str) -> list[dict[str, str]]:
    """The Docker networks a container of this tier joins, as docker_container's `networks` list."""
    names = sorted(link["network"] for link in links if link["network"] and tier in link["tiers"])
    return [{"name": name} for name in names]


def tier_ingress(links: Sequence[Mapping[str, Any]], tier: str) -> list[dict[str, Any]]:
    """The links that open ports on this tier (its inbound rules)."""
    return [link for link in links if link["to"] == tier]


def published_ports(
    links: Sequence[Mapping[str, Any]], tier: str, address: str = "127.0.0.1", offset: int = 0
) -> list[str]:
    """docker_container's `published_ports` for a tier: the ports of its link from the internet."""
    ports = [port for link in links if link["from"] == INTERNET and link["to"] == tier for port in link["ports"]]
    return [f"{address}:{port + int(offset)}:{port}" for port in ports]


def link_ports(links: Sequence[Mapping[str, Any]], source: str, target: str) -> list[int]:
    """The ports of the link from tier `source` to tier `target` (raw or normalised topology_links)."""
    for link in links:
        if link.get("from") == source and link.get("to") == target:
            return _ports(link, f"{source}->{target}")
    _fail(
        f"no link from {source!r} to {target!r} in topology_links; add {{from: {source}, to: {target}, ports: [...]}}"
    )
    return []


def reach_from(host: Mapping[str, Any], tier: str) -> str:
    """Address at which `host` (its hostvars) is reached from `tier`.

    In the local lab a container has one address per network (fleet_addresses, keyed by the peer tier);
    on AWS one private address serves every tier.
    """
    if not isinstance(host, Mapping):
        _fail(
            "reach_from expects a host's hostvars, e.g. hostvars['proxy'] | cloudpatterns.mysql.reach_from('trusted')"
        )
    address = (host.get("fleet_addresses") or {}).get(tier) or host.get("fleet_private_address")
    if not address:
        name = host.get("inventory_hostname", "<unknown host>")
        _fail(
            f"host {name} has no address reachable from tier {tier!r}; "
            "is a link between their tiers declared in topology_links?"
        )
    return str(address)


def invalid_cidrs(cidrs: Any) -> list[Any]:
    """The entries that are not a network in CIDR notation (prefix length required, no host bits)."""
    if isinstance(cidrs, (str, bytes)) or not isinstance(cidrs, Sequence):
        _fail(f"invalid_cidrs expects a list of CIDRs, got {cidrs!r}")
    invalid = []
    for cidr in cidrs:
        try:
            if not isinstance(cidr, str) or "/" not in cidr:
                raise ValueError(cidr)
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            invalid.append(cidr)
    return invalid


def _cidr_rules(ports: list[int], cidrs: Sequence[str], description: str) -> list[dict[str, Any]]:
    """One rule per address family, as ec2_security_group takes them (cidr_ip / cidr_ipv6)."""
    invalid = invalid_cidrs(cidrs)
    if invalid:
        _fail(f"{description}: {invalid} are not CIDRs; write networks such as 203.0.113.7/32 or 2001:db8::/64")
    rules = []
    for key, version in (("cidr_ip", 4), ("cidr_ipv6", 6)):
        family = sorted({str(network) for network in map(ipaddress.ip_network, cidrs) if network.version == version})
        if family:
            rules.append({"proto": "tcp", "ports": ports, key: family, "rule_desc": description})
    return rules


def security_group_rules(
    links: Sequence[Mapping[str, Any]],
    tier: str,
    group_ids: Mapping[str, str],
    public_cidrs: Sequence[str],
    ssh_cidrs: Sequence[str],
) -> list[dict[str, Any]]:
    """The inbound rules of `tier`'s security group: its links (topology_links output) and SSH.

    `group_ids` maps every tier to its security group id; `public_cidrs` replace the `internet` source;
    `ssh_cidrs` may open port 22 and nothing else does.
    """
    if not isinstance(group_ids, Mapping):
        _fail("security_group_rules needs the security group id of every tier, as a mapping tier -> id")
    if isinstance(public_cidrs, (str, bytes)) or isinstance(ssh_cidrs, (str, bytes)):
        _fail("security_group_rules takes the public and SSH CIDRs as lists, e.g. ['203.0.113.7/32']")
    if not ssh_cidrs:
        _fail("security_group_rules needs at least one CIDR for SSH (operator_cidr)")
    rules: list[dict[str, Any]] = []
    for link in sorted(tier_ingress(links, tier), key=lambda link: link["name"]):
        description = f"link {link['from']}->{link['to']}"
        if link["from"] == INTERNET:
            if not public_cidrs:
                _fail(
                    f"{description} opens {link['ports']} to the internet but no public CIDR is given "
                    "(gatekeeper_allowed_cidrs)"
                )
            rules.extend(_cidr_rules(link["ports"], public_cidrs, description))
            continue
        group_id = group_ids.get(link["from"])
        if not group_id:
            _fail(f"{description}: tier {link['from']!r} has no security group id; create every tier's group first")
        rules.append({"proto": "tcp", "ports": link["ports"], "group_id": [group_id], "rule_desc": description})
    rules.extend(_cidr_rules([SSH_PORT], ssh_cidrs, "ssh from the operator"))
    return rules


def addresses(hosts: Sequence[str], hostvars: Mapping[str, Any], tier: str) -> list[dict[str, str]]:
    """`[{name, host}]`: each host's inventory name and the address `tier` reaches it at."""
    return [{"name": name, "host": reach_from(hostvars[name], tier)} for name in hosts]


class FilterModule:
    """Topology filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "topology_nodes": topology_nodes,
            "topology_links": topology_links,
            "tier_networks": tier_networks,
            "tier_ingress": tier_ingress,
            "link_ports": link_ports,
            "published_ports": published_ports,
            "reach_from": reach_from,
            "addresses": addresses,
            "security_group_rules": security_group_rules,
            "invalid_cidrs": invalid_cidrs,
        }
