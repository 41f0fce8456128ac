# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the sqlgate service tests (see sqlgate_support for what they start)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sqlgate_support import (
    CONTAINER,
    DEFAULT_IMAGE,
    SYSTEMD_FLAGS,
    Chain,
    Database,
    RelayHub,
    build_chain,
    close_chain,
    container_sh,
    create_policy_users,
    docker,
    sakila_sql,
    wait_for,
)


def run_as_root(sql: str) -> list[list[str]]:
    """Rows of ``sql`` run as root through the container's socket (tab-separated, no headers)."""
    out = docker('exec', '-i', CONTAINER, 'mariadb', '-N', '-B', input_bytes=sql.encode())
    return [line.split('\t') for line in out.splitlines() if line]


@pytest.fixture(scope='session')
def database() -> Iterator[Database]:
    image = os.environ.get('CLOUDPATTERNS_BASE_IMAGE', DEFAULT_IMAGE)
    if subprocess.run(['docker', 'image', 'inspect', image], capture_output=True).returncode != 0:
        pytest.fail(f'the Docker image {image} does not exist: build the lab base image or set '
                    'CLOUDPATTERNS_BASE_IMAGE to a Debian bookworm image with systemd')
    docker('rm', '-f', CONTAINER, check=False)
    docker('run', '-d', '--name', CONTAINER, *SYSTEMD_FLAGS, image, '/lib/systemd/systemd')
    try:
        wait_for(lambda: docker('exec', CONTAINER, 'systemctl', 'is-system-running', check=False).strip()
              in ('running', 'degraded'), 60, 'systemd in the container')
        container_sh('apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive '
            'apt-get install -y -q --no-install-recommends mariadb-server >/dev/null', timeout=600)
        # The socket unit of bookworm's MariaDB holds the port; a plain service that binds every address.
        container_sh('systemctl disable --now mariadb.socket 2>/dev/null || true; systemctl mask mariadb.socket; '
            'printf "[mysqld]\\nbind-address = 0.0.0.0\\nmax_connections = 500\\n" '
            '> /etc/mysql/mariadb.conf.d/99-sqlgate-test.cnf; systemctl restart mariadb')
        wait_for(lambda: 'alive' in docker('exec', CONTAINER, 'mariadb-admin', 'ping', check=False), 60, 'mariadb')
        docker('exec', '-i', CONTAINER, 'mariadb', input_bytes=sakila_sql(), timeout=300)
        password = secrets.token_hex(16)
        docker('exec', '-i', CONTAINER, 'mariadb', input_bytes=(
            f"CREATE USER 'sqlgate'@'%' IDENTIFIED BY '{password}';\n"
            "GRANT SELECT, INSERT, UPDATE, DELETE ON sakila.* TO 'sqlgate'@'%';\n"
        ).encode())
        address = docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
                          CONTAINER).split()[0]
        passwords, scopes = create_policy_users(run_as_root)
        db = Database(address, 3306, 'sqlgate', password, passwords=passwords, scopes=scopes)
        wait_for(lambda: db.connect().close() is None, 30, 'a connection from the host')
        yield db
    finally:
        docker('rm', '-f', CONTAINER, check=False)


@pytest.fixture(scope='session')
def relay_hub() -> Iterator[RelayHub]:
    hub = RelayHub()
    yield hub
    hub.stop()


@pytest.fixture
def make_chain(tmp_path: Path, database: Database, relay_hub: RelayHub) -> Any:
    """A factory: ``await make_chain(workers=2, proxy={...})`` -> Chain with relays named after nodes."""
    chains: list[Chain] = []

    async def factory(workers: int = 2, **overrides: Any) -> Chain:
        relays = {'manager': relay_hub.relay((database.host, database.port))}
        for index in range(1, workers + 1):
            relays[f'worker{index}'] = relay_hub.relay((database.host, database.port))
        nodes = [{'name': name, 'host': '127.0.0.1', 'port': relay.port,
                  'role': 'manager' if name == 'manager' else 'worker'} for name, relay in relays.items()]
        chain = await build_chain(tmp_path / f'chain{len(chains)}', nodes, database, relays=relays,
                                  **overrides)
        chains.append(chain)
        return chain

    factory.chains = chains  # type: ignore[attr-defined]
    return factory


@pytest_asyncio.fixture(loop_scope='session')
async def chain_factory(make_chain: Any, relay_hub: RelayHub) -> AsyncIterator[Any]:
    yield make_chain
    for chain in make_chain.chains:
        await close_chain(chain)
        for relay in chain.relays.values():
            relay_hub.close_relay(relay)


@pytest_asyncio.fixture(loop_scope='session')
async def chain(chain_factory: Any) -> Chain:
    """The default chain: manager and two workers, all up."""
    built = await chain_factory()
    await built.wait_probed()
    return built
