# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""What the three services share: /healthz and /metrics access, the body deadline, SIGHUP, the new settings."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestServer, make_mocked_request

from sqlgate.config import LOOPBACK, ConfigError, ServerConfig, _Section, _server, parse_config
from sqlgate.web import _SIGHUP_SERVICES, SERVICE, Service, address_allowed, create_app, json_response, read_body

SECRET = 'tier-secret-' + 's' * 24


def server_config(**overrides: Any) -> ServerConfig:
    data = {'host': '127.0.0.1', **overrides}
    return _server(_Section(data, ''), 'proxy')


async def echo(request: web.Request) -> web.Response:
    body = await read_body(request, 65536)
    return json_response({'length': len(body)})


class Running:
    def __init__(self) -> None:
        self.servers: list[TestServer] = []
        self.session = ClientSession()

    async def start(self, service: Service) -> str:
        server = TestServer(create_app(service, echo), host='127.0.0.1')
        await server.start_server()
        self.servers.append(server)
        return str(server.make_url('')).rstrip('/')

    async def stop(self, index: int = 0) -> None:
        await self.servers.pop(index).close()

    async def close(self) -> None:
        await self.session.close()
        while self.servers:
            await self.stop()


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Running]:
    handle = Running()
    yield handle
    await handle.close()


def proxy_health() -> tuple[int, dict[str, object]]:
    return 503, {'status': 'down', 'service': 'proxy',
                 'nodes': [{'name': 'manager', 'role': 'manager', 'state': 'down'}]}


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize('service', ['gatekeeper', 'trusted', 'proxy'])
def test_the_shared_defaults_of_every_service(service):
    config = _server(_Section({}, ''), service)
    assert config.max_query_length == 8192
    assert config.body_timeout == 5.0
    assert config.metrics_allowed_clients == LOOPBACK


def test_loopback_is_127_slash_8_and_ipv6_loopback_only():
    assert address_allowed('127.0.0.1', LOOPBACK) and address_allowed('127.8.9.10', LOOPBACK)
    assert address_allowed('::1', LOOPBACK) and address_allowed('::ffff:127.0.0.1', LOOPBACK)
    for other in ('10.0.0.1', '192.168.1.1', '::2', 'fe80::1', '0.0.0.0'):  # noqa: S104
        assert not address_allowed(other, LOOPBACK)


def test_configured_monitoring_clients_replace_the_default():
    config = server_config(metrics_allowed_clients=['10.0.9.0/24'], body_timeout=0.5, max_query_length=100)
    assert config.metrics_allowed_clients == (ipaddress.ip_network('10.0.9.0/24'),)
    assert config.body_timeout == 0.5 and config.max_query_length == 100
    assert server_config(metrics_allowed_clients=None).metrics_allowed_clients == LOOPBACK


@pytest.mark.parametrize(('change', 'message'), [
    ({'body_timeout': 0}, "'body_timeout'"),
    ({'body_timeout': 'soon'}, "'body_timeout'"),
    ({'max_in_flight_per_key': 0}, "'max_in_flight_per_key'"),
    ({'rate_limit': {'per_key': {'bob': {'max_in_flight': 0}}}}, "'rate_limit.per_key.bob.max_in_flight'"),
    ({'rate_limit': {'max_in_flight': 3}}, "unknown config key 'rate_limit.max_in_flight'"),
    ({'upstream': {'max_response_bytes': 10}}, "'upstream.max_response_bytes'"),
])
def test_new_gatekeeper_keys_are_checked(tmp_path, change, message):
    data = gatekeeper_data(tmp_path)
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    with pytest.raises(ConfigError, match=message):
        parse_config('gatekeeper', data)


def gatekeeper_data(directory: Path) -> dict[str, Any]:
    (directory / 'secret').write_text(SECRET)
    (directory / 'keys').write_text('alice:' + '0' * 64 + '\n')
    return {'api_keys_file': str(directory / 'keys'),
            'upstream': {'url': 'http://trusted:8000', 'secret_file': str(directory / 'secret')}}


def test_gatekeeper_limits_defaults_and_overrides(tmp_path):
    config = parse_config('gatekeeper', gatekeeper_data(tmp_path))
    assert config.max_in_flight_per_key == 16 and config.rate_limit.max_in_flight == 16
    assert config.max_in_flight == 256
    assert config.upstream.max_response_bytes == 8388608
    data = gatekeeper_data(tmp_path)
    data.update(max_in_flight_per_key=4, rate_limit={'rate': 5, 'per_key': {'bob': {'max_in_flight': 9},
                                                                            'carol': {'rate': 1}}})
    data['upstream']['max_response_bytes'] = 4096
    config = parse_config('gatekeeper', data)
    assert config.rate_limit.max_in_flight == 4
    assert config.rate_limit_per_key['bob'].max_in_flight == 9 and config.rate_limit_per_key['bob'].rate == 5
    assert config.rate_limit_per_key['carol'].max_in_flight == 4
    assert config.upstream.max_response_bytes == 4096


# -- /healthz and /metrics -------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_the_public_gets_a_bare_healthz_with_the_same_status(running):
    service = Service('proxy', server_config(metrics_allowed_clients=['192.0.2.1']), health=proxy_health)
    url = await running.start(service)
    async with running.session.get(url + '/healthz') as response:
        assert response.status == 503
        assert await response.json() == {'status': 'down'}
    async with running.session.get(url + '/metrics') as response:
        assert response.status == 403


@pytest.mark.asyncio
async def test_monitoring_clients_get_the_whole_healthz_and_metrics(running):
    service = Service('proxy', server_config(metrics_allowed_clients=['127.0.0.1']), health=proxy_health)
    url = await running.start(service)
    async with running.session.get(url + '/healthz') as response:
        assert response.status == 503
        assert (await response.json())['nodes'][0]['name'] == 'manager'
    async with running.session.get(url + '/metrics') as response:
        assert response.status == 200


def peer_request(app: web.Application, path: str, peer: str) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 4567) if name == 'peername' else default
    return make_mocked_request('GET', path, app=app, transport=transport)


@pytest.mark.asyncio
@pytest.mark.parametrize(('peer', 'allowed'), [('127.0.0.1', True), ('::1', True), ('10.0.0.7', False),
                                               ('2001:db8::1', False)])
async def test_by_default_only_loopback_reads_metrics_and_the_full_healthz(peer, allowed):
    service = Service('trusted', server_config())
    app = create_app(service, echo)
    handlers = {resource.canonical: route.handler for resource in app.router.resources() for route in resource}
    health = await handlers['/healthz'](peer_request(app, '/healthz', peer))
    assert json.loads(health.body) == ({'status': 'ok', 'service': 'trusted'} if allowed else {'status': 'ok'})
    if allowed:
        assert (await handlers['/metrics'](peer_request(app, '/metrics', peer))).status == 200
    else:
        with pytest.raises(Exception) as caught:
            await handlers['/metrics'](peer_request(app, '/metrics', peer))
        assert getattr(caught.value, 'code', None) == 'client_not_allowed'


def test_a_service_built_by_hand_without_an_allow_list_means_loopback():
    base = server_config()
    service = Service('proxy', ServerConfig(**{**base.__dict__, 'metrics_allowed_clients': None}))
    assert service.monitoring_client(peer_request(create_app(service, echo), '/metrics', '127.0.0.1'))
    assert not service.monitoring_client(peer_request(create_app(service, echo), '/metrics', '10.1.1.1'))


# -- the body deadline -----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_every_service_reading_a_body_applies_its_body_timeout(running):
    url = await running.start(Service('trusted', server_config(body_timeout=0.3), routes=('/direct',)))
    host, port = url.removeprefix('http://').split(':')
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b'POST /direct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{')
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 3)
    assert await asyncio.wait_for(reader.read(65536), 3) == b''  # and the connection is closed
    writer.close()
    assert answer.startswith(b'HTTP/1.1 408 ')
    assert b'"body_timeout"' in answer and b'0.3 s' in answer
    async with running.session.post(url + '/direct', data=b'{"query": "x"}') as response:
        assert (await response.json()) == {'length': 14}  # a prompt body is read as before


@pytest.mark.asyncio
async def test_read_body_takes_an_explicit_timeout():
    arriving = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())  # no byte yet
    request = make_mocked_request('POST', '/direct', headers={'Content-Length': '10'}, payload=arriving)
    never = asyncio.get_running_loop().create_future()
    with mock.patch.object(request, 'read', new=lambda: never), pytest.raises(Exception) as caught:
        await read_body(request, 100, timeout=0.05)
    assert (caught.value.status, caught.value.code, caught.value.close) == (408, 'body_timeout', True)


# -- SIGHUP ----------------------------------------------------------------------------------------
def registered() -> list[Service]:
    return list(_SIGHUP_SERVICES)


async def wait_until(condition: Any) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError('the condition never held')


@pytest.mark.asyncio
async def test_sighup_reaches_every_service_of_the_process_and_is_a_logged_no_op_without_reload(running, caplog):
    reloaded = []
    gatekeeper = Service('gatekeeper', server_config(), reload=lambda: reloaded.append(1))
    proxy = Service('proxy', server_config())
    await running.start(gatekeeper)
    await running.start(proxy)
    assert registered() == [gatekeeper, proxy]
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None)
    with caplog.at_level(logging.INFO, logger='sqlgate'):
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_until(lambda: reloaded and any('nothing to reload' in r.getMessage() for r in caplog.records))
    assert reloaded == [1]
    await running.stop(0)
    assert registered() == [proxy]
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None)  # still handled for the proxy
    await running.stop(0)
    assert registered() == []
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


def test_a_failing_reload_is_logged_not_raised(caplog):
    def broken() -> None:
        raise RuntimeError('boom')

    service = Service('gatekeeper', server_config(), reload=broken)
    with caplog.at_level(logging.ERROR):
        service.sighup()
    assert caplog.records and caplog.records[0].exc_info


def test_the_service_is_reachable_from_the_app():
    service = Service('proxy', server_config())
    assert create_app(service, echo)[SERVICE] is service
