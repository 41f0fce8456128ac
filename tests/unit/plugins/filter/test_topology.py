# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The security-group filters of plugins/filter/topology.py, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cloudpatterns.mysql.plugins.filter.topology import (
    FilterModule,
    invalid_cidrs,
    security_group_rules,
    topology_links,
    topology_nodes,
)

ROLES = ["mysql_standalone", "cluster_manager", "sql_node", "sql_proxy", "trusted_host", "gatekeeper", "bench"]
NODES = topology_nodes(
    [
        {"name": "standalone", "roles": ["mysql_standalone"], "tier": "standalone"},
        {"name": "manager", "roles": ["cluster_manager", "sql_node"], "tier": "cluster"},
        {"name": "proxy", "roles": ["sql_proxy"], "tier": "proxy"},
        {"name": "trusted", "roles": ["trusted_host"], "tier": "trusted"},
        {"name": "gatekeeper1", "roles": ["gatekeeper"], "tier": "gatekeeper"},
        {"name": "bench1", "roles": ["bench"], "tier": "bench"},
    ],
    "t2.micro",
    ROLES,
)
LINKS = topology_links(
    [
        {"from": "internet", "to": "gatekeeper", "ports": [3000]},
        {"from": "bench", "to": "gatekeeper", "ports": [3000]},
        {"from": "gatekeeper", "to": "trusted", "ports": [8000]},
        {"from": "trusted", "to": "proxy", "ports": [9000]},
        {"from": "proxy", "to": "cluster", "ports": [3306]},
        {"from": "bench", "to": "cluster", "ports": [3306]},
        {"from": "cluster", "to": "cluster", "ports": [3306, 1186, 2202]},
        {"from": "bench", "to": "standalone", "ports": [3306]},
    ],
    NODES,
    "proj",
)
GROUPS = {tier: f"sg-{tier}" for tier in ("standalone", "cluster", "proxy", "trusted", "gatekeeper", "bench")}
OPERATOR = ["203.0.113.7/32"]
SSH = {"proto": "tcp", "ports": [22], "cidr_ip": OPERATOR, "rule_desc": "ssh from the operator"}


def rules(tier: str, public: list[str] | None = None, ssh: list[str] | None = None) -> list[dict[str, Any]]:
    return security_group_rules(LINKS, tier, GROUPS, public or ["0.0.0.0/0"], ssh or OPERATOR)


# --- security_group_rules ------------------------------------------------------------------------


def test_gatekeeper_is_open_to_the_public_cidrs_and_the_bench_group() -> None:
    assert rules("gatekeeper") == [
        {"proto": "tcp", "ports": [3000], "group_id": ["sg-bench"], "rule_desc": "link bench->gatekeeper"},
        {"proto": "tcp", "ports": [3000], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "link internet->gatekeeper"},
        SSH,
    ]


def test_each_private_tier_accepts_only_its_upstream_group() -> None:
    assert rules("trusted") == [
        {"proto": "tcp", "ports": [8000], "group_id": ["sg-gatekeeper"], "rule_desc": "link gatekeeper->trusted"},
        SSH,
    ]
    assert rules("proxy") == [
        {"proto": "tcp", "ports": [9000], "group_id": ["sg-trusted"], "rule_desc": "link trusted->proxy"},
        SSH,
    ]
    assert rules("standalone") == [
        {"proto": "tcp", "ports": [3306], "group_id": ["sg-bench"], "rule_desc": "link bench->standalone"},
        SSH,
    ]


def test_cluster_members_reach_each_other_on_the_engine_ports_only() -> None:
    assert rules("cluster") == [
        {"proto": "tcp", "ports": [3306], "group_id": ["sg-bench"], "rule_desc": "link bench->cluster"},
        {"proto": "tcp", "ports": [1186, 2202, 3306], "group_id": ["sg-cluster"], "rule_desc": "link cluster->cluster"},
        {"proto": "tcp", "ports": [3306], "group_id": ["sg-proxy"], "rule_desc": "link proxy->cluster"},
        SSH,
    ]


def test_a_tier_nobody_links_to_only_accepts_ssh() -> None:
    assert rules("bench") == [SSH]


def test_ipv6_cidrs_become_cidr_ipv6_rules() -> None:
    gatekeeper = rules("gatekeeper", public=["0.0.0.0/0", "::/0"], ssh=["203.0.113.7/32", "2001:db8::/64"])
    assert gatekeeper[1:] == [
        {"proto": "tcp", "ports": [3000], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "link internet->gatekeeper"},
        {"proto": "tcp", "ports": [3000], "cidr_ipv6": ["::/0"], "rule_desc": "link internet->gatekeeper"},
        {"proto": "tcp", "ports": [22], "cidr_ip": ["203.0.113.7/32"], "rule_desc": "ssh from the operator"},
        {"proto": "tcp", "ports": [22], "cidr_ipv6": ["2001:db8::/64"], "rule_desc": "ssh from the operator"},
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_ids": {**GROUPS, "bench": ""}}, "tier 'bench' has no security group id"),
        ({"group_ids": ["sg-1"]}, "as a mapping tier -> id"),
        ({"public_cidrs": []}, "no public CIDR is given"),
        ({"public_cidrs": ["0.0.0.0"]}, "are not CIDRs"),
        ({"ssh_cidrs": []}, "at least one CIDR for SSH"),
        ({"ssh_cidrs": "203.0.113.7/32"}, "as lists"),
        ({"ssh_cidrs": ["203.0.113.7/24"]}, "are not CIDRs"),
    ],
)
def test_bad_input_is_refused_with_a_message(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"group_ids": GROUPS, "public_cidrs": ["0.0.0.0/0"], "ssh_cidrs": OPERATOR, **kwargs}
    with pytest.raises(AnsibleFilterError, match=message):
        security_group_rules(LINKS, "gatekeeper", **arguments)


# --- invalid_cidrs -------------------------------------------------------------------------------


def test_valid_cidrs_pass() -> None:
    assert invalid_cidrs(["203.0.113.7/32", "0.0.0.0/0", "10.0.0.0/8", "2001:db8::/64", "::/0"]) == []


@pytest.mark.parametrize(
    "cidr",
    ["", "203.0.113.7", "203.0.113.7/24", "203.0.113.7/33", "300.1.1.1/32", "example.com/32", "2001:db8::1/64", None],
)
def test_invalid_cidrs_are_returned(cidr: Any) -> None:
    assert invalid_cidrs(["10.0.0.0/8", cidr]) == [cidr]


def test_invalid_cidrs_wants_a_list() -> None:
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        invalid_cidrs("203.0.113.7/32")


def test_the_filters_are_registered() -> None:
    filters = FilterModule().filters()
    assert filters["security_group_rules"] is security_group_rules
    assert filters["invalid_cidrs"] is invalid_cidrs
