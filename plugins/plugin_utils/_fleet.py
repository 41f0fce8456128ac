# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The logic of the fleet inventory: hosts, groups and variables from the backends' plain data.

No I/O here. The Docker functions read containers and networks as the Docker API inspects them
(``container.attrs``, ``network.attrs``); the AWS functions read EC2 ``Instance`` dicts as
``describe_instances`` returns them, grouped by region. Every inconsistency raises AnsibleParserError
with a message that names the resource and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible.errors import AnsibleParserError

# Docker labels and EC2 tags written by the provisioning roles (provision_docker, provision_aws).
LABEL_PROJECT = "cloudpatterns.project"
LABEL_NODE = "cloudpatterns.node"
LABEL_ROLES = "cloudpatterns.roles"
LABEL_TIER = "cloudpatterns.tier"
LABEL_LINK_TIERS = "cloudpatterns.tiers"
TAG_PROJECT = "Project"
TAG_NODE = "Node"
TAG_ROLES = "Role"
TAG_TIER = "Tier"

# The interpreter of the lab's Debian 12 image: naming it skips interpreter discovery on every host.
DOCKER_PYTHON = "/usr/bin/python3"

_TIER = re.compile(r"^[a-z][a-z0-9_]*$")
_DOCKER_FIX = (
    "recreate it with the provisioning playbook (it writes the cloudpatterns.node, cloudpatterns.roles "
    "and cloudpatterns.tier labels), or remove it from the project"
)
_AWS_FIX = (
    "tag it as the provisioning playbook does (Node, Role, Tier), or terminate it"
)


@dataclass(frozen=True)
class FleetHost:
    """One inventory host: its name, the groups it joins and its variables."""

    name: str
    roles: tuple[str, ...]
    tier: str
    hostvars: Mapping[str, Any]
    origin: str  # the container or instance behind the host, for error messages

    @property
    def groups(self) -> list[str]:
        return [*self.roles, f"tier_{self.tier}"]


def split_list(value: str | None) -> tuple[str, ...]:
    """Split a comma-separated label or tag value, dropping blanks and repeats, keeping order."""
    items: list[str] = []
    for item in (value or "").split(","):
        item = item.strip()
        if item and item not in items:
            items.append(item)
    return tuple(items)


def _identity(
    origin: str,
    values: Mapping[str, str | None],
    keys: tuple[str, str, str],
    known_roles: Sequence[str],
    fix: str,
) -> tuple[str, tuple[str, ...], str]:
    """Check the node, roles and tier a container or instance carries under ``keys``."""
    node_key, roles_key, tier_key = keys
    node = (values.get(node_key) or "").strip()
    roles = split_list(values.get(roles_key))
    tier = (values.get(tier_key) or "").strip()
    for key, present in ((node_key, node), (roles_key, roles), (tier_key, tier)):
        if not present:
            raise AnsibleParserError(
                f"{origin} belongs to the project but has no {key!r} value: {fix}."
            )
    for role in roles:
        if role not in known_roles:
            raise AnsibleParserError(
                f"Host {node} ({origin}) has role {role!r} in {roles_key!r}, which is not in known_roles "
                f"({', '.join(known_roles)}). Correct the {roles_key!r} value ({fix}), or add {role!r} to "
                "known_roles in the inventory file if the collection has gained that role."
            )
    if not _TIER.match(tier):
        raise AnsibleParserError(
            f"Host {node} ({origin}) has tier {tier!r} in {tier_key!r}; a tier is a lower-case word "
            f"(letters, digits, underscores) as in topology_nodes: {fix}."
        )
    return node, roles, tier


def _link_tiers(network: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(split_list((network.get("Labels") or {}).get(LABEL_LINK_TIERS)))


def docker_addresses(
    tier: str, ips: Mapping[str, str], networks: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, str], str | None]:
    """The container's address per peer tier (fleet_addresses) and its private address.

    A network of the link {A, B} gives a container of tier A the address B reaches it at; a self-link
    {A} (or {A, A}) gives the address its own tier reaches it at, which is also its private address.
    Without a self-link the private address is the one on the first network by name.
    """
    addresses: dict[str, str] = {}
    private = None
    for name in sorted(ips):
        tiers = _link_tiers(networks.get(name, {}))
        if tier not in tiers:
            continue
        peers = tiers - {tier}
        if not peers:
            private = ips[name]
        for peer in peers or {tier}:
            addresses[peer] = ips[name]
    if private is None and ips:
        private = ips[min(ips)]
    return dict(sorted(addresses.items())), private


def docker_host(
    container: Mapping[str, Any],
    networks: Mapping[str, Mapping[str, Any]],
    known_roles: Sequence[str],
    docker_host_url: str,
) -> FleetHost:
    """The host a running container stands for; ``networks`` maps network names to their attrs."""
    name = str(container.get("Name", "")).lstrip("/")
    origin = f"container {name}"
    labels = (container.get("Config") or {}).get("Labels") or {}
    node, roles, tier = _identity(
        origin, labels, (LABEL_NODE, LABEL_ROLES, LABEL_TIER), known_roles, _DOCKER_FIX
    )
    attached = ((container.get("NetworkSettings") or {}).get("Networks")) or {}
    ips = {
        net: attrs["IPAddress"]
        for net, attrs in attached.items()
        if (attrs or {}).get("IPAddress")
    }
    addresses, private = docker_addresses(tier, ips, networks)
    return FleetHost(
        name=node,
        roles=roles,
        tier=tier,
        origin=origin,
        hostvars={
            # The Docker API connection: several times faster than the docker CLI one (no process per task).
            "ansible_connection": "community.docker.docker_api",
            "ansible_host": name,
            # The connection must talk to the engine the inventory found the container on.
            "ansible_docker_docker_host": docker_host_url,
            "ansible_python_interpreter": DOCKER_PYTHON,
            **_fleet_vars(node, roles, tier, private, addresses, None),
        },
    )


def aws_host(
    instance: Mapping[str, Any],
    region: str,
    known_roles: Sequence[str],
    *,
    hostname_address: str,
    ssh_user: str,
    ssh_private_key_file: str,
) -> FleetHost:
    """The host a running EC2 instance stands for."""
    instance_id = instance["InstanceId"]
    origin = f"EC2 instance {instance_id} in {region}"
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags") or []}
    node, roles, tier = _identity(
        origin, tags, (TAG_NODE, TAG_ROLES, TAG_TIER), known_roles, _AWS_FIX
    )
    private = instance.get("PrivateIpAddress")
    public = instance.get("PublicIpAddress")
    return FleetHost(
        name=node,
        roles=roles,
        tier=tier,
        origin=origin,
        hostvars={
            # An instance without a public address is reached on its private one (from inside the VPC).
            "ansible_host": public
            if hostname_address == "public" and public
            else private,
            "ansible_user": ssh_user,
            "ansible_ssh_private_key_file": ssh_private_key_file,
            "fleet_instance_id": instance_id,
            "fleet_instance_type": instance.get("InstanceType"),
            "fleet_region": region,
            # One private address serves every tier: security groups, not networks, isolate the tiers.
            **_fleet_vars(node, roles, tier, private, {}, public),
        },
    )


def _fleet_vars(
    node: str,
    roles: tuple[str, ...],
    tier: str,
    private: str | None,
    addresses: dict[str, str],
    public: str | None,
) -> dict[str, Any]:
    return {
        "fleet_node": node,
        "fleet_roles": list(roles),
        "fleet_tier": tier,
        "fleet_private_address": private,
        "fleet_addresses": addresses,
        "fleet_public_address": public,
    }


def unique_hosts(hosts: Iterable[FleetHost]) -> list[FleetHost]:
    """The hosts sorted by name; two resources claiming one host name is an error."""
    by_name: dict[str, FleetHost] = {}
    for host in hosts:
        other = by_name.get(host.name)
        if other is not None:
            raise AnsibleParserError(
                f"{other.origin} and {host.origin} both claim host {host.name}: remove the one that should "
                "not be there (a host name is unique within a project)."
            )
        by_name[host.name] = host
    return [by_name[name] for name in sorted(by_name)]


def docker_fleet(
    source: Mapping[str, Sequence[Mapping[str, Any]]],
    known_roles: Sequence[str],
    docker_host_url: str,
) -> list[FleetHost]:
    """Hosts from ``{"containers": [container attrs], "networks": [network attrs]}``."""
    networks = {network["Name"]: network for network in source["networks"]}
    return unique_hosts(
        docker_host(container, networks, known_roles, docker_host_url)
        for container in source["containers"]
    )


def aws_fleet(
    source: Mapping[str, Sequence[Mapping[str, Any]]],
    known_roles: Sequence[str],
    *,
    hostname_address: str,
    ssh_user: str,
    ssh_private_key_file: str,
) -> list[FleetHost]:
    """Hosts from ``{region: [instance]}``."""
    return unique_hosts(
        aws_host(
            instance,
            region,
            known_roles,
            hostname_address=hostname_address,
            ssh_user=ssh_user,
            ssh_private_key_file=ssh_private_key_file,
        )
        for region, instances in source.items()
        for instance in instances
    )


def fleet_groups(
    hosts: Sequence[FleetHost], known_roles: Sequence[str]
) -> dict[str, list[str]]:
    """Group name -> host names: every known role (even empty), then each tier present."""
    groups: dict[str, list[str]] = {role: [] for role in known_roles}
    for host in hosts:
        for group in host.groups:
            groups.setdefault(group, []).append(host.name)
    return groups


def default_ssh_key_file(
    config_path: str, project: str, secrets_dir: str | None
) -> str:
    """Where provisioning writes the project's SSH key.

    The same directory as the secrets_dir variable: $CLOUDPATTERNS_SECRETS_DIR when set, otherwise
    ``.secrets/<project>`` beside the inventory directory (the repository root for inventory/aws.yml).
    """
    if secrets_dir:
        return os.path.join(secrets_dir, "id_ed25519")
    inventory_dir = os.path.dirname(os.path.abspath(config_path))
    return os.path.normpath(
        os.path.join(inventory_dir, os.pardir, ".secrets", project, "id_ed25519")
    )
