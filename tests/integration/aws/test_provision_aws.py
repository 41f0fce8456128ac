# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""AWS provisioning, proven against moto: the real playbooks, run as a user runs them.

One deployment serves every assertion (amazon.aws.ec2_security_group sleeps about 3 s per group it
creates): the module fixture provisions every stack of the topology, provisions them again, lists the
inventory, tears everything down and tears down again, keeping a snapshot of the EC2 state and moto's
request log at each step. The tests then read those snapshots.

The expected security-group graph is computed from the topology as Ansible renders it, never from the
role's own filter, and a few edges are also spelled out literally so that a mistake in the topology file
cannot make the test agree with itself.

What moto cannot show: it does not refuse to delete a security group that is still in use or named by
another group, and its instances are running at once. The teardown order is therefore checked by
replaying moto's request log against the rules AWS enforces (aws_support.teardown_violations).
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_support import (
    INTERNET,
    OPERATOR,
    ApiCall,
    ProjectState,
    inventory_graph,
    isolation_matrix,
    security_group_edges,
    teardown_violations,
    topology_edges,
)
from aws_harness import DECOY_REGION, INVENTORY, REGION, REPO, Ansible, MotoServer, Run

OPERATOR_CIDR = "203.0.113.7/32"
PUBLIC_CIDR = "0.0.0.0/0"  # gatekeeper_allowed_cidrs' default
# fixtures/ubuntu_amis.json: the newest Canonical amd64 images of each release. Newer look-alikes exist
# (arm64, Ubuntu Pro, a copy from another account): choosing one of them fails the test.
NEWEST_JAMMY = "ami-0a11ce0000000000b"
NEWEST_NOBLE = "ami-0b0b1e0000000000b"
OLDER_JAMMY = "ami-0a11ce0000000000a"
# moto's public addresses do not answer SSH: the runs do not wait for it.
NO_SSH_WAIT = json.dumps({"provision_aws_wait_for_ssh": False})
OTHER_PROJECT = "other-project"
LIVE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]


@dataclass(frozen=True)
class Topology:
    """The topology as Ansible renders it for the aws inventory (templated ports resolved)."""

    project: str
    nodes: list[dict[str, Any]]
    links: list[dict[str, Any]]
    stacks: dict[str, list[str]]
    default_size: str

    @property
    def tiers(self) -> list[str]:
        return sorted({node["tier"] for node in self.nodes})


@dataclass(frozen=True)
class Snapshot:
    """The project's live EC2 resources in one region."""

    instances: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    keys: list[dict[str, Any]]

    @property
    def empty(self) -> bool:
        return not (self.instances or self.groups or self.keys)


@dataclass(frozen=True)
class Deployment:
    topology: Topology
    other: dict[str, str]
    precheck: Run
    precheck_calls: list[ApiCall]
    precheck_state: Snapshot
    precheck_generated_key: bool
    first: dict[str, Run]
    second: dict[str, Run]
    provisioned: Snapshot
    graph: Run
    host: Run
    teardown: Run
    teardown_calls: list[ApiCall]
    torn_down: Snapshot
    teardown_again: Run
    decoy_region: Snapshot
    other_after: dict[str, Any]
    drift: dict[str, Any]


def rendered_topology(ansible: Ansible) -> Topology:
    """Ask Ansible itself: the cluster's ports are a template over the engine, which depends on the backend."""
    variables = (
        "{'project': topology_project, 'nodes': topology_nodes, 'links': topology_links, "
        "'stacks': topology_stacks, 'default_size': topology_default_size}"
    )
    message = json.dumps({"msg": "{{ " + variables + " | to_json }}"})
    run = ansible.run("ansible", "localhost", "-i", INVENTORY, "-m", "ansible.builtin.debug", "-a", message)
    assert run.returncode == 0, run.explain()
    rendered = json.loads(json.loads(run.stdout[run.stdout.index("{") :])["msg"])
    return Topology(**rendered)


def snapshot(ec2: Any, project: str) -> Snapshot:
    tagged = [{"Name": "tag:Project", "Values": [project]}]
    instances = [
        instance
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[*tagged, {"Name": "instance-state-name", "Values": LIVE_STATES}]
        )
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
    ]
    groups = {group["GroupId"]: group for group in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]}
    named = [{"Name": "group-name", "Values": [f"{project}-*"]}]
    groups.update({group["GroupId"]: group for group in ec2.describe_security_groups(Filters=named)["SecurityGroups"]})
    keys = [
        key
        for key in ec2.describe_key_pairs()["KeyPairs"]
        if key["KeyName"] == project or {"Key": "Project", "Value": project} in key.get("Tags", [])
    ]
    return Snapshot(instances=instances, groups=list(groups.values()), keys=keys)


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


def create_other_project(ec2: Any) -> dict[str, str]:
    """Another deployment in the same account and region: it must survive our teardown untouched."""

    def tag(kind: str, **extra: str) -> list[dict[str, Any]]:
        values = {"Project": OTHER_PROJECT, **extra}
        return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in values.items()]}]

    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    ec2.create_key_pair(KeyName=OTHER_PROJECT, TagSpecifications=tag("key-pair"))
    group = ec2.create_security_group(
        GroupName=f"{OTHER_PROJECT}-web",
        Description="another project",
        VpcId=vpc,
        TagSpecifications=tag("security-group"),
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    # Same node name as ours: only the Project tag tells them apart.
    instance = ec2.run_instances(
        ImageId=OLDER_JAMMY,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.small",
        KeyName=OTHER_PROJECT,
        SecurityGroupIds=[group],
        TagSpecifications=tag(
            "instance",
            Node="standalone",
            Role="mysql_standalone",
            Tier="standalone",
            Name=f"{OTHER_PROJECT}-standalone",
        ),
    )["Instances"][0]["InstanceId"]
    return {"group": group, "instance": instance, "key": OTHER_PROJECT}


def add_drift(ec2: Any, project: str) -> dict[str, Any]:
    """A rule added by hand (MySQL open to the world on the cluster): the next run must remove it."""
    cluster = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{project}-cluster"]}])
    group = cluster["SecurityGroups"][0]["GroupId"]
    permission = {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[permission])
    return {"group": group, "permission": permission}


def provision(ansible: Ansible, stack: str, *extra: str) -> Run:
    return ansible.playbook("playbooks/provision.yml", "-e", f"provision_stack={stack}", "-e", NO_SSH_WAIT, *extra)


@pytest.fixture(scope="module")
def deployment(moto: MotoServer, ansible: Ansible) -> Deployment:
    topology = rendered_topology(ansible)
    ec2 = moto.ec2()
    other = create_other_project(ec2)
    first_stack, *_, last_stack = topology.stacks

    moto.start_recording()
    precheck = provision(ansible, first_stack)
    precheck_calls = moto.stop_recording()
    precheck_state = snapshot(ec2, topology.project)
    precheck_generated_key = (ansible.secrets_dir / "id_ed25519").exists()

    with_operator = ("-e", f"operator_cidr={OPERATOR_CIDR}")
    first: dict[str, Run] = {}
    for stack in topology.stacks:
        if stack == last_stack:
            drift = add_drift(ec2, topology.project)
        first[stack] = provision(ansible, stack, *with_operator)
        assert first[stack].returncode == 0, first[stack].explain()
    second = {stack: provision(ansible, stack, *with_operator) for stack in topology.stacks}
    provisioned = snapshot(ec2, topology.project)

    graph = ansible.run("ansible-inventory", "-i", INVENTORY, "--graph")
    host = ansible.run("ansible-inventory", "-i", INVENTORY, "--host", topology.nodes[-1]["name"])

    moto.start_recording()
    teardown = ansible.playbook("playbooks/teardown.yml")
    teardown_calls = moto.stop_recording()
    torn_down = snapshot(ec2, topology.project)
    teardown_again = ansible.playbook("playbooks/teardown.yml")

    other_instance = ec2.describe_instances(InstanceIds=[other["instance"]])["Reservations"][0]["Instances"][0]
    other_after = {
        "instance_state": other_instance["State"]["Name"],
        "groups": ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [other["group"]]}])[
            "SecurityGroups"
        ],
        "keys": ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [other["key"]]}])["KeyPairs"],
    }
    return Deployment(
        topology=topology,
        other=other,
        precheck=precheck,
        precheck_calls=precheck_calls,
        precheck_state=precheck_state,
        precheck_generated_key=precheck_generated_key,
        first=first,
        second=second,
        provisioned=provisioned,
        graph=graph,
        host=host,
        teardown=teardown,
        teardown_calls=teardown_calls,
        torn_down=torn_down,
        teardown_again=teardown_again,
        decoy_region=snapshot(moto.ec2(DECOY_REGION), topology.project),
        other_after=other_after,
        drift=drift,
    )


def group_tiers(groups: list[dict[str, Any]]) -> dict[str, str]:
    return {group["GroupId"]: tags(group)["Tier"] for group in groups}


def provisioned_edges(deployment: Deployment) -> set[tuple[str, str, str, str]]:
    return security_group_edges(
        deployment.provisioned.groups,
        group_tiers(deployment.provisioned.groups),
        {PUBLIC_CIDR: INTERNET, OPERATOR_CIDR: OPERATOR},
    )


# --- operator_cidr -------------------------------------------------------------------------------


def test_missing_operator_cidr_stops_before_anything_exists(deployment: Deployment) -> None:
    run = deployment.precheck
    assert run.returncode != 0 and run.failed == 1, run.explain()
    assert "operator_cidr is not set" in run.stdout, run.explain()
    assert "-e operator_cidr=$(curl -s https://checkip.amazonaws.com)/32" in run.stdout, run.explain()
    assert "Nothing has been created" in run.stdout
    changes = [call.action for call in deployment.precheck_calls if call.mutating]
    assert changes == [], f"the failed run changed AWS: {changes}"
    assert deployment.precheck_state.empty, deployment.precheck_state
    # The run ended at the check: no SSH key was generated either.
    assert not deployment.precheck_generated_key


@pytest.mark.parametrize("cidr", ["203.0.113.7", "203.0.113.7/24"])
def test_malformed_operator_cidr_is_refused(moto: MotoServer, ansible: Ansible, cidr: str) -> None:
    moto.start_recording()
    run = provision(ansible, "standalone", "-e", f"operator_cidr={cidr}")
    calls = moto.stop_recording()
    assert run.returncode != 0, run.explain()
    assert f'operator_cidr is \\"{cidr}\\", which is not a CIDR' in run.stdout, run.explain()
    assert [call.action for call in calls if call.mutating] == []


# --- security groups -----------------------------------------------------------------------------


def test_one_security_group_per_tier(deployment: Deployment) -> None:
    project = deployment.topology.project
    groups = deployment.provisioned.groups
    assert sorted(tags(group)["Tier"] for group in groups) == deployment.topology.tiers
    for group in groups:
        tier = tags(group)["Tier"]
        assert group["GroupName"] == f"{project}-{tier}"
        assert tags(group) == {"Project": project, "Tier": tier, "Name": f"{project}-{tier}"}


def test_security_group_graph_is_exactly_the_topology(deployment: Deployment) -> None:
    expected = topology_edges(deployment.topology.links, deployment.topology.tiers)
    actual = provisioned_edges(deployment)
    assert actual == expected, (
        f"missing: {sorted(expected - actual)}\nunexpected: {sorted(actual - expected)}\n"
        f"isolation matrix on AWS:\n{isolation_matrix(actual)}\nexpected:\n{isolation_matrix(expected)}"
    )


def test_security_group_graph_spelled_out(deployment: Deployment) -> None:
    """The reference deployment's edges, written by hand: a typo in the topology file fails here."""
    edges = provisioned_edges(deployment)
    allowed = [
        (INTERNET, "gatekeeper", "3000"),
        ("bench", "gatekeeper", "3000"),
        ("gatekeeper", "trusted", "8000"),
        ("trusted", "proxy", "9000"),
        ("proxy", "cluster", "3306"),
        ("bench", "cluster", "3306"),
        ("cluster", "cluster", "1186"),
        ("cluster", "cluster", "2202"),
        ("cluster", "cluster", "3306"),
        ("bench", "standalone", "3306"),
    ]
    denied = [
        (INTERNET, "trusted", "8000"),
        (INTERNET, "proxy", "9000"),
        (INTERNET, "cluster", "3306"),
        ("gatekeeper", "proxy", "9000"),
        ("gatekeeper", "cluster", "3306"),
        ("trusted", "cluster", "3306"),
        ("proxy", "standalone", "3306"),
        ("bench", "proxy", "9000"),
        ("bench", "trusted", "8000"),
        ("cluster", "proxy", "9000"),
        ("standalone", "cluster", "3306"),
        ("cluster", "cluster", "22"),
        (INTERNET, "gatekeeper", "22"),
    ]
    for source, target, port in allowed:
        assert (source, target, "tcp", port) in edges, f"{source} -> {target}:{port} should be open"
    for source, target, port in denied:
        assert (source, target, "tcp", port) not in edges, f"{source} -> {target}:{port} should be closed"
    # Cluster members talk on the engine's ports only, never on a range.
    assert {edge[3] for edge in edges if edge[:2] == ("cluster", "cluster")} == {"1186", "2202", "3306"}


def test_a_rule_added_by_hand_is_removed(deployment: Deployment) -> None:
    """The last stack's first run found MySQL opened to the world on the cluster, and closed it."""
    group = next(g for g in deployment.provisioned.groups if g["GroupId"] == deployment.drift["group"])
    assert tags(group)["Tier"] == "cluster"
    assert (INTERNET, "cluster", "tcp", "3306") not in provisioned_edges(deployment)
    world = [p for p in group["IpPermissions"] if {"CidrIp": "0.0.0.0/0"} in p.get("IpRanges", [])]
    assert world == []


def test_ssh_only_from_the_operator(deployment: Deployment) -> None:
    edges = provisioned_edges(deployment)
    ssh_sources = {(source, target) for source, target, _, port in edges if port == "22"}
    assert ssh_sources == {(OPERATOR, tier) for tier in deployment.topology.tiers}
    for group in deployment.provisioned.groups:
        for permission in group["IpPermissions"]:
            if permission.get("FromPort") == 22:
                assert permission["IpRanges"] == [{"CidrIp": OPERATOR_CIDR, "Description": "ssh from the operator"}]
                assert not permission.get("UserIdGroupPairs") and not permission.get("Ipv6Ranges")


# --- instances and key pair ----------------------------------------------------------------------


def test_one_tagged_instance_per_node(deployment: Deployment) -> None:
    project = deployment.topology.project
    by_node = {tags(instance)["Node"]: instance for instance in deployment.provisioned.instances}
    assert len(deployment.provisioned.instances) == len(deployment.topology.nodes)
    assert set(by_node) == {node["name"] for node in deployment.topology.nodes}
    groups = {group["GroupId"]: tags(group)["Tier"] for group in deployment.provisioned.groups}
    for node in deployment.topology.nodes:
        instance = by_node[node["name"]]
        assert tags(instance) == {
            "Project": project,
            "Node": node["name"],
            "Role": ",".join(node["roles"]),
            "Tier": node["tier"],
            "Name": f"{project}-{node['name']}",
        }
        assert instance["State"]["Name"] == "running"
        assert instance["InstanceType"] == node.get("size", deployment.topology.default_size)
        assert instance["KeyName"] == project
        assert [groups[group["GroupId"]] for group in instance["SecurityGroups"]] == [node["tier"]]
        assert instance.get("PublicIpAddress"), "instances get a public address by default"
    # Literally: the reference topology runs t2.micro everywhere but on the data nodes, whose memory holds NDB's
    # rows (t3.medium: the full benchmark fits), and a node with two roles has both.
    sizes = {tags(instance)["Node"]: instance["InstanceType"] for instance in deployment.provisioned.instances}
    assert {node for node, size in sizes.items() if size == "t3.medium"} == {"worker1", "worker2", "worker3"}, sizes
    assert set(sizes.values()) == {"t2.micro", "t3.medium"}, sizes
    assert tags(by_node["manager"])["Role"] == "cluster_manager,sql_node"


def test_newest_canonical_jammy_ami(deployment: Deployment) -> None:
    assert {instance["ImageId"] for instance in deployment.provisioned.instances} == {NEWEST_JAMMY}


def test_noble_is_selectable(moto: MotoServer, ansible: Ansible, tmp_path: Path) -> None:
    """The AMI search alone (the role's read-only preflight), for Ubuntu 24.04."""
    playbook = tmp_path / "choose_ami.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role:\n"
        "        name: cloudpatterns.mysql.provision_aws\n"
        "        tasks_from: preflight\n"
        "      vars:\n"
        "        provision_aws_ubuntu_release: '24.04'\n"
        f"        operator_cidr: {OPERATOR_CIDR}\n"
        "    - ansible.builtin.debug:\n"
        "        msg: 'chosen {{ __provision_aws_ami.image_id }} {{ __provision_aws_ami.name }}'\n"
    )
    run = ansible.playbook(str(playbook))
    assert run.returncode == 0, run.explain()
    assert f"chosen {NEWEST_NOBLE} ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250305" in run.stdout


def test_key_pair_from_a_controller_key_that_stays_private(deployment: Deployment, ansible: Ansible) -> None:
    project = deployment.topology.project
    assert [(key["KeyName"], tags(key)) for key in deployment.provisioned.keys] == [
        (project, {"Project": project, "Name": project})
    ]
    private = ansible.secrets_dir / "id_ed25519"
    public = private.with_name("id_ed25519.pub").read_text()
    assert public.startswith("ssh-ed25519 ")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert not private.is_relative_to(REPO)
    body = [line for line in private.read_text().splitlines() if line and not line.startswith("-----")]
    outputs = [run.stdout + run.stderr for run in (*deployment.first.values(), *deployment.second.values())]
    for line in body:
        assert all(line not in output for output in outputs), "the private key was printed"


# --- inventory -----------------------------------------------------------------------------------


def test_inventory_groups_hosts_by_role_and_tier(deployment: Deployment) -> None:
    assert deployment.graph.returncode == 0, deployment.graph.explain()
    graph = inventory_graph(deployment.graph.stdout)
    nodes = deployment.topology.nodes
    roles = {role for node in nodes for role in node["roles"]}
    for role in roles:
        assert graph[role] == {node["name"] for node in nodes if role in node["roles"]}, role
    for tier in deployment.topology.tiers:
        assert graph[f"tier_{tier}"] == {node["name"] for node in nodes if node["tier"] == tier}, tier
    # Literally, for the reference topology: the other project's "standalone" is not ours.
    assert graph["sql_node"] == {"manager", "worker1", "worker2", "worker3"}
    assert graph["mysql_standalone"] == {"standalone"}
    assert graph["gatekeeper"] == {"gatekeeper1"}


def test_inventory_reaches_hosts_with_the_provisioned_key(deployment: Deployment, ansible: Ansible) -> None:
    assert deployment.host.returncode == 0, deployment.host.explain()
    hostvars = json.loads(deployment.host.stdout)
    node = deployment.topology.nodes[-1]["name"]
    instance = next(i for i in deployment.provisioned.instances if tags(i)["Node"] == node)
    assert hostvars["ansible_host"] == instance["PublicIpAddress"]
    assert hostvars["ansible_user"] == "ubuntu"
    assert hostvars["ansible_ssh_private_key_file"] == str(ansible.secrets_dir / "id_ed25519")
    assert hostvars["fleet_region"] == REGION
    assert hostvars["fleet_private_address"] == instance["PrivateIpAddress"]


def test_only_the_inventory_region_is_used(deployment: Deployment) -> None:
    assert deployment.decoy_region.empty, f"resources in {DECOY_REGION}, the environment's region"


# --- idempotence ---------------------------------------------------------------------------------


def test_second_provision_run_changes_nothing(deployment: Deployment) -> None:
    for stack, run in deployment.second.items():
        assert run.returncode == 0 and run.failed == 0, run.explain()
        assert run.changed == 0, f"stack {stack}: {run.recap}\n{run.explain()}"
    assert all(run.changed > 0 for run in deployment.first.values()), "every first run creates something"


# --- teardown ------------------------------------------------------------------------------------


def test_teardown_removes_the_project_and_only_it(deployment: Deployment) -> None:
    assert deployment.teardown.returncode == 0, deployment.teardown.explain()
    assert deployment.torn_down.empty, deployment.torn_down
    other = deployment.other_after
    assert other["instance_state"] == "running"
    assert [group["IpPermissions"][0]["FromPort"] for group in other["groups"]] == [443]
    assert [key["KeyName"] for key in other["keys"]] == [OTHER_PROJECT]


def test_second_teardown_changes_nothing(deployment: Deployment) -> None:
    run = deployment.teardown_again
    assert run.returncode == 0 and run.failed == 0, run.explain()
    assert run.changed == 0, run.explain()


def state_before_teardown(deployment: Deployment) -> ProjectState:
    provisioned = deployment.provisioned
    return ProjectState(
        instances={
            i["InstanceId"]: frozenset(g["GroupId"] for g in i["SecurityGroups"]) for i in provisioned.instances
        },
        references={
            group["GroupId"]: frozenset(
                pair["GroupId"] for permission in group["IpPermissions"] for pair in permission["UserIdGroupPairs"]
            )
            for group in provisioned.groups
        },
        keys=frozenset(key["KeyName"] for key in provisioned.keys),
    )


def test_teardown_follows_the_dependency_order(deployment: Deployment) -> None:
    calls = deployment.teardown_calls
    assert teardown_violations(calls, state_before_teardown(deployment)) == []
    actions = [call.action for call in calls if call.mutating]
    # Instances, then rules naming other groups, then groups, then the key pair; nothing else changes.
    phases = ["TerminateInstances", "RevokeSecurityGroupIngress", "DeleteSecurityGroup", "DeleteKeyPair"]
    assert set(actions) == set(phases), actions
    assert [phases.index(action) for action in actions] == sorted(phases.index(action) for action in actions)


def test_the_order_check_has_teeth(deployment: Deployment) -> None:
    """The replay refuses what AWS would refuse: deleting groups first, skipping the rule removal or the wait."""
    calls = deployment.teardown_calls
    state = state_before_teardown(deployment)
    deletes = [call for call in calls if call.action == "DeleteSecurityGroup"]
    others = [call for call in calls if call.action != "DeleteSecurityGroup"]
    groups_first = teardown_violations([*deletes, *others], state)
    assert any("still used by instances" in violation for violation in groups_first)
    no_revoke = [call for call in calls if call.action != "RevokeSecurityGroupIngress"]
    assert any("still named by the rules" in violation for violation in teardown_violations(no_revoke, state))
    terminate = max(i for i, call in enumerate(calls) if call.action == "TerminateInstances")
    first_delete = calls.index(deletes[0])
    no_wait = (
        calls[: terminate + 1]
        + [call for call in calls[terminate + 1 : first_delete] if call.action != "DescribeInstances"]
        + calls[first_delete:]
    )
    assert any("still used by instances" in violation for violation in teardown_violations(no_wait, state))
