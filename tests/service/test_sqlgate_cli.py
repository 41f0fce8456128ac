# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The services as the systemd units run them: ``python -m sqlgate <service> --config FILE``.

Checks the JSON log lines on stdout (one per request, no secret anywhere), a clean exit on SIGTERM,
that a request in flight at SIGTERM still gets its answer, and HTTPS: the gatekeeper and the trusted
host serve TLS with a self-signed certificate that the client and the gatekeeper verify.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession, TCPConnector

from sqlgate_support import (
    API_KEY,
    API_KEY_NAME,
    PROBE_USER,
    REPO,
    sql_policy_proxy,
    sql_policy_trusted,
    write_config,
    write_secret,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Services:
    def __init__(self, directory: Path, database) -> None:
        self.directory = directory
        self.secrets = {name: secrets.token_urlsafe(24) for name in ('trusted', 'proxy')}
        self.ports = {name: free_port() for name in ('gatekeeper', 'trusted', 'proxy')}
        self.db_password = database.passwords[PROBE_USER]
        for user, password in database.passwords.items():
            write_secret(directory, f'{user}.password', password)
        keys = directory / 'keys'
        keys.write_text(f'{API_KEY_NAME}:{hashlib.sha256(API_KEY.encode()).hexdigest()}\n')
        local = ['127.0.0.1']
        self.cert, key = str(directory / 'cert.pem'), str(directory / 'key.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', self.cert,
                        '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'],
                       check=True, capture_output=True)
        tls = {'tls_cert_file': self.cert, 'tls_key_file': key}
        self.schemes = {'gatekeeper': 'https', 'trusted': 'https', 'proxy': 'http'}
        self.configs = {
            'proxy': {
                'host': '127.0.0.1', 'port': self.ports['proxy'], 'allowed_clients': local,
                'client_secret_file': write_secret(directory, 'proxy_secret', self.secrets['proxy']),
                'database': {'user': PROBE_USER,
                             'password_file': write_secret(directory, PROBE_USER, database.passwords[PROBE_USER])},
                'scopes': sql_policy_proxy(database.scopes, str(directory)),
                'nodes': [{'name': 'manager', 'host': database.host, 'role': 'manager'},
                          {'name': 'worker1', 'host': database.host, 'role': 'worker'}],
                'health': {'probe_interval': 0.2}, 'shutdown_timeout': 5,
            },
            'trusted': {
                'host': '127.0.0.1', 'port': self.ports['trusted'], 'allowed_clients': local, **tls,
                'client_secret_file': write_secret(directory, 'trusted_secret', self.secrets['trusted']),
                'upstream': {'url': f'http://127.0.0.1:{self.ports["proxy"]}',
                             'secret_file': str(directory / 'proxy_secret')},
                'scopes': sql_policy_trusted(database.scopes, 'sakila', 'mariadb'),
            },
            'gatekeeper': {
                'host': '127.0.0.1', 'port': self.ports['gatekeeper'], 'api_keys_file': str(keys), **tls,
                'upstream': {'url': f'https://127.0.0.1:{self.ports["trusted"]}', 'ca_file': self.cert,
                             'secret_file': str(directory / 'trusted_secret')},
            },
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        env = {**os.environ, 'PYTHONPATH': str(REPO / 'files' / 'sqlgate')}
        for service in ('proxy', 'trusted', 'gatekeeper'):
            path = write_config(self.directory, service, self.configs[service])
            self.processes[service] = subprocess.Popen(
                [sys.executable, '-m', 'sqlgate', service, '--config', path],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def url(self, service: str, path: str) -> str:
        return f'{self.schemes[service]}://127.0.0.1:{self.ports[service]}{path}'

    def client(self) -> ClientSession:
        return ClientSession(connector=TCPConnector(ssl=ssl.create_default_context(cafile=self.cert)))

    def stop(self, service: str) -> tuple[int, list[dict], str]:
        process = self.processes[service]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
        lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        return process.returncode, lines, err.decode()

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def services(tmp_path, database):
    started = Services(tmp_path, database)
    started.start()
    yield started
    started.kill_all()


async def wait_ready(session: ClientSession, services: Services) -> None:
    deadline = time.monotonic() + 20
    for service in ('proxy', 'trusted', 'gatekeeper'):
        while True:
            assert services.processes[service].poll() is None, services.stop(service)
            try:
                async with session.get(services.url(service, '/healthz')) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f'{service} did not start'
            await asyncio.sleep(0.1)


@pytest.mark.asyncio(loop_scope='session')
async def test_the_services_run_log_json_lines_and_stop_cleanly_on_sigterm(services):
    async with services.client() as session:
        await wait_ready(session, services)
        headers = {'Authorization': f'Bearer {API_KEY}', 'X-Request-Id': 'cli-test-0001'}
        query = {'query': 'SELECT * FROM customer LIMIT 3'}
        async with session.post(services.url('gatekeeper', '/direct'), json=query, headers=headers) as r:
            body = await r.json()
        assert r.status == 200 and body['rows'][0][2] == 'MARY'
        async with ClientSession() as unverified:  # the certificate is not in the default trust store
            with pytest.raises(Exception, match='certificate verify failed'):
                await unverified.get(services.url('gatekeeper', '/healthz'))
        async with session.post(services.url('gatekeeper', '/direct'), json={'query': 'SELECT 1'},
                                headers={'Authorization': 'Bearer wrong'}) as r:
            assert r.status == 401
        # A request in flight when SIGTERM arrives still gets its answer.
        slow = asyncio.create_task(session.post(
            services.url('proxy', '/direct'), json={'query': 'DO SLEEP(2)'},
            headers={'X-Sqlgate-Secret': services.secrets['proxy'], 'X-Sqlgate-Scope': 'default'}))
        await asyncio.sleep(0.8)
        services.processes['proxy'].send_signal(signal.SIGTERM)
        response = await slow
        assert response.status == 200, await response.text()
        response.release()
    everything = ''
    logs = {}
    for service in ('gatekeeper', 'trusted', 'proxy'):
        code, lines, err = services.stop(service)
        assert code == 0, err
        everything += json.dumps(lines) + err
        logs[service] = lines
        access = [line for line in lines if 'status' in line and 'request_id' in line]
        assert any(line['request_id'] == 'cli-test-0001' and line['status'] == 200 for line in access), lines
        assert all(line['service'] == service for line in lines)
    assert any(line.get('status') == 401 and line.get('error') == 'invalid_credentials' for line in logs['gatekeeper'])
    assert any(line.get('path') == '/direct' and line.get('duration_ms', 0) >= 2000 for line in logs['proxy'])
    for secret in (*services.secrets.values(), services.db_password, API_KEY):
        assert secret not in everything


def test_a_bad_config_exits_2_naming_the_key(tmp_path):
    (tmp_path / 'proxy.json').write_text(json.dumps({'nodes': []}))
    env = {**os.environ, 'PYTHONPATH': str(REPO / 'files' / 'sqlgate')}
    result = subprocess.run([sys.executable, '-m', 'sqlgate', 'proxy', '--config', str(tmp_path / 'proxy.json')],
                            capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert 'configuration error' in result.stderr and "'allowed_clients'" in result.stderr


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


async def wait_children(pid: int, count: int, exclude: set[int] = frozenset()) -> set[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = children_of(pid) - exclude
        if len(children) == count:
            return children
        await asyncio.sleep(0.1)
    raise AssertionError(f'{pid} has children {children_of(pid)}, expected {count} new ones')


@pytest.mark.asyncio(loop_scope='session')
async def test_workers_share_the_port_the_limits_and_the_metrics_and_a_killed_worker_comes_back(tmp_path, database):
    services = Services(tmp_path, database)
    for service in services.configs.values():
        service['workers'] = 2
    # The link from the trusted host to the proxy; a burst of 40 and (almost) no refill for the key.
    services.configs['trusted']['upstream'] = {'url': f'sqlgate://127.0.0.1:{services.ports["proxy"]}',
                                               'secret_file': str(tmp_path / 'proxy_secret')}
    services.configs['gatekeeper']['rate_limit'] = {'rate': 0.001, 'burst': 40}
    services.start()
    try:
        gatekeeper = services.processes['gatekeeper'].pid
        async with services.client() as session:
            await wait_ready(session, services)
            for service in ('gatekeeper', 'trusted', 'proxy'):
                assert len(await wait_children(services.processes[service].pid, 2)) == 2, service
            headers = {'Authorization': f'Bearer {API_KEY}', 'Connection': 'close'}
            statuses = []
            for number in range(60):  # a new connection each: the kernel spreads them over the workers
                async with session.post(services.url('gatekeeper', '/random'), headers=headers,
                                        json={'query': 'SELECT %s AS n', 'params': [number]}) as response:
                    statuses.append(response.status)
            assert statuses.count(200) == 40 and statuses.count(429) == 20, statuses
            async with session.get(services.url('gatekeeper', '/metrics')) as response:
                metrics = await response.text()
            served = {}
            for line in metrics.splitlines():
                if line.startswith('sqlgate_http_requests_total{') and 'path="/random"' in line:
                    worker = line.split('worker="', 1)[1].split('"', 1)[0]
                    served[worker] = served.get(worker, 0) + float(line.rsplit(' ', 1)[1])
            assert set(served) == {'0', '1'} and all(count > 0 for count in served.values()), served
            assert sum(served.values()) == 60, served
            assert metrics.count('# TYPE sqlgate_http_requests_total ') == 1

            before = children_of(gatekeeper)
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            replaced = await wait_children(gatekeeper, 1, exclude=before)
            assert victim not in children_of(gatekeeper) and len(children_of(gatekeeper)) == 2, replaced
            async with session.get(services.url('gatekeeper', '/healthz')) as response:
                assert response.status == 200
    finally:
        results = {service: services.stop(service) for service in ('gatekeeper', 'trusted', 'proxy')}
        services.kill_all()
    for service, (code, lines, err) in results.items():
        assert code == 0, (service, err)
        assert any('2 workers started' in line.get('message', '') for line in lines), service
    assert any('ended with status' in line.get('message', '') for line in results['gatekeeper'][1])
