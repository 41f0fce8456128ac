# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""An EC2 emulator (moto, in its own process, on a free port) and a way to run the real playbooks against it.

moto serves an AMI catalogue of our own (fixtures/ubuntu_amis.json: Canonical's Ubuntu 22.04 and 24.04
images plus look-alikes that must never be chosen), refuses unknown AMIs and key pairs, and records the
requests it receives on demand, so that a test can read the exact order of the API calls.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator

import pytest
from aws_harness import BIN, DECOY_REGION, HERE, Ansible, MotoServer


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    workdir = tmp_path_factory.mktemp("moto")
    recording = workdir / "recording.jsonl"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "MOTO_"))}
    env.update(
        MOTO_AMIS_PATH=str(HERE / "fixtures" / "ubuntu_amis.json"),
        MOTO_EC2_LOAD_DEFAULT_AMIS="false",
        MOTO_ENABLE_AMI_VALIDATION="true",
        MOTO_ENABLE_KEYPAIR_VALIDATION="true",
        MOTO_RECORDER_FILEPATH=str(recording),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    server = subprocess.Popen(
        [sys.executable, str(HERE / "moto_server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(workdir / "server.log").open("w"),
        env=env,
        text=True,
    )
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        port = server.stdout.readline().strip() if ready else ""
        if not port.isdigit():
            raise RuntimeError(f"moto did not start: {(workdir / 'server.log').read_text()[-2000:]}")
        yield MotoServer(endpoint=f"http://127.0.0.1:{port}", recording=recording)
    finally:
        # Closing its standard input stops the server; it is ended by its own handle if it lingers.
        server.stdin.close()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


@pytest.fixture(scope="module")
def ansible(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Ansible:
    secrets_dir = tmp_path_factory.mktemp("secrets")
    # The developer's AWS, Ansible and project settings stay out of the runs.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "ANSIBLE_", "CLOUDPATTERNS_", "MOTO_"))
    }
    env.update(
        AWS_ENDPOINT_URL=moto.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=DECOY_REGION,
        AWS_DEFAULT_REGION=DECOY_REGION,
        CLOUDPATTERNS_SECRETS_DIR=str(secrets_dir),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        # Results as one-line JSON: messages are not folded, so a test can search them.
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return Ansible(env=env, secrets_dir=secrets_dir)
