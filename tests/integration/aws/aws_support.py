# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Pure helpers of the AWS integration tests: play recaps, the security-group graph, the inventory graph,
moto's request recording, and a model of the dependency rules AWS enforces (and moto does not) against
which a recorded teardown is replayed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

# An edge of the isolation graph: (source, target tier, protocol, port). A source is a tier (its security
# group), "internet" (gatekeeper_allowed_cidrs) or "operator" (operator_cidr); anything else is named
# "unknown:<what>" so that it can never match an expected edge.
Edge = tuple[str, str, str, str]
INTERNET = "internet"
OPERATOR = "operator"
SSH_PORT = 22
# A rule wider than this many ports is reported as a range instead of being expanded.
_MAX_EXPANDED = 64

_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


# --- ansible output -----------------------------------------------------------------------------


def play_recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters per host (the default callback's last block)."""
    _, found, recap = output.rpartition("PLAY RECAP")
    if not found:
        raise AssertionError(f"no PLAY RECAP in the output:\n{output[-3000:]}")
    return {
        match["host"]: {key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")}
        for match in _RECAP.finditer(recap)
    }


def inventory_graph(text: str) -> dict[str, set[str]]:
    """Group -> hosts (direct members) from `ansible-inventory --graph`."""
    groups: dict[str, set[str]] = {}
    parents: list[str] = []
    for line in text.splitlines():
        name = line.rsplit("--", 1)[-1].strip().rstrip(":")
        if not name:
            continue
        depth = line.index(name) // 3
        del parents[depth:]
        if name.startswith("@"):
            groups.setdefault(name[1:], set())
            parents.append(name[1:])
        elif parents:
            groups[parents[-1]].add(name)
    return groups


# --- security groups ----------------------------------------------------------------------------


def _ports(permission: Mapping[str, Any]) -> tuple[str, list[str]]:
    protocol = str(permission["IpProtocol"])
    if protocol == "-1":
        return "all", ["all"]
    low, high = int(permission.get("FromPort", -1)), int(permission.get("ToPort", -1))
    if high - low >= _MAX_EXPANDED:
        return protocol, [f"{low}-{high}"]
    return protocol, [str(port) for port in range(low, high + 1)]


def security_group_edges(
    groups: Sequence[Mapping[str, Any]], tier_of_group: Mapping[str, str], cidr_names: Mapping[str, str]
) -> set[Edge]:
    """Every inbound edge the groups allow, from describe_security_groups output.

    ``tier_of_group`` maps the project's group ids to their tiers; ``cidr_names`` names the known CIDRs.
    """
    edges: set[Edge] = set()
    for group in groups:
        target = tier_of_group[group["GroupId"]]
        for permission in group["IpPermissions"]:
            protocol, ports = _ports(permission)
            sources = [
                tier_of_group.get(pair["GroupId"], f"unknown:{pair['GroupId']}")
                for pair in permission.get("UserIdGroupPairs", [])
            ]
            sources += [
                cidr_names.get(item["CidrIp"], f"unknown:{item['CidrIp']}") for item in permission.get("IpRanges", [])
            ]
            sources += [
                cidr_names.get(item["CidrIpv6"], f"unknown:{item['CidrIpv6']}")
                for item in permission.get("Ipv6Ranges", [])
            ]
            sources += [f"unknown:{item['PrefixListId']}" for item in permission.get("PrefixListIds", [])]
            edges.update((source, target, protocol, port) for source in sources for port in ports)
    return edges


def topology_edges(links: Iterable[Mapping[str, Any]], tiers: Iterable[str]) -> set[Edge]:
    """The edges the topology allows: its links (``internet`` is the gatekeeper's public CIDRs), and SSH
    from the operator to every tier."""
    edges = {(link["from"], link["to"], "tcp", str(int(port))) for link in links for port in link["ports"]}
    edges.update((OPERATOR, tier, "tcp", str(SSH_PORT)) for tier in tiers)
    return edges


def isolation_matrix(edges: set[Edge]) -> str:
    """The edges as a readable table, source by target, for assertion messages."""
    sources = sorted({edge[0] for edge in edges})
    targets = sorted({edge[1] for edge in edges})
    rows = [["from \\ to", *targets]]
    for source in sources:
        cells = []
        for target in targets:
            ports = sorted((e[3] for e in edges if e[0] == source and e[1] == target), key=lambda p: (len(p), p))
            cells.append(",".join(ports) or "-")
        rows.append([source, *cells])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)


# --- moto's request recording -------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """One recorded EC2/STS query-API request: its action and its flattened parameters."""

    action: str
    params: Mapping[str, str]

    def values(self, pattern: str) -> list[str]:
        """Parameter values whose key matches ``pattern`` (e.g. ``InstanceId\\.\\d+``), in key order."""
        regex = re.compile(pattern)
        return [value for key, value in sorted(self.params.items()) if regex.fullmatch(key)]

    @property
    def mutating(self) -> bool:
        return not self.action.startswith(("Describe", "Get", "List"))


def parse_recording(text: str) -> list[ApiCall]:
    """The query-API calls of moto's recording (one JSON object per line), in the order received."""
    calls = []
    for line in text.splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        params = parse_qs(body) if isinstance(body, str) else {}
        if "Action" not in params:
            params = parse_qs(urlsplit(entry.get("url", "")).query)
        if "Action" in params:
            flat = {key: values[0] for key, values in params.items()}
            calls.append(ApiCall(flat.pop("Action"), flat))
    return calls


# --- the dependency rules of AWS, replayed ------------------------------------------------------


@dataclass(frozen=True)
class ProjectState:
    """What the project owns before a teardown: instance -> its groups, group -> the groups its inbound
    rules name (itself excluded: a self-reference never blocks a deletion), key pair names."""

    instances: Mapping[str, frozenset[str]]
    references: Mapping[str, frozenset[str]]
    keys: frozenset[str]


def teardown_violations(calls: Sequence[ApiCall], state: ProjectState) -> list[str]:
    """Replay recorded calls against the rules AWS enforces, and our own order; return what breaks them.

    AWS refuses DeleteSecurityGroup while an instance (still running or shutting down) uses the group, or
    while another group's rule names it. TerminateInstances only starts the shutdown: an instance counts as
    gone once a later DescribeInstances has observed it (that is what waiting means). The key pair must go
    last. Any change to a resource the project does not own is a violation too.
    """
    violations: list[str] = []
    live = {instance: set(groups) for instance, groups in state.instances.items()}
    references = {group: set(named) - {group} for group, named in state.references.items()}
    terminating: set[str] = set()
    deleted_groups: set[str] = set()
    deleted_keys: set[str] = set()
    for step, call in enumerate(calls):
        where = f"call {step} {call.action}"
        if call.action == "TerminateInstances":
            for instance in call.values(r"InstanceId\.\d+"):
                if instance not in state.instances:
                    violations.append(f"{where}: terminates {instance}, which is not the project's")
                terminating.add(instance)
        elif call.action == "DescribeInstances":
            for instance in terminating:
                live.pop(instance, None)
            terminating.clear()
        elif call.action == "RevokeSecurityGroupIngress":
            group = call.params.get("GroupId", "")
            if group not in references:
                violations.append(f"{where}: changes {group}, which is not the project's")
                continue
            references[group] -= set(call.values(r"IpPermissions\.\d+\.Groups\.\d+\.GroupId"))
        elif call.action == "DeleteSecurityGroup":
            group = call.params.get("GroupId", "")
            if group not in references:
                violations.append(f"{where}: deletes {group}, which is not the project's")
                continue
            users = sorted(instance for instance, groups in live.items() if group in groups)
            if users:
                violations.append(f"{where}: {group} is still used by instances {users} (DependencyViolation)")
            naming = sorted(
                other
                for other, named in references.items()
                if other != group and other not in deleted_groups and group in named
            )
            if naming:
                violations.append(f"{where}: {group} is still named by the rules of {naming} (DependencyViolation)")
            deleted_groups.add(group)
        elif call.action == "DeleteKeyPair":
            key = call.params.get("KeyName", "")
            if key not in state.keys:
                violations.append(f"{where}: deletes key pair {key}, which is not the project's")
            if live or set(references) - deleted_groups:
                violations.append(f"{where}: key pair {key} deleted before the instances and groups were gone")
            deleted_keys.add(key)
        elif call.mutating:
            violations.append(f"{where}: unexpected change during a teardown")
    if live:
        violations.append(f"instances never observed terminated: {sorted(live)}")
    if set(references) - deleted_groups:
        violations.append(f"groups left: {sorted(set(references) - deleted_groups)}")
    if state.keys - deleted_keys:
        violations.append(f"key pairs left: {sorted(state.keys - deleted_keys)}")
    return violations
