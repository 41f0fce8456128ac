# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Helpers for the sqlgate service tests: the MariaDB container, TCP relays, the three services.

One MariaDB server runs in a systemd container (image from CLOUDPATTERNS_BASE_IMAGE). Every node
the proxy knows (manager, worker1, worker2) is a TCP relay in this process in front of that one
server: a relay can refuse connections, swallow them (a hung node) or add latency, which makes
ejection, re-admission, retries and latency-based routing deterministic. The data is shared, as it
is in a replicated cluster, so a write on the manager is readable on every worker.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest
from aiohttp import ClientSession, web
from yarl import URL

REPO = Path(__file__).resolve().parents[2]
# The services' package, and the collection (its policy filter derives the database users the tests run as).
for _path in (str(REPO / 'files' / 'sqlgate'), str(REPO / 'collections')):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from ansible_collections.cloudpatterns.mysql.plugins.filter.sql_policy import (  # noqa: E402
    SCHEMA_QUERIES,
    sql_policy_accounts,
    sql_policy_proxy,
    sql_policy_scopes,
    sql_policy_trusted,
)

from sqlgate.config import Credentials, DatabaseConfig, NodeConfig, load_config  # noqa: E402
from sqlgate.db import connect  # noqa: E402
from sqlgate.gatekeeper import create_gatekeeper_app  # noqa: E402
from sqlgate.listener import Listener  # noqa: E402
from sqlgate.proxy import PROXY, create_proxy_app  # noqa: E402
from sqlgate.trusted import create_trusted_app  # noqa: E402
from sqlgate.wire import Connection  # noqa: E402

CONTAINER = 'cpm-test-svc-mariadb'
DEFAULT_IMAGE = 'cloudpatterns/debian12-systemd:bookworm'
API_KEY = 'test-key-' + 'k' * 40
API_KEY_NAME = 'tester'
READONLY_KEY = 'test-readonly-' + 'r' * 40
SYSTEMD_FLAGS = [
    '--cap-add', 'SYS_ADMIN', '--cgroupns=host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
    '--tmpfs', '/run', '--tmpfs', '/run/lock', '--tmpfs', '/tmp', '--stop-signal', 'SIGRTMIN+3',
]


# -- MariaDB in a container ------------------------------------------------------------------------
@dataclass(frozen=True)
class Database:
    host: str
    port: int
    user: str
    password: str
    name: str = 'sakila'
    # The SQL policy's users (scope users and the probe), user to password, created with the policy's grants.
    passwords: dict[str, str] = field(default_factory=dict)
    scopes: dict[str, Any] = field(default_factory=dict)

    def connect(self, **kwargs: Any) -> pymysql.connections.Connection:
        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=self.name, autocommit=True, **kwargs)


async def session(database: Database, user: str | None = None, write: bool = False, read_timeout: float = 4.0,
                  **kwargs: Any) -> tuple[Connection, DatabaseConfig]:
    """A connection as the proxy has it: logged in by PyMySQL, then run on the event loop. ``user``: one of the
    policy's users (default: the test's own, with SELECT and writes on all of sakila)."""
    node = NodeConfig('manager', database.host, database.port, 'manager')
    db = DatabaseConfig('sakila', 'unused', b'unused', 'utf8mb4', 2.0, read_timeout, 4.0, 2.0)
    creds = Credentials(user or database.user, (database.passwords[user] if user else database.password).encode())
    conn = connect(node, db, creds, write=write, **kwargs)
    return await Connection.adopt(conn, conn.max_packet), db


async def reset(conn: Connection) -> None:
    """What the pool does between two requests (the reset may already have gone out behind the statement)."""
    done = asyncio.get_running_loop().create_future()
    conn.reset_then(done.set_result)
    assert await done, 'the session reset failed'


async def pooled(execute: Any, conn: Connection, *args: Any) -> Any:
    """One statement as the pool runs it (``db.execute_read`` or ``db.execute_write``), then the session reset."""
    try:
        return await execute(conn, *args)
    finally:
        if conn.open:
            await reset(conn)


# The collection's own policy (inventory/group_vars/all/policy.yml), as the playbook applies it.
POLICY = {
    'database': 'sakila',
    'defaults': {'read': ['base_tables', 'views'], 'write': ['base_tables'],
                 'hidden_columns': ['staff.password', 'staff.picture'],
                 'statements': ['SELECT', 'INSERT', 'UPDATE', 'DELETE'], 'allowed_functions': [],
                 'max_affected_rows': 100, 'max_result_bytes': 4194304, 'max_result_rows': 10000,
                 'select_limit_cap': 1000, 'statement_timeout': 5, 'sql_safe_updates': False},
    'scopes': {'default': {}, 'readonly': {'write': [], 'statements': ['SELECT']}},
}
PROBE_USER = 'sqlgate_probe'
# The role's own information_schema queries, for this server's sakila.
_COLUMNS_SQL, _CASCADES_SQL = (query.replace('%(db)s', "'sakila'") for query in SCHEMA_QUERIES)


def grant_statements(user: str, priv: str, password: str) -> list[str]:
    """SQL for one account from a community.mysql priv string (what the sql_policy role hands mysql_user)."""
    statements = [f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"]
    for item in priv.split('/'):
        target, _, privileges = item.rpartition(':')
        statements.append(f"GRANT {privileges} ON {target} TO '{user}'@'%'")
    return statements


def create_policy_users(run_sql: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """Create the policy's accounts through ``run_sql(text) -> rows``; (passwords, resolved scopes)."""
    columns = [{'table': t, 'column': c, 'type': k} for t, c, k in run_sql(_COLUMNS_SQL)]
    cascades = [{'table': t, 'column': c, 'on_update': u, 'on_delete': d} for t, c, u, d in run_sql(_CASCADES_SQL)]
    scopes = sql_policy_scopes(POLICY, columns)
    passwords = {}
    statements = []
    for account in sql_policy_accounts(scopes, columns, cascades, 'sakila', PROBE_USER, 'language'):
        passwords[account['user']] = secrets.token_hex(16)
        statements += grant_statements(account['user'], account['priv'], passwords[account['user']])
    run_sql(';\n'.join(statements) + ';')
    return passwords, scopes


def docker(*args: str, input_bytes: bytes | None = None, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(['docker', *args], input=input_bytes, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f'docker {" ".join(args[:3])} failed: {result.stderr.decode(errors="replace")[-2000:]}')
    return result.stdout.decode(errors='replace')


def container_sh(script: str, timeout: float = 120) -> str:
    return docker('exec', CONTAINER, 'bash', '-ec', script, timeout=timeout)


def sakila_sql() -> bytes:
    archive = Path(os.environ.get('SAKILA_ARCHIVE', REPO.parent / 'shared' / 'sakila' / 'sakila-db.tar.gz'))
    if not archive.is_file():
        pytest.fail(f'the sakila archive is missing: {archive} (set SAKILA_ARCHIVE)')
    sums = archive.parent / 'SHA256SUMS'
    if sums.is_file() and 'SAKILA_ARCHIVE' not in os.environ:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        assert digest in sums.read_text(), f'{archive} does not match {sums}'
    with tarfile.open(archive) as tar:
        schema = tar.extractfile('sakila-db/sakila-schema.sql').read().decode('utf-8')  # type: ignore[union-attr]
        data = tar.extractfile('sakila-db/sakila-data.sql').read().decode('utf-8')  # type: ignore[union-attr]
    # MariaDB executes this MySQL 8 versioned comment and fails on it.
    schema = schema.replace('/*!80003 SRID 0 */', '')
    return (schema + '\n' + data).encode('utf-8')


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    pytest.fail(f'timed out waiting for {what}')


# -- TCP relays: one per node ----------------------------------------------------------------------
class Relay:
    """Forwards 127.0.0.1:port to the database. Modes: up, refuse (reset at once), blackhole (hang)."""

    def __init__(self, hub: RelayHub, target: tuple[str, int]) -> None:
        self.hub = hub
        self.target = target
        self.mode = 'up'
        self.delay = 0.0
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, '127.0.0.1', 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == 'refuse':
            writer.transport.abort()
            return
        self.writers.add(writer)
        if self.mode == 'blackhole':
            try:
                await reader.read()  # until the client gives up
            finally:
                self.writers.discard(writer)
                writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.writers.discard(writer)
            writer.transport.abort()
            return
        self.writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer, delayed=True), self._pipe(up_reader, writer))
        self.writers.discard(writer)
        self.writers.discard(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool = False) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                if delayed and self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    def set_mode(self, mode: str) -> None:
        """up, refuse or blackhole; leaving 'up' cuts every open connection, as a crashed node does."""
        def apply() -> None:
            self.mode = mode
            if mode != 'up':
                for writer in list(self.writers):
                    writer.transport.abort()
        self.hub.call(apply)

    def set_delay(self, seconds: float) -> None:
        self.hub.call(lambda: setattr(self, 'delay', seconds))


class RelayHub:
    """An event loop in a thread that runs the relays, away from the services' loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name='relay-hub', daemon=True)
        self.thread.start()
        self.relays: list[Relay] = []

    def call(self, function: Any) -> None:
        async def run() -> None:
            function()
        asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def relay(self, target: tuple[str, int]) -> Relay:
        relay = Relay(self, target)
        asyncio.run_coroutine_threadsafe(relay.start(), self.loop).result(5)
        self.relays.append(relay)
        return relay

    def close_relay(self, relay: Relay) -> None:
        async def stop() -> None:
            relay.mode = 'refuse'
            for writer in list(relay.writers):
                writer.transport.abort()
            if relay.server is not None:
                relay.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)

    def stop(self) -> None:
        for relay in self.relays:
            self.close_relay(relay)

        async def cancel_connections() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_connections(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


# -- the three services ----------------------------------------------------------------------------
def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Chain:
    gatekeeper: Served
    trusted: Served
    proxy: Served
    session: ClientSession
    relays: dict[str, Relay]
    secrets: dict[str, str]
    servers: list[Served] = field(default_factory=list)

    def url(self, path: str, tier: str = 'gatekeeper') -> str:
        return str(getattr(self, tier).make_url(path))

    async def query(self, route: str, query: str, params: list[Any] | None = None,
                    headers: dict[str, str] | None = None, key: str = API_KEY) -> tuple[int, dict[str, Any], Any]:
        body: dict[str, Any] = {'query': query}
        if params is not None:
            body['params'] = params
        all_headers = {'Authorization': f'Bearer {key}', **(headers or {})}
        async with self.session.post(self.url(f'/{route}'), json=body, headers=all_headers) as response:
            return response.status, await response.json(), response.headers

    async def proxy_query(self, route: str, query: str, params: list[Any] | None = None,
                          scope: str = 'default') -> tuple[int, dict[str, Any]]:
        """Straight to the proxy, as the trusted host would call it (skipping validation)."""
        headers = {'X-Sqlgate-Secret': self.secrets['proxy'], 'X-Sqlgate-Scope': scope, 'X-Sqlgate-Key': 'direct'}
        async with self.session.post(self.url(f'/{route}', 'proxy'), json={'query': query, 'params': params or []},
                                     headers=headers) as response:
            return response.status, await response.json()

    async def health(self, tier: str = 'proxy') -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.url('/healthz', tier)) as response:
            return response.status, await response.json()

    async def metrics(self, tier: str = 'proxy') -> str:
        async with self.session.get(self.url('/metrics', tier)) as response:
            assert response.status == 200
            return await response.text()

    async def wait_node(self, name: str, state: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, report = await self.health()
            if any(node['name'] == name and node['state'] == state for node in report['nodes']):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f'node {name} did not become {state}: {report}')

    async def wait_probed(self, timeout: float = 10.0) -> None:
        """Until every node has answered a probe (so it has a latency) and is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, report = await self.health()
            if all(node['state'] == 'up' and node['latency_ms'] is not None for node in report['nodes']):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f'the nodes were not all probed: {report}')

    @property
    def proxy_service(self) -> Any:
        return self.proxy.app[PROXY]


def write_secret(directory: Path, name: str, value: str) -> str:
    path = directory / name
    path.write_text(value + '\n')
    path.chmod(0o600)
    return str(path)


def write_config(directory: Path, name: str, config: dict[str, Any]) -> str:
    path = directory / f'{name}.json'
    path.write_text(json.dumps(config, indent=1))
    return str(path)


class Served:
    """A service on its real listener (HTTP and the link on one port), with TestServer's few methods."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.listener = Listener(app, '127.0.0.1', 0, shutdown_timeout=2)

    def make_url(self, path: str = '') -> URL:
        return URL(self.listener.make_url(path))

    @property
    def link_url(self) -> str:
        return f'sqlgate://127.0.0.1:{self.listener.port}'

    async def close(self) -> None:
        await self.listener.stop()


async def start_server(app: web.Application) -> Served:
    server = Served(app)
    await server.listener.start()
    return server


async def build_chain(
    directory: Path,
    nodes: list[dict[str, Any]],
    database: Database,
    gatekeeper: dict[str, Any] | None = None,
    trusted: dict[str, Any] | None = None,
    proxy: dict[str, Any] | None = None,
    relays: dict[str, Relay] | None = None,
) -> Chain:
    directory.mkdir(parents=True, exist_ok=True)
    for user, password in database.passwords.items():
        write_secret(directory, f'{user}.password', password)
    tier_secrets = {'trusted': secrets.token_urlsafe(24), 'proxy': secrets.token_urlsafe(24)}
    keys_file = directory / 'api_keys'
    keys_file.write_text(f'# name[:scope]:sha256\n{API_KEY_NAME}:{hashlib.sha256(API_KEY.encode()).hexdigest()}\n'
                         f'other:{hashlib.sha256(b"other-key-" + b"o" * 40).hexdigest()}\n'
                         f'reader:readonly:{hashlib.sha256(READONLY_KEY.encode()).hexdigest()}\n')
    passwords = database.passwords
    proxy_config = deep_merge({
        'host': '127.0.0.1',
        'allowed_clients': ['127.0.0.1/32', '::1/128'],
        'client_secret_file': write_secret(directory, 'proxy_secret', tier_secrets['proxy']),
        'database': {'user': PROBE_USER, 'password_file': write_secret(directory, PROBE_USER, passwords[PROBE_USER]),
                     'statement_timeout': 2, 'read_timeout': 4, 'write_timeout': 4, 'connect_timeout': 2},
        'scopes': {
            name: {**scope, 'statement_timeout': 2}
            for name, scope in sql_policy_proxy(database.scopes, str(directory)).items()
        },
        'nodes': nodes,
        'pool': {'size': 4, 'acquire_timeout': 0.5},
        'health': {'probe_interval': 0.1, 'probe_timeout': 1, 'failure_threshold': 2},
    }, proxy or {})
    proxy_server = await start_server(
        create_proxy_app(load_config('proxy', write_config(directory, 'proxy', proxy_config))))
    trusted_config = deep_merge({
        'host': '127.0.0.1',
        'allowed_clients': ['127.0.0.1'],
        'client_secret_file': write_secret(directory, 'trusted_secret', tier_secrets['trusted']),
        'upstream': {'url': proxy_server.link_url,
                     'secret_file': str(directory / 'proxy_secret'), 'timeout': 8},
        'scopes': sql_policy_trusted(database.scopes, 'sakila', 'mariadb'),
    }, trusted or {})
    trusted_server = await start_server(
        create_trusted_app(load_config('trusted', write_config(directory, 'trusted', trusted_config))))
    gatekeeper_config = deep_merge({
        'host': '127.0.0.1',
        'api_keys_file': str(keys_file),
        'rate_limit': {'rate': 1000, 'burst': 1000},
        'upstream': {'url': trusted_server.link_url,
                     'secret_file': str(directory / 'trusted_secret'), 'timeout': 10},
    }, gatekeeper or {})
    gatekeeper_server = await start_server(
        create_gatekeeper_app(load_config('gatekeeper', write_config(directory, 'gatekeeper', gatekeeper_config))))
    return Chain(gatekeeper_server, trusted_server, proxy_server, ClientSession(), relays or {}, tier_secrets,
                 [gatekeeper_server, trusted_server, proxy_server])


async def close_chain(chain: Chain) -> None:
    await chain.session.close()
    for server in chain.servers:
        await server.close()


def access_lines(caplog: pytest.LogCaptureFixture, service: str | None = None) -> list[dict[str, Any]]:
    lines = [record.access for record in caplog.records if hasattr(record, 'access')]
    return [line for line in lines if service is None or line['service'] == service]
