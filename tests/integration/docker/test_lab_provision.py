"""The local lab's provisioning and teardown, with the real playbooks against the real Docker engine.

A two-node topology keeps it small: it checks the labels and networks the inventory plugin relies on, that a
wrong topology stops before anything exists, and that teardown removes what the project created and nothing
else (another project's container and network, and an unlabelled container, survive it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "cloudpatterns/debian12-systemd:bookworm"
TOPOLOGY = {
    "topology_nodes": [
        {"name": "solo", "roles": ["mysql_standalone"], "tier": "standalone"},
        {"name": "bench1", "roles": ["bench"], "tier": "bench"},
    ],
    "topology_links": [{"from": "bench", "to": "standalone", "ports": [3306]}],
    "topology_stacks": {"standalone": ["standalone", "bench"]},
}


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters per host."""
    return {
        host: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counters)}
        for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE)
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    name = f"cpm-test-lab-{uuid.uuid4().hex[:6]}"
    workdir = tmp_path_factory.mktemp("lab")
    (workdir / "fleet.yml").write_text(f"plugin: cloudpatterns.mysql.fleet\nbackend: docker\nproject: {name}\n")
    (workdir / "group_vars").symlink_to(ROOT / "inventory/group_vars")
    (workdir / "vars.json").write_text(json.dumps({**TOPOLOGY, "topology_project": name}))
    client = docker.from_env()
    foreign_net = client.networks.create(f"{name}-foreign", labels={"cloudpatterns.project": f"{name}-other"})
    foreign = client.containers.run(
        IMAGE, "sleep infinity", name=f"{name}-foreign", detach=True, labels={"cloudpatterns.project": f"{name}-other"}
    )
    unlabelled = client.containers.run(IMAGE, "sleep infinity", name=f"{name}-unlabelled", detach=True)
    yield name, workdir
    for container in client.containers.list(all=True, filters={"name": name}):
        container.remove(force=True)
    for network in client.networks.list(filters={"name": name}):
        network.remove()
    del foreign, unlabelled, foreign_net


def playbook(workdir: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "CLOUDPATTERNS_SECRETS_DIR": str(workdir / "secrets")}
    return subprocess.run(
        ["ansible-playbook", "-i", str(workdir / "fleet.yml"), "-e", f"@{workdir / 'vars.json'}"]
        + [f"playbooks/{name}", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def owned(name: str) -> tuple[list, list]:
    client = docker.from_env()
    label = {"label": f"cloudpatterns.project={name}"}
    return client.containers.list(all=True, filters=label), client.networks.list(filters=label)


def test_a_wrong_topology_stops_before_anything_exists(project) -> None:
    name, workdir = project
    result = playbook(workdir, "provision.yml", "-e", "provision_stack=standalone", "-e",
                      json.dumps({"topology_nodes": [{"name": "solo", "roles": ["mysql"], "tier": "standalone"}]}))
    assert result.returncode != 0
    assert "node 'solo' has unknown role 'mysql'" in result.stdout
    assert owned(name) == ([], [])


def test_provision_labels_every_container_and_network(project) -> None:
    name, workdir = project
    first = playbook(workdir, "provision.yml", "-e", "provision_stack=standalone")
    assert first.returncode == 0, first.stdout[-3000:]
    containers, networks = owned(name)
    labels = {c.labels["cloudpatterns.node"]: c.labels for c in containers}
    assert labels["solo"]["cloudpatterns.roles"] == "mysql_standalone"
    assert labels["solo"]["cloudpatterns.tier"] == "standalone"
    assert labels["bench1"]["cloudpatterns.roles"] == "bench"
    assert [(n.name, n.attrs["Labels"]["cloudpatterns.tiers"]) for n in networks] == [
        (f"{name}-bench-standalone", "bench,standalone")
    ]
    for container in containers:
        assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"{name}-bench-standalone"]
    again = playbook(workdir, "provision.yml", "-e", "provision_stack=standalone")
    assert recap(again.stdout)["localhost"]["changed"] == 0, again.stdout[-3000:]


def test_teardown_removes_what_the_project_created_and_nothing_else(project) -> None:
    name, workdir = project
    result = playbook(workdir, "teardown.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert owned(name) == ([], [])
    client = docker.from_env()
    survivors = {c.name for c in client.containers.list(all=True, filters={"name": name})}
    assert survivors == {f"{name}-foreign", f"{name}-unlabelled"}
    assert [n.name for n in client.networks.list(filters={"name": name})] == [f"{name}-foreign"]
    again = playbook(workdir, "teardown.yml")
    assert recap(again.stdout)["localhost"]["changed"] == 0
