# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet
short_description: The hosts of a cloudpatterns.mysql deployment, from Docker containers or EC2 instances
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - Lists the running hosts of one project (one deployment of the topology) from one backend, the local
    Docker lab (O(backend=docker)) or AWS EC2 (O(backend=aws)), and groups them by role and by tier.
  - "Docker: containers labelled C(cloudpatterns.project=<project>); the labels C(cloudpatterns.node)
    (inventory hostname), C(cloudpatterns.roles) (comma-separated roles) and C(cloudpatterns.tier) describe
    each host. Networks labelled C(cloudpatterns.project) and C(cloudpatterns.tiers) (the two tiers of a link)
    give each host's address per peer tier. Hosts are reached with the C(community.docker.docker_api) connection."
  - "AWS: instances in state C(running) tagged C(Project=<project>), in the listed O(regions) only; the tags
    C(Node), C(Role) (comma-separated roles) and C(Tier) describe each host. Hosts are reached over SSH."
  - Every role of O(known_roles) is a group, even when empty, and every tier is a group C(tier_<tier>). A host
    with several roles is in each of their groups.
  - Host variables C(fleet_node), C(fleet_roles), C(fleet_tier), C(fleet_private_address),
    C(fleet_public_address) and C(fleet_addresses) (tier -> the address at which that tier reaches the host;
    empty on AWS, where the private address serves every tier). AWS hosts also get C(fleet_instance_id),
    C(fleet_instance_type) and C(fleet_region).
  - The group C(all) gets C(fleet_backend), C(fleet_project), C(fleet_known_roles) and, on AWS,
    C(fleet_region) (the first region); the implicit localhost sees them, so provisioning plays know their
    target.
  - A configuration error, an unreachable backend or a host carrying an unknown role fails the parse. A
    project without hosts only warns, so that playbooks can provision and then refresh the inventory
    (C(ansible.builtin.meta) V(refresh_inventory)).
  - The configuration file name ends in C(fleet.yml) or C(fleet.yaml), or any C(.yml)/C(.yaml) file names
    this plugin in its C(plugin) key.
requirements:
  - docker (the Docker SDK for Python) for the docker backend
  - boto3 for the aws backend
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it marks the file as a fleet inventory.
    type: str
    required: true
    choices: [cloudpatterns.mysql.fleet]
  backend:
    description: Where the hosts run.
    type: str
    required: true
    choices: [docker, aws]
  project:
    description:
      - Required. The deployment to list, the value of the C(cloudpatterns.project) label or C(Project) tag.
      - It must equal the topology's C(topology_project), which provisioning writes on every resource.
    type: str
    env:
      - name: CLOUDPATTERNS_PROJECT
  known_roles:
    description:
      - The roles a host may carry; each one is a group, even when no host has it.
      - A host carrying any other role fails the parse.
    type: list
    elements: str
    default: [mysql_standalone, cluster_manager, cluster_worker, sql_node, sql_proxy, trusted_host, gatekeeper, bench]
  docker_host:
    description:
      - The Docker engine's address (docker backend). The C(community.docker.docker_api) connection of every
        host is pointed at it too.
    type: str
    default: unix:///var/run/docker.sock
    env:
      - name: DOCKER_HOST
  regions:
    description:
      - The AWS regions to list (aws backend; required there). The plugin never scans every region.
      - "Precedence: this option in the file, then E(AWS_REGION), then E(AWS_DEFAULT_REGION)."
    type: list
    elements: str
    default: []
    env:
      - name: AWS_REGION
      - name: AWS_DEFAULT_REGION
  hostname_address:
    description:
      - Which address of an instance becomes C(ansible_host) (aws backend).
      - With V(public), an instance without a public address is reached at its private address.
    type: str
    default: public
    choices: [public, private]
  aws_profile:
    description: The AWS profile (from C(~/.aws/config)) to use (aws backend); unset uses the default chain.
    type: str
    env:
      - name: AWS_PROFILE
  endpoint_url:
    description:
      - The EC2 API endpoint (aws backend), for an AWS emulator such as moto; unset uses AWS's own.
    type: str
    env:
      - name: AWS_ENDPOINT_URL
  ssh_user:
    description: The SSH user of the instances (aws backend), C(ansible_user).
    type: str
    default: ubuntu
  ssh_private_key_file:
    description:
      - The SSH private key for the instances (aws backend), C(ansible_ssh_private_key_file).
      - Unset, the key provisioning writes into the secrets directory, C($CLOUDPATTERNS_SECRETS_DIR/id_ed25519)
        when that variable is set, otherwise C(<inventory file directory>/../.secrets/<project>/id_ed25519).
    type: path
"""

EXAMPLES = r"""
# inventory/local.yml: the local Docker lab.
plugin: cloudpatterns.mysql.fleet
backend: docker
project: cloudpatterns-mysql

---
# inventory/aws.yml: EC2 in one region, reached on public addresses with the provisioned key.
plugin: cloudpatterns.mysql.fleet
backend: aws
project: cloudpatterns-mysql
regions: [eu-west-1]

---
# AWS through a bastion: private addresses, an own key, and a group per instance type.
plugin: cloudpatterns.mysql.fleet
backend: aws
project: cloudpatterns-mysql
regions: [eu-west-1, eu-central-1]
hostname_address: private
ssh_private_key_file: ~/.ssh/cloudpatterns
keyed_groups:
  - key: fleet_instance_type
    prefix: type
compose:
  ansible_ssh_common_args: "'-o ProxyJump=ubuntu@bastion.example.com'"

---
# Cache the listing for five minutes (refresh_inventory always reads the backend again).
plugin: cloudpatterns.mysql.fleet
backend: docker
project: cloudpatterns-mysql
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/cloudpatterns-inventory
cache_timeout: 300
"""

import os
import re
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleOptionsError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible_collections.cloudpatterns.mysql.plugins.plugin_utils._fleet import (
    LABEL_PROJECT,
    TAG_PROJECT,
    FleetHost,
    aws_fleet,
    default_ssh_key_file,
    docker_fleet,
    fleet_groups,
)
from ansible_collections.cloudpatterns.mysql.plugins.plugin_utils._fleet_sources import (
    fetch_aws,
    fetch_docker,
)

_PLUGIN_KEY = re.compile(
    r"""^plugin:\s*["']?cloudpatterns\.mysql\.fleet["']?\s*(?:#.*)?$""", re.MULTILINE
)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Hosts of one cloudpatterns.mysql project, from Docker or EC2."""

    NAME = "cloudpatterns.mysql.fleet"

    def verify_file(self, path: str) -> bool:
        if not super().verify_file(path):
            return False
        if path.endswith(("fleet.yml", "fleet.yaml")):
            return True
        if not path.endswith((".yml", ".yaml")):
            return False
        # Any other YAML file is ours only if it names this plugin; a regex spares parsing every file.
        try:
            with open(path, encoding="utf-8", errors="replace") as config:
                return bool(_PLUGIN_KEY.search(config.read()))
        except OSError:
            return False

    def parse(
        self,
        inventory: InventoryData,
        loader: DataLoader,
        path: str,
        cache: bool = True,
    ) -> None:
        super().parse(inventory, loader, path, cache)
        try:
            self._read_config_data(path)
        except AnsibleOptionsError as err:
            raise AnsibleParserError(
                f"{path} has an invalid or missing option; `ansible-doc -t inventory {self.NAME}` "
                "lists the options and their valid values"
            ) from err

        backend = self.get_option("backend")
        project = self.get_option("project")
        known_roles = self.get_option("known_roles")
        if not project:
            raise AnsibleParserError(
                f"{path} sets no project: add `project: <name>` equal to topology_project (the name every "
                "resource of the deployment is labelled or tagged with), or export CLOUDPATTERNS_PROJECT."
            )

        if backend == "docker":
            docker_host = self.get_option("docker_host")
            source = self._cached(
                path, cache, lambda: fetch_docker(project, docker_host)
            )
            hosts = docker_fleet(source, known_roles, docker_host)
            where = f"no running container labelled {LABEL_PROJECT}={project} on {docker_host}"
            all_vars: dict[str, Any] = {}
        else:
            regions = self.get_option("regions")
            if not regions:
                raise AnsibleParserError(
                    f"The aws backend needs the regions to list: set `regions: [eu-west-1]` (for example) in "
                    f"{path}, or export AWS_REGION. The plugin never scans every region."
                )
            profile = self.get_option("aws_profile")
            endpoint_url = self.get_option("endpoint_url")
            source = self._cached(
                path, cache, lambda: fetch_aws(project, regions, profile, endpoint_url)
            )
            hosts = aws_fleet(
                source,
                known_roles,
                hostname_address=self.get_option("hostname_address"),
                ssh_user=self.get_option("ssh_user"),
                ssh_private_key_file=self.get_option("ssh_private_key_file")
                or default_ssh_key_file(
                    path, project, os.environ.get("CLOUDPATTERNS_SECRETS_DIR")
                ),
            )
            where = f"no running EC2 instance tagged {TAG_PROJECT}={project} in {', '.join(regions)}"
            all_vars = {"fleet_region": regions[0]}

        all_vars.update(
            fleet_backend=backend,
            fleet_project=project,
            fleet_known_roles=list(known_roles),
        )
        for name, value in all_vars.items():
            self.inventory.set_variable("all", name, value)
        self._populate(hosts, known_roles)
        if not hosts:
            self.display.warning(
                f"The fleet inventory {path} ({backend} backend) is empty: {where}. Deploy the project with "
                f"`ansible-playbook -i {path} playbooks/standalone.yml` (or playbooks/cluster.yml); until then "
                "only localhost is targeted."
            )

    def _cached(
        self, path: str, cache: bool, fetch: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """The backend's data, from the inventory cache when it is enabled and fresh."""
        if not self.get_option("cache"):
            return fetch()
        key = self.get_cache_key(path)
        # cache is False on --flush-cache and meta: refresh_inventory: read the backend, then store.
        if cache:
            try:
                return self._cache[key]
            except KeyError:
                pass
        source = fetch()
        self._cache[key] = source
        return source

    def _populate(self, hosts: list[FleetHost], known_roles: list[str]) -> None:
        # A node may share its name with a role (bench, gatekeeper). InventoryData.set_variable and
        # add_child resolve such a name to the group, so variables go on the Host object, memberships
        # through add_host, and compose (which calls set_variable) runs before the role groups exist.
        strict = self.get_option("strict")
        for host in hosts:
            self.inventory.add_host(host.name)
            inventory_host = self.inventory.get_host(host.name)
            for name, value in host.hostvars.items():
                inventory_host.set_variable(name, value)
            self._set_composite_vars(
                self.get_option("compose"),
                inventory_host.get_vars(),
                host.name,
                strict=strict,
            )
        for group, members in fleet_groups(hosts, known_roles).items():
            self.inventory.add_group(group)
            for member in members:
                self.inventory.add_host(member, group=group)
        for host in hosts:
            hostvars = self.inventory.get_host(host.name).get_vars()
            self._add_host_to_composed_groups(
                self.get_option("groups"), hostvars, host.name, strict=strict
            )
            self._add_host_to_keyed_groups(
                self.get_option("keyed_groups"), hostvars, host.name, strict=strict
            )
