"""Fixtures for the end-to-end tests: the lab molecule/lab deployed, found the way the inventory plugin finds it.

These tests need the lab running (`molecule test -s lab` runs them in its verify step); they fail, never skip,
when it is not there.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB_VARS = Path(os.environ.get("CLOUDPATTERNS_LAB_VARS", ROOT / "molecule/lab/lab-vars.yml"))


@dataclass
class Node:
    """One container of the lab."""

    name: str
    container: str
    tier: str
    roles: list[str]
    addresses: dict[str, str] = field(default_factory=dict)  # network -> IP

    def sh(self, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside the container."""
        result = subprocess.run(
            ["docker", "exec", self.container, "bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name}: `{command}` failed ({result.returncode}): {result.stderr.strip()}")
        return result


@dataclass
class Lab:
    """The deployed lab: its nodes, its topology and how to call its gatekeeper."""

    project: str
    nodes: dict[str, Node]
    topology: dict[str, Any]
    gatekeeper_url: str
    secrets_dir: Path

    def api_key(self, name: str = "default") -> str:
        return (self.secrets_dir / "api_keys" / name).read_text().split()[0]

    def with_role(self, role: str) -> list[Node]:
        return sorted((n for n in self.nodes.values() if role in n.roles), key=lambda n: n.name)

    def post(self, route: str, body: Any, key: str | None = "default", timeout: float = 30) -> tuple[int, dict, dict]:
        """POST a JSON body through the gatekeeper; returns (status, JSON body, headers)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.gatekeeper_url}/{route}", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("Authorization", f"Bearer {self.api_key(key)}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), dict(error.headers)

    def query(self, route: str, sql: str, params: list[Any] | None = None) -> dict:
        """A query that must succeed."""
        body: dict[str, Any] = {"query": sql}
        if params is not None:
            body["params"] = params
        status, answer, _ = self.post(route, body)
        assert status == 200, f"{route} {sql!r}: {status} {answer}"
        return answer


def _read_lab() -> Lab:
    lab_vars = yaml.safe_load(LAB_VARS.read_text())
    topology = yaml.safe_load((ROOT / "inventory/group_vars/all/topology.yml").read_text())
    project = lab_vars["topology_project"]
    client = docker.from_env()
    nodes: dict[str, Node] = {}
    for container in client.containers.list(filters={"label": f"cloudpatterns.project={project}"}):
        labels = container.labels
        networks = container.attrs["NetworkSettings"]["Networks"]
        nodes[labels["cloudpatterns.node"]] = Node(
            name=labels["cloudpatterns.node"],
            container=container.name,
            tier=labels["cloudpatterns.tier"],
            roles=labels["cloudpatterns.roles"].split(","),
            addresses={name: settings["IPAddress"] for name, settings in networks.items()},
        )
    assert nodes, f"no container of project {project} runs: deploy the lab with `molecule converge -s lab` first"
    port = 3000 + int(lab_vars.get("provision_docker_publish_offset", 0))
    secrets = Path(os.environ.get("CLOUDPATTERNS_SECRETS_DIR", ROOT / ".secrets" / project))
    return Lab(project, nodes, topology, f"http://127.0.0.1:{port}", secrets)


@pytest.fixture(scope="session")
def lab() -> Lab:
    return _read_lab()


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition") -> float:
    """Wait until predicate() is true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")
