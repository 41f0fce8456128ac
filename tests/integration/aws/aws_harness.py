# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The AWS integration tests' harness: the emulator's API and recorder, and the ansible commands.

Imported by conftest.py (the fixtures) and the tests; a module of its own because conftest modules are
not importable by name reliably (every test directory has one).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from aws_support import ApiCall, parse_recording, play_recap

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
# The ansible commands of the Python that runs the tests (the venv's).
BIN = Path(sys.executable).parent
INVENTORY = "inventory/aws.yml"
# The inventory names the region; the tests read it instead of repeating it.
REGION = yaml.safe_load((REPO / INVENTORY).read_text())["regions"][0]
# AWS_REGION points elsewhere in every run: provisioning must use the inventory's region, not the environment's.
DECOY_REGION = "eu-west-3"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class MotoServer:
    """The emulator's address, its EC2 API, and its request recorder."""

    endpoint: str
    recording: Path

    def ec2(self, region: str = REGION) -> Any:
        return boto3.client("ec2", region_name=region, endpoint_url=self.endpoint, **CREDENTIALS)

    def _recorder(self, action: str) -> bytes:
        method = "GET" if action == "download-recording" else "POST"
        request = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{action}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def start_recording(self) -> None:
        self._recorder("reset-recording")
        self._recorder("start-recording")

    def stop_recording(self) -> list[ApiCall]:
        self._recorder("stop-recording")
        return parse_recording(self._recorder("download-recording").decode("utf-8"))


@dataclass
class Run:
    """One ansible command: its exit code, its output and, for playbooks, the PLAY RECAP."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return play_recap(self.stdout)

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(host["failed"] + host["unreachable"] for host in self.recap.values())

    def explain(self) -> str:
        return (
            f"$ {' '.join(self.args)}\n--- stdout (end)\n{self.stdout[-6000:]}\n--- stderr (end)\n{self.stderr[-3000:]}"
        )


@dataclass
class Ansible:
    """Runs ansible commands from the repository root, pointed at the emulator."""

    env: dict[str, str]
    secrets_dir: Path

    def run(self, command: str, *args: str, timeout: int = 900) -> Run:
        argv = [str(BIN / command), *args]
        started = time.monotonic()
        done = subprocess.run(
            argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        print(f"{' '.join(argv)}: exit {done.returncode} in {time.monotonic() - started:.0f}s")
        return Run(argv, done.returncode, done.stdout, done.stderr)

    def playbook(self, playbook: str, *args: str) -> Run:
        return self.run("ansible-playbook", "-i", INVENTORY, playbook, *args)
