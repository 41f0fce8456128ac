# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Tests of the fleet inventory plugin.

The grouping and variables are tested as pure functions over the backends' dict shapes; the docker
backend against the real Docker engine (throwaway containers and networks named cpm-test-inv-*); the aws
backend under moto; the command line with ansible-inventory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
import yaml
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.utils.display import Display
from ansible_collections.cloudpatterns.mysql.plugins.plugin_utils._fleet import (
    FleetHost,
    aws_fleet,
    default_ssh_key_file,
    docker_fleet,
    fleet_groups,
    split_list,
)
from moto import mock_aws
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[4]
# The ansible commands of the Python that runs the tests (the venv's).
BIN = Path(sys.executable).parent
PLUGIN = "cloudpatterns.mysql.fleet"
KNOWN_ROLES = [
    "mysql_standalone",
    "cluster_manager",
    "cluster_worker",
    "sql_node",
    "sql_proxy",
    "trusted_host",
    "gatekeeper",
    "bench",
]
# Images that run /bin/sleep and /usr/bin/python3: the lab's base image, or the probe built from it.
TEST_IMAGES = ("cloudpatterns/debian12-systemd:bookworm", "cptest/base:probe")
PREFIX = "cpm-test-inv-"


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Options read the environment: no test sees the developer's project, Docker or AWS settings."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "CLOUDPATTERNS_")) or name == "DOCKER_HOST":
            monkeypatch.delenv(name)


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(
        Display, "warning", lambda self, msg, *args, **kwargs: seen.append(msg)
    )
    return seen


def write_config(directory: Path, name: str = "fleet.yml", **options: Any) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump({"plugin": PLUGIN, **options}))
    return path


def parse(path: Path, cache: bool = False) -> InventoryData:
    """Run the plugin as the InventoryManager does, on a fresh InventoryData."""
    plugin = inventory_loader.get(PLUGIN)
    assert plugin.verify_file(str(path))
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), str(path), cache=cache)
    if plugin.get_option("cache"):
        plugin.update_cache_if_changed()
    inventory.reconcile_inventory()
    return inventory


def members(inventory: InventoryData, group: str) -> set[str]:
    return {host.name for host in inventory.groups[group].get_hosts()}


def hostvars(inventory: InventoryData, host: str) -> dict[str, Any]:
    return inventory.get_host(host).get_vars()


def parse_error(path: Path) -> str:
    with pytest.raises(AnsibleParserError) as caught:
        parse(path)
    return caught.value.message


# --- pure functions: Docker shapes ---------------------------------------------------------------


def network(name: str, tiers: str | None) -> dict[str, Any]:
    labels = {"cloudpatterns.project": "p"}
    if tiers is not None:
        labels.update({"cloudpatterns.link": name, "cloudpatterns.tiers": tiers})
    return {"Name": name, "Labels": labels}


def container(name: str, labels: dict[str, str], ips: dict[str, str]) -> dict[str, Any]:
    """A container as the Docker API inspects it (the keys the plugin reads)."""
    return {
        "Name": f"/{name}",
        "Config": {"Labels": {"cloudpatterns.project": "p", **labels}},
        "NetworkSettings": {
            "Networks": {
                net: {"IPAddress": ip, "NetworkID": net} for net, ip in ips.items()
            }
        },
    }


def node_labels(node: str, roles: str, tier: str) -> dict[str, str]:
    return {
        "cloudpatterns.node": node,
        "cloudpatterns.roles": roles,
        "cloudpatterns.tier": tier,
    }


LAB_NETWORKS = [
    network("p-cluster-cluster", "cluster"),
    network("p-proxy-cluster", "cluster,proxy"),
    network("p-bench-cluster", "bench,cluster"),
    network("p-trusted-proxy", "proxy,trusted"),
]
LAB_CONTAINERS = [
    container(
        "p-manager",
        node_labels("manager", "cluster_manager,sql_node", "cluster"),
        {
            "p-bench-cluster": "10.0.3.2",
            "p-cluster-cluster": "10.0.1.2",
            "p-proxy-cluster": "10.0.2.2",
        },
    ),
    container(
        "p-worker1",
        node_labels("worker1", "cluster_worker, sql_node", "cluster"),
        {"p-cluster-cluster": "10.0.1.3", "p-proxy-cluster": "10.0.2.3"},
    ),
    container(
        "p-proxy",
        node_labels("proxy", "sql_proxy", "proxy"),
        {"p-trusted-proxy": "10.0.4.2", "p-proxy-cluster": "10.0.2.4"},
    ),
]
DOCKER_HOST = "unix:///var/run/docker.sock"


def lab_fleet() -> dict[str, FleetHost]:
    source = {"containers": LAB_CONTAINERS, "networks": LAB_NETWORKS}
    return {host.name: host for host in docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)}


def test_docker_hosts_are_named_by_node_and_sorted() -> None:
    source = {"containers": LAB_CONTAINERS, "networks": LAB_NETWORKS}
    hosts = docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)
    assert [host.name for host in hosts] == ["manager", "proxy", "worker1"]


def test_docker_groups_by_every_role_and_tier() -> None:
    hosts = list(lab_fleet().values())
    groups = fleet_groups(hosts, KNOWN_ROLES)
    assert groups["cluster_manager"] == ["manager"]
    assert groups["sql_node"] == ["manager", "worker1"]
    assert groups["cluster_worker"] == ["worker1"]
    assert groups["sql_proxy"] == ["proxy"]
    assert groups["tier_cluster"] == ["manager", "worker1"]
    assert groups["tier_proxy"] == ["proxy"]
    # Every known role is a group, empty or not.
    assert groups["gatekeeper"] == [] and groups["mysql_standalone"] == []
    assert set(groups) == set(KNOWN_ROLES) | {"tier_cluster", "tier_proxy"}


def test_docker_addresses_per_peer_tier() -> None:
    manager = lab_fleet()["manager"].hostvars
    assert manager["fleet_addresses"] == {
        "bench": "10.0.3.2",
        "cluster": "10.0.1.2",
        "proxy": "10.0.2.2",
    }
    # The self-link network is where the host's own tier reaches it.
    assert manager["fleet_private_address"] == "10.0.1.2"


def test_docker_private_address_without_self_link_is_first_network_by_name() -> None:
    proxy = lab_fleet()["proxy"].hostvars
    assert proxy["fleet_addresses"] == {"cluster": "10.0.2.4", "trusted": "10.0.4.2"}
    assert (
        proxy["fleet_private_address"] == "10.0.2.4"
    )  # p-proxy-cluster < p-trusted-proxy


def test_docker_self_link_written_twice_counts_once() -> None:
    source = {
        "containers": [
            container(
                "p-w",
                node_labels("w", "cluster_worker", "cluster"),
                {"p-cc": "10.9.0.5"},
            )
        ],
        "networks": [network("p-cc", "cluster,cluster")],
    }
    (host,) = docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)
    assert host.hostvars["fleet_addresses"] == {"cluster": "10.9.0.5"}
    assert host.hostvars["fleet_private_address"] == "10.9.0.5"


def test_docker_networks_without_link_labels_give_no_tier_address() -> None:
    source = {
        "containers": [
            container(
                "p-s",
                node_labels("s", "mysql_standalone", "standalone"),
                {"bridge": "172.17.0.9"},
            )
        ],
        "networks": [],
    }
    (host,) = docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)
    assert host.hostvars["fleet_addresses"] == {}
    assert host.hostvars["fleet_private_address"] == "172.17.0.9"


def test_docker_connection_variables() -> None:
    worker = lab_fleet()["worker1"]
    assert worker.roles == ("cluster_worker", "sql_node")
    assert worker.hostvars == {
        "ansible_connection": "community.docker.docker_api",
        "ansible_host": "p-worker1",
        "ansible_docker_docker_host": DOCKER_HOST,
        "ansible_python_interpreter": "/usr/bin/python3",
        "fleet_node": "worker1",
        "fleet_roles": ["cluster_worker", "sql_node"],
        "fleet_tier": "cluster",
        "fleet_private_address": "10.0.1.3",
        "fleet_addresses": {"cluster": "10.0.1.3", "proxy": "10.0.2.3"},
        "fleet_public_address": None,
    }


def test_docker_unknown_role_names_host_role_and_fix() -> None:
    source = {
        "containers": [
            container("p-x", node_labels("x", "sql_node,dba", "cluster"), {})
        ],
        "networks": [],
    }
    with pytest.raises(AnsibleParserError) as caught:
        docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)
    message = caught.value.message
    assert (
        "Host x" in message and "'dba'" in message and "cloudpatterns.roles" in message
    )
    assert "known_roles" in message


@pytest.mark.parametrize(
    "missing", ["cloudpatterns.node", "cloudpatterns.roles", "cloudpatterns.tier"]
)
def test_docker_missing_label_is_an_error(missing: str) -> None:
    labels = node_labels("x", "sql_node", "cluster")
    del labels[missing]
    source = {"containers": [container("p-x", labels, {})], "networks": []}
    with pytest.raises(AnsibleParserError, match=missing):
        docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)


def test_docker_bad_tier_is_an_error() -> None:
    source = {
        "containers": [
            container("p-x", node_labels("x", "sql_node", "Cluster Tier"), {})
        ],
        "networks": [],
    }
    with pytest.raises(AnsibleParserError, match="tier 'Cluster Tier'"):
        docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)


def test_two_resources_claiming_one_host_is_an_error() -> None:
    twin = container(
        "p-manager-old", node_labels("manager", "cluster_manager", "cluster"), {}
    )
    source = {"containers": [*LAB_CONTAINERS, twin], "networks": LAB_NETWORKS}
    with pytest.raises(AnsibleParserError, match="both claim host manager"):
        docker_fleet(source, KNOWN_ROLES, DOCKER_HOST)


def test_split_list_drops_blanks_and_repeats() -> None:
    assert split_list(" a, b,,a ,c ") == ("a", "b", "c")
    assert split_list(None) == ()


# --- pure functions: EC2 shapes ------------------------------------------------------------------


def instance(
    instance_id: str, node: str, roles: str, tier: str, public: str | None = "54.1.2.3"
) -> dict[str, Any]:
    """An instance as describe_instances returns it (the keys the plugin reads)."""
    found: dict[str, Any] = {
        "InstanceId": instance_id,
        "InstanceType": "t2.micro",
        "PrivateIpAddress": "10.0.0.7",
        "Tags": [
            {"Key": "Project", "Value": "p"},
            {"Key": "Node", "Value": node},
            {"Key": "Role", "Value": roles},
            {"Key": "Tier", "Value": tier},
            {"Key": "Name", "Value": f"p-{node}"},
        ],
    }
    if public:
        found["PublicIpAddress"] = public
    return found


def ec2_fleet(
    source: dict[str, list[dict[str, Any]]], hostname_address: str = "public"
) -> list[FleetHost]:
    return aws_fleet(
        source,
        KNOWN_ROLES,
        hostname_address=hostname_address,
        ssh_user="ubuntu",
        ssh_private_key_file="/keys/id_ed25519",
    )


def test_aws_host_variables() -> None:
    (host,) = ec2_fleet(
        {
            "eu-west-1": [
                instance("i-1", "manager", "cluster_manager,sql_node", "cluster")
            ]
        }
    )
    assert host.name == "manager"
    assert host.groups == ["cluster_manager", "sql_node", "tier_cluster"]
    assert host.hostvars == {
        "ansible_host": "54.1.2.3",
        "ansible_user": "ubuntu",
        "ansible_ssh_private_key_file": "/keys/id_ed25519",
        "fleet_instance_id": "i-1",
        "fleet_instance_type": "t2.micro",
        "fleet_region": "eu-west-1",
        "fleet_node": "manager",
        "fleet_roles": ["cluster_manager", "sql_node"],
        "fleet_tier": "cluster",
        "fleet_private_address": "10.0.0.7",
        "fleet_addresses": {},
        "fleet_public_address": "54.1.2.3",
    }


def test_aws_private_hostname_address() -> None:
    (host,) = ec2_fleet(
        {"eu-west-1": [instance("i-1", "proxy", "sql_proxy", "proxy")]}, "private"
    )
    assert host.hostvars["ansible_host"] == "10.0.0.7"


def test_aws_instance_without_public_address_is_reached_privately() -> None:
    (host,) = ec2_fleet(
        {"eu-west-1": [instance("i-1", "proxy", "sql_proxy", "proxy", public=None)]}
    )
    assert host.hostvars["ansible_host"] == "10.0.0.7"
    assert host.hostvars["fleet_public_address"] is None


def test_aws_hosts_from_several_regions() -> None:
    hosts = ec2_fleet(
        {
            "us-east-1": [instance("i-2", "worker1", "cluster_worker", "cluster")],
            "eu-west-1": [instance("i-1", "manager", "cluster_manager", "cluster")],
        }
    )
    assert [(h.name, h.hostvars["fleet_region"]) for h in hosts] == [
        ("manager", "eu-west-1"),
        ("worker1", "us-east-1"),
    ]


def test_aws_unknown_role_names_the_tag() -> None:
    with pytest.raises(AnsibleParserError) as caught:
        ec2_fleet({"eu-west-1": [instance("i-9", "odd", "sql_node,dba", "cluster")]})
    message = caught.value.message
    assert (
        "Host odd" in message
        and "i-9" in message
        and "'dba'" in message
        and "'Role'" in message
    )


def test_aws_missing_tag_is_an_error() -> None:
    untagged = {"InstanceId": "i-5", "Tags": [{"Key": "Project", "Value": "p"}]}
    with pytest.raises(
        AnsibleParserError,
        match="i-5 in eu-west-1 belongs to the project but has no 'Node'",
    ):
        ec2_fleet({"eu-west-1": [untagged]})


def test_default_ssh_key_file_beside_the_inventory_directory() -> None:
    key = default_ssh_key_file("/repo/inventory/aws.yml", "proj", None)
    assert key == "/repo/.secrets/proj/id_ed25519"


def test_default_ssh_key_file_follows_the_secrets_directory() -> None:
    assert (
        default_ssh_key_file("/repo/inventory/aws.yml", "proj", "/vault/s")
        == "/vault/s/id_ed25519"
    )


# --- the plugin: configuration -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["local.yml", "aws.yml"])
def test_verify_file_accepts_the_repository_inventories(name: str) -> None:
    assert inventory_loader.get(PLUGIN).verify_file(str(REPO / "inventory" / name))


def test_verify_file_by_name_and_by_plugin_key(tmp_path: Path) -> None:
    plugin = inventory_loader.get(PLUGIN)
    named = tmp_path / "lab.fleet.yaml"
    named.write_text("{}\n")
    keyed = tmp_path / "lab.yml"
    keyed.write_text(
        "---\n# lab\nplugin: 'cloudpatterns.mysql.fleet'  # ours\nbackend: docker\n"
    )
    static = tmp_path / "hosts.yml"
    static.write_text("all:\n  hosts:\n    a:\n")
    other = tmp_path / "other.yml"
    other.write_text("plugin: amazon.aws.aws_ec2\n")
    ini = tmp_path / "hosts.ini"
    ini.write_text("plugin: cloudpatterns.mysql.fleet\n")
    assert plugin.verify_file(str(named))
    assert plugin.verify_file(str(keyed))
    assert not plugin.verify_file(str(static))
    assert not plugin.verify_file(str(other))
    assert not plugin.verify_file(str(ini))
    assert not plugin.verify_file(str(tmp_path / "missing.fleet.yml"))


def test_unknown_backend_fails(tmp_path: Path) -> None:
    message = parse_error(write_config(tmp_path, backend="kubernetes", project="p"))
    assert (
        "'kubernetes'" in message and "backend" in message and "ansible-doc" in message
    )


def test_missing_project_fails_with_the_fix(tmp_path: Path) -> None:
    message = parse_error(write_config(tmp_path, backend="docker"))
    assert "sets no project" in message and "CLOUDPATTERNS_PROJECT" in message


def test_unreachable_docker_fails_with_the_fix(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        backend="docker",
        project="p",
        docker_host=f"unix://{tmp_path}/no-docker.sock",
    )
    message = parse_error(path)
    assert "does not answer" in message and "Is the Docker engine running?" in message
    assert "docker_host" in message


def test_aws_without_region_fails(tmp_path: Path) -> None:
    message = parse_error(write_config(tmp_path, backend="aws", project="p"))
    assert (
        "regions" in message
        and "AWS_REGION" in message
        and "never scans every region" in message
    )


def test_aws_without_credentials_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    message = parse_error(
        write_config(tmp_path, backend="aws", project="p", regions=["eu-west-1"])
    )
    assert "No usable AWS credentials" in message
    assert "AWS_PROFILE" in message and "AWS_ACCESS_KEY_ID" in message


def test_aws_unknown_profile_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    path = write_config(
        tmp_path, backend="aws", project="p", regions=["eu-west-1"], aws_profile="nope"
    )
    message = parse_error(path)
    assert "Unknown AWS profile" in message and "nope" in message


# --- the plugin: docker backend against the real engine ------------------------------------------


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(
            f"These tests need a running Docker engine ({err}); see LAB.md to start one."
        )
    yield client
    client.close()


@pytest.fixture(scope="module")
def test_image(docker_client: docker.DockerClient) -> str:
    for image in TEST_IMAGES:
        try:
            docker_client.images.get(image)
        except docker.errors.ImageNotFound:
            continue
        return image
    pytest.fail(
        f"None of {TEST_IMAGES} exists: build the lab image (playbooks/standalone.yml does)."
    )


class DockerLab:
    """Throwaway labelled networks and containers of one project; removed by the fixture."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.project = f"{PREFIX}{uuid.uuid4().hex[:8]}"
        self.containers: list[Any] = []
        self.networks: list[Any] = []

    def network(self, link: str, tiers: str) -> str:
        name = f"{self.project}-{link}"
        labels = {
            "cloudpatterns.project": self.project,
            "cloudpatterns.link": link,
            "cloudpatterns.tiers": tiers,
        }
        self.networks.append(
            self.client.networks.create(name, driver="bridge", labels=labels)
        )
        return name

    def container(
        self, node: str, roles: str, tier: str, networks: list[str], start: bool = True
    ) -> Any:
        labels = {
            "cloudpatterns.project": self.project,
            **node_labels(node, roles, tier),
        }
        created = self.client.containers.create(
            self.image,
            ["/bin/sleep", "infinity"],
            name=f"{self.project}-{node}",
            labels=labels,
            network=networks[0],
        )
        self.containers.append(created)
        for extra in networks[1:]:
            self.client.networks.get(extra).connect(created)
        if start:
            created.start()
            created.reload()
        return created

    def remove(self) -> None:
        for created in self.containers:
            created.remove(force=True)
        for made in self.networks:
            made.remove()


@pytest.fixture(scope="module")
def lab(docker_client: docker.DockerClient, test_image: str) -> Iterator[DockerLab]:
    """A manager (two roles) on a self-link and a proxy link, a proxy, and a stopped worker."""
    made = DockerLab(docker_client, test_image)
    try:
        cluster = made.network("cluster-cluster", "cluster")
        proxy_cluster = made.network("proxy-cluster", "cluster,proxy")
        made.container(
            "manager", "cluster_manager,sql_node", "cluster", [cluster, proxy_cluster]
        )
        made.container("proxy", "sql_proxy", "proxy", [proxy_cluster])
        made.container(
            "worker1", "cluster_worker,sql_node", "cluster", [cluster], start=False
        )
        yield made
    finally:
        made.remove()


def ip(created: Any, network_name: str) -> str:
    return created.attrs["NetworkSettings"]["Networks"][network_name]["IPAddress"]


def test_docker_backend_lists_running_containers(
    lab: DockerLab, tmp_path: Path
) -> None:
    inventory = parse(write_config(tmp_path, backend="docker", project=lab.project))
    assert set(inventory.hosts) == {"manager", "proxy"}  # worker1 is not running
    assert members(inventory, "cluster_manager") == {"manager"}
    assert members(inventory, "sql_node") == {"manager"}
    assert members(inventory, "sql_proxy") == {"proxy"}
    assert members(inventory, "tier_cluster") == {"manager"}
    assert members(inventory, "tier_proxy") == {"proxy"}
    assert members(inventory, "cluster_worker") == set()
    assert set(KNOWN_ROLES) <= set(inventory.groups)
    all_vars = inventory.groups["all"].get_vars()
    assert (
        all_vars["fleet_backend"] == "docker"
        and all_vars["fleet_project"] == lab.project
    )
    assert all_vars["fleet_known_roles"] == KNOWN_ROLES


def test_docker_backend_addresses_and_connection(
    lab: DockerLab, tmp_path: Path
) -> None:
    inventory = parse(write_config(tmp_path, backend="docker", project=lab.project))
    manager, proxy = lab.containers[0], lab.containers[1]
    cluster_net, proxy_net = (
        f"{lab.project}-cluster-cluster",
        f"{lab.project}-proxy-cluster",
    )
    manager_vars = hostvars(inventory, "manager")
    assert manager_vars["fleet_addresses"] == {
        "cluster": ip(manager, cluster_net),
        "proxy": ip(manager, proxy_net),
    }
    assert manager_vars["fleet_private_address"] == ip(manager, cluster_net)
    assert manager_vars["fleet_roles"] == ["cluster_manager", "sql_node"]
    assert manager_vars["ansible_connection"] == "community.docker.docker_api"
    assert manager_vars["ansible_host"] == f"{lab.project}-manager"
    assert manager_vars["ansible_python_interpreter"] == "/usr/bin/python3"
    proxy_vars = hostvars(inventory, "proxy")
    assert proxy_vars["fleet_addresses"] == {"cluster": ip(proxy, proxy_net)}
    assert proxy_vars["fleet_private_address"] == ip(proxy, proxy_net)


def test_docker_backend_project_from_environment(
    lab: DockerLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDPATTERNS_PROJECT", lab.project)
    inventory = parse(write_config(tmp_path, backend="docker"))
    assert set(inventory.hosts) == {"manager", "proxy"}


def test_ansible_reaches_the_containers_with_these_variables(
    lab: DockerLab, tmp_path: Path
) -> None:
    path = write_config(tmp_path, backend="docker", project=lab.project)
    done = subprocess.run(
        [
            str(BIN / "ansible"),
            "-i",
            str(path),
            "sql_node:sql_proxy",
            "-m",
            "ansible.builtin.ping",
            "-o",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == 2


def test_docker_unknown_role_label_fails_the_parse(
    docker_client: docker.DockerClient, test_image: str, tmp_path: Path
) -> None:
    odd = DockerLab(docker_client, test_image)
    try:
        net = odd.network("cluster-cluster", "cluster")
        odd.container("odd", "sql_node,dba", "cluster", [net])
        message = parse_error(
            write_config(tmp_path, backend="docker", project=odd.project)
        )
    finally:
        odd.remove()
    assert "Host odd" in message and "'dba'" in message and "known_roles" in message


def test_empty_docker_project_warns_and_keeps_the_role_groups(
    tmp_path: Path, warnings: list[str]
) -> None:
    project = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    inventory = parse(write_config(tmp_path, backend="docker", project=project))
    assert not inventory.hosts
    assert set(KNOWN_ROLES) <= set(inventory.groups)
    (warning,) = [w for w in warnings if "fleet inventory" in w]
    assert (
        project in warning
        and "docker backend" in warning
        and "playbooks/standalone.yml" in warning
    )


# --- the plugin: aws backend under moto ----------------------------------------------------------


class Ec2:
    """An EC2 API (moto's) that launches tagged instances."""

    def __init__(self, client: Any) -> None:
        self.client = client
        # Any image of moto's default catalogue; a filter keeps the answer (and the test) small.
        amazon_linux = [{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}]
        images = client.describe_images(Owners=["amazon"], Filters=amazon_linux)[
            "Images"
        ]
        self.image = images[0]["ImageId"]

    def launch(
        self, project: str, node: str, roles: str, tier: str, public: bool = True
    ) -> str:
        tags = {
            "Project": project,
            "Node": node,
            "Role": roles,
            "Tier": tier,
            "Name": f"{project}-{node}",
        }
        launched = self.client.run_instances(
            ImageId=self.image,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            NetworkInterfaces=[{"DeviceIndex": 0, "AssociatePublicIpAddress": public}],
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )
        return launched["Instances"][0]["InstanceId"]

    def described(self, instance_id: str) -> dict[str, Any]:
        reservations = self.client.describe_instances(InstanceIds=[instance_id])[
            "Reservations"
        ]
        return reservations[0]["Instances"][0]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ec2]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield Ec2(boto3.client("ec2", region_name="eu-west-1"))


def test_aws_backend_lists_running_instances_of_the_project(
    aws: Ec2, tmp_path: Path
) -> None:
    manager = aws.launch("proj", "manager", "cluster_manager,sql_node", "cluster")
    aws.launch("proj", "proxy", "sql_proxy", "proxy")
    stopped = aws.launch("proj", "worker1", "cluster_worker,sql_node", "cluster")
    aws.client.stop_instances(InstanceIds=[stopped])
    aws.launch("other", "intruder", "sql_proxy", "proxy")

    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    inventory = parse(
        write_config(
            inventory_dir,
            "aws.yml",
            backend="aws",
            project="proj",
            regions=["eu-west-1"],
        )
    )

    assert set(inventory.hosts) == {"manager", "proxy"}
    assert members(inventory, "cluster_manager") == {"manager"}
    assert members(inventory, "sql_node") == {"manager"}
    assert members(inventory, "sql_proxy") == {"proxy"}
    assert members(inventory, "cluster_worker") == set()
    expected = aws.described(manager)
    manager_vars = hostvars(inventory, "manager")
    assert manager_vars["ansible_host"] == expected["PublicIpAddress"]
    assert manager_vars["fleet_public_address"] == expected["PublicIpAddress"]
    assert manager_vars["fleet_private_address"] == expected["PrivateIpAddress"]
    assert manager_vars["fleet_instance_id"] == manager
    assert manager_vars["fleet_instance_type"] == "t3.micro"
    assert manager_vars["fleet_region"] == "eu-west-1"
    assert manager_vars["fleet_addresses"] == {}
    assert manager_vars["ansible_user"] == "ubuntu"
    assert manager_vars["ansible_ssh_private_key_file"] == str(
        tmp_path / ".secrets" / "proj" / "id_ed25519"
    )
    all_vars = inventory.groups["all"].get_vars()
    assert (
        all_vars["fleet_backend"],
        all_vars["fleet_project"],
        all_vars["fleet_region"],
    ) == (
        "aws",
        "proj",
        "eu-west-1",
    )


def test_aws_backend_private_addresses_and_own_key(aws: Ec2, tmp_path: Path) -> None:
    proxy = aws.launch("proj", "proxy", "sql_proxy", "proxy")
    path = write_config(
        tmp_path,
        backend="aws",
        project="proj",
        regions=["eu-west-1"],
        hostname_address="private",
        ssh_user="admin",
        ssh_private_key_file="~/keys/lab",
    )
    proxy_vars = hostvars(parse(path), "proxy")
    assert proxy_vars["ansible_host"] == aws.described(proxy)["PrivateIpAddress"]
    assert proxy_vars["ansible_user"] == "admin"
    assert proxy_vars["ansible_ssh_private_key_file"] == os.path.expanduser(
        "~/keys/lab"
    )


def test_aws_backend_region_from_environment(
    aws: Ec2, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.launch("proj", "proxy", "sql_proxy", "proxy")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    inventory = parse(write_config(tmp_path, backend="aws", project="proj"))
    assert set(inventory.hosts) == {"proxy"}
    # The file wins over the environment.
    inventory = parse(
        write_config(tmp_path, backend="aws", project="proj", regions=["us-east-1"])
    )
    assert not inventory.hosts


def test_aws_backend_constructable_options(aws: Ec2, tmp_path: Path) -> None:
    aws.launch("proj", "manager", "cluster_manager,sql_node", "cluster")
    aws.launch("proj", "proxy", "sql_proxy", "proxy")
    path = write_config(
        tmp_path,
        backend="aws",
        project="proj",
        regions=["eu-west-1"],
        compose={"mysql_bind_address": "fleet_private_address"},
        groups={"writers": "'cluster_manager' in fleet_roles"},
        keyed_groups=[{"key": "fleet_instance_type", "prefix": "type"}],
    )
    inventory = parse(path)
    assert members(inventory, "writers") == {"manager"}
    assert members(inventory, "type_t3_micro") == {"manager", "proxy"}
    manager_vars = hostvars(inventory, "manager")
    assert manager_vars["mysql_bind_address"] == manager_vars["fleet_private_address"]


def test_hosts_named_like_their_role(aws: Ec2, tmp_path: Path) -> None:
    """The topology names nodes after their role (bench, gatekeeper): host and group must stay apart."""
    aws.launch("proj", "bench", "bench", "bench")
    aws.launch("proj", "gatekeeper", "gatekeeper", "gatekeeper")
    path = write_config(
        tmp_path,
        backend="aws",
        project="proj",
        regions=["eu-west-1"],
        compose={"listen_address": "fleet_private_address"},
        keyed_groups=[{"key": "fleet_tier", "prefix": "tier_of"}],
    )
    inventory = parse(path)
    assert members(inventory, "bench") == {"bench"}
    assert members(inventory, "tier_bench") == {"bench"}
    assert members(inventory, "tier_of_gatekeeper") == {"gatekeeper"}
    assert (
        hostvars(inventory, "bench")["listen_address"]
        == hostvars(inventory, "bench")["fleet_private_address"]
    )
    assert hostvars(inventory, "gatekeeper")["fleet_node"] == "gatekeeper"
    assert inventory.groups["bench"].get_vars() == {}
    assert inventory.groups["tier_bench"].child_groups == []


def test_aws_backend_cache(aws: Ec2, tmp_path: Path) -> None:
    aws.launch("proj", "manager", "cluster_manager", "cluster")
    path = write_config(
        tmp_path,
        backend="aws",
        project="proj",
        regions=["eu-west-1"],
        cache=True,
        cache_plugin="ansible.builtin.jsonfile",
        cache_connection=str(tmp_path / "cache"),
    )
    assert set(parse(path, cache=True).hosts) == {"manager"}
    aws.launch("proj", "proxy", "sql_proxy", "proxy")
    assert set(parse(path, cache=True).hosts) == {"manager"}  # served from the cache
    assert set(parse(path, cache=False).hosts) == {
        "manager",
        "proxy",
    }  # refresh_inventory / --flush-cache
    assert set(parse(path, cache=True).hosts) == {
        "manager",
        "proxy",
    }  # the refresh updated the cache


def test_empty_aws_project_warns(aws: Ec2, tmp_path: Path, warnings: list[str]) -> None:
    inventory = parse(
        write_config(tmp_path, backend="aws", project="proj", regions=["eu-west-1"])
    )
    assert not inventory.hosts
    (warning,) = [w for w in warnings if "fleet inventory" in w]
    assert (
        "Project=proj" in warning
        and "eu-west-1" in warning
        and "aws backend" in warning
    )


def test_aws_backend_through_an_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """endpoint_url defaults to AWS_ENDPOINT_URL: an emulator such as moto's server stands in for AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        ec2 = Ec2(boto3.client("ec2", region_name="eu-west-1", endpoint_url=endpoint))
        ec2.launch("proj", "bench", "bench", "bench")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        inventory = parse(
            write_config(tmp_path, backend="aws", project="proj", regions=["eu-west-1"])
        )
    finally:
        server.stop()
    assert set(inventory.hosts) == {"bench"}
    assert members(inventory, "bench") == {"bench"}


# --- the command line ----------------------------------------------------------------------------


def ansible_inventory(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-inventory"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_empty_project_exits_zero_with_a_warning(tmp_path: Path) -> None:
    project = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    done = ansible_inventory(
        "-i", str(write_config(tmp_path, backend="docker", project=project)), "--graph"
    )
    assert done.returncode == 0, done.stderr
    assert "@sql_node:" in done.stdout and "@gatekeeper:" in done.stdout
    assert project in done.stderr and "playbooks/standalone.yml" in done.stderr


def test_cli_bogus_backend_exits_non_zero(tmp_path: Path) -> None:
    done = ansible_inventory(
        "-i", str(write_config(tmp_path, backend="bogus", project="p")), "--graph"
    )
    assert done.returncode != 0
    assert "'bogus'" in done.stderr and "docker, aws" in done.stderr
