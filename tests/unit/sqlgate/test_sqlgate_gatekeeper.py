# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The gatekeeper in process, against a stub trusted host: scopes, key reloads, cost bounds, error hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from sqlgate.auth import hash_key
from sqlgate.config import parse_config
from sqlgate.gatekeeper import GATEKEEPER, GENERIC_MESSAGES, Gatekeeper, create_gatekeeper_app, generic_message

pytestmark = pytest.mark.asyncio
SECRET = 'tier-secret-' + 's' * 24
ALICE = 'alice-key-' + 'a' * 40
BOB = 'bob-key-' + 'b' * 40
CAROL = 'carol-key-' + 'c' * 40


def auth(key: str = ALICE) -> dict[str, str]:
    return {'Authorization': f'Bearer {key}'}


class Stub:
    """The trusted host: records what it receives and answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self.status = 200
        self.body: Any = {'request_id': 'x', 'route': 'direct', 'node': 'manager', 'kind': 'read',
                          'columns': ['a'], 'rows': [[1]], 'row_count': 1}
        self.headers = {'X-Sqlgate-Node': 'manager', 'X-Sqlgate-Kind': 'read'}
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({'path': request.path, 'headers': request.headers.copy(), 'body': await request.read()})
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text=json.dumps(self.body), content_type='application/json',
                            headers=self.headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route('*', '/{tail:.*}', self.handle)
        return app


class Harness:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.stub = Stub()
        self.servers: list[TestServer] = []
        self.session = ClientSession()
        (directory / 'secret').write_text(SECRET + '\n')
        self.keys_file = directory / 'api_keys'
        self.write_keys(f'alice:{hash_key(ALICE)}\nbob:reporting:{hash_key(BOB)}\n')
        self.url = ''
        self.gatekeeper: Gatekeeper | None = None

    def write_keys(self, text: str) -> None:
        self.keys_file.write_text(text)

    async def serve(self, app: web.Application) -> str:
        server = TestServer(app, host='127.0.0.1')
        await server.start_server()
        self.servers.append(server)
        return str(server.make_url('')).rstrip('/')

    async def start(self, **overrides: Any) -> str:
        upstream = await self.serve(self.stub.app())
        data: dict[str, Any] = {
            'host': '127.0.0.1', 'api_keys_file': str(self.keys_file),
            'rate_limit': {'rate': 1000, 'burst': 1000},
            'upstream': {'url': upstream, 'secret_file': str(self.directory / 'secret'), 'timeout': 5},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        app = create_gatekeeper_app(parse_config('gatekeeper', data))  # type: ignore[arg-type]
        self.gatekeeper = app[GATEKEEPER]
        self.url = await self.serve(app)
        return self.url

    async def post(self, path: str = '/direct', body: Any = None, headers: dict[str, str] | None = None
                   ) -> tuple[int, Any, Any]:
        async with self.session.post(self.url + path, json=body or {'query': 'SELECT 1'}, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text), response.headers

    async def close(self) -> None:
        await self.session.close()
        for server in reversed(self.servers):
            await server.close()


@pytest_asyncio.fixture
async def gk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    await harness.close()


def assert_error(status: int, body: Any, headers: Any, expected: int, code: str) -> None:
    assert status == expected, body
    assert set(body) == {'error', 'request_id'} and body['error']['code'] == code, body
    assert body['request_id'] == headers['X-Request-Id']


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [record.access for record in caplog.records if record.name == 'sqlgate.access']  # type: ignore[attr-defined]


async def wait_for(condition: Any, seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError('the condition never held')


async def read_for(reader: asyncio.StreamReader, wait: float) -> bytes:
    """Whatever the server sends within ``wait`` seconds (or until it closes)."""
    chunks: list[bytes] = []

    async def read_all() -> None:
        while chunk := await reader.read(65536):
            chunks.append(chunk)

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(read_all(), wait)
    return b''.join(chunks)


async def raw_request(url: str, head: bytes, body: bytes, wait: float) -> bytes:
    """Send the head and part of a body, then read whatever the server answers within ``wait`` seconds."""
    host, port = url.removeprefix('http://').split(':')
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + body)
        await writer.drain()
        return await read_for(reader, wait)
    finally:
        writer.close()


def slow_head(url: str, key: str = ALICE, length: int = 100) -> bytes:
    host = url.removeprefix('http://')
    return (f'POST /direct HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n'
            f'Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n').encode()


# -- 1. scopes and forwarded headers ---------------------------------------------------------------
async def test_the_key_name_and_scope_are_forwarded_and_client_sqlgate_headers_never(gk):
    await gk.start()
    forged = {'X-Sqlgate-Scope': 'admin', 'X-Sqlgate-Key': 'root', 'X-Sqlgate-Secret': 'forged-secret-000000',
              'X-Sqlgate-Node': 'worker9', 'X-Sqlgate-Anything': '1', 'X-Forwarded-For': '10.0.0.1'}
    status, _, _ = await gk.post(headers={**auth(BOB), **forged})
    assert status == 200
    status, _, _ = await gk.post(headers=auth(ALICE))
    assert status == 200
    bob, alice = (request['headers'] for request in gk.stub.requests)
    assert (bob['X-Sqlgate-Key'], bob['X-Sqlgate-Scope']) == ('bob', 'reporting')
    assert (alice['X-Sqlgate-Key'], alice['X-Sqlgate-Scope']) == ('alice', 'default')  # the old line format
    assert bob['X-Sqlgate-Secret'] == SECRET
    assert {name for name in bob if name.lower().startswith('x-sqlgate-')} == {
        'X-Sqlgate-Secret', 'X-Sqlgate-Key', 'X-Sqlgate-Scope'}
    assert bob.getall('X-Sqlgate-Scope') == ['reporting']
    for name in ('Authorization', 'X-Forwarded-For', 'X-Sqlgate-Node', 'X-Sqlgate-Anything'):
        assert name not in bob


# -- 2. key reloads --------------------------------------------------------------------------------
async def test_a_reload_revokes_a_key_at_once_and_drops_its_state(gk, caplog):
    await gk.start()
    assert (await gk.post(headers=auth(BOB)))[0] == 200
    assert gk.gatekeeper.shared.known('bob')
    status, _, _ = await gk.post(headers=auth(CAROL))
    assert status == 401
    gk.write_keys(f'alice:{hash_key(ALICE)}\ncarol:ops:{hash_key(CAROL)}\n')
    with caplog.at_level(logging.INFO, logger='sqlgate'):
        assert gk.gatekeeper.reload_keys() is True
    status, body, headers = await gk.post(headers=auth(BOB))
    assert_error(status, body, headers, 401, 'invalid_credentials')
    assert not gk.gatekeeper.shared.known('bob')
    assert (await gk.post(headers=auth(CAROL)))[0] == 200
    assert gk.stub.requests[-1]['headers']['X-Sqlgate-Scope'] == 'ops'
    messages = [record.getMessage() for record in caplog.records if record.name.startswith('sqlgate.gatekeeper')]
    assert any('2 keys' in message for message in messages), messages
    for message in messages:
        assert hash_key(CAROL) not in message and CAROL not in message


async def test_a_file_that_does_not_parse_keeps_the_old_keys(gk, caplog):
    await gk.start()
    broken = f'alice:{hash_key(ALICE)}\nbob:NotAScope:{hash_key(BOB)}\n'
    gk.write_keys(broken)
    with caplog.at_level(logging.INFO, logger='sqlgate'):
        assert gk.gatekeeper.reload_keys() is False
    assert (await gk.post(headers=auth(BOB)))[0] == 200
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert errors and 'line 2' in errors[0].getMessage() and 'stay' in errors[0].getMessage()
    assert hash_key(BOB) not in errors[0].getMessage()
    gk.keys_file.unlink()
    assert gk.gatekeeper.reload_keys() is False
    assert (await gk.post(headers=auth(ALICE)))[0] == 200
    text = await (await gk.session.get(gk.url + '/metrics')).text()
    assert 'sqlgate_api_key_reloads_total{outcome="failed"} 2' in text
    assert 'sqlgate_api_keys 2' in text


async def test_sighup_reloads_the_keys(gk, caplog):
    await gk.start()
    handler = signal.getsignal(signal.SIGHUP)
    assert handler not in (signal.SIG_DFL, None), 'SIGHUP is not handled: sending it would kill the tests'
    gk.write_keys(f'alice:{hash_key(ALICE)}\n')
    with caplog.at_level(logging.INFO, logger='sqlgate'):
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: 'bob' not in gk.gatekeeper.keys)
    assert (await gk.post(headers=auth(BOB)))[0] == 401
    assert any('API keys reloaded' in record.getMessage() for record in caplog.records)


async def test_a_key_revoked_while_its_body_arrives_is_refused(gk):
    await gk.start()
    body = json.dumps({'query': 'SELECT 1'}).encode()
    host, port = gk.url.removeprefix('http://').split(':')
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(slow_head(gk.url, BOB, len(body)) + body[:5])
    await writer.drain()
    await asyncio.sleep(0.2)
    gk.write_keys(f'alice:{hash_key(ALICE)}\n')
    gk.gatekeeper.reload_keys()
    writer.write(body[5:])
    await writer.drain()
    answer = await read_for(reader, 1.0)
    writer.close()
    assert answer.startswith(b'HTTP/1.1 401 '), answer
    assert b'invalid_credentials' in answer
    assert not gk.stub.requests


# -- 3. bounded cost -------------------------------------------------------------------------------
async def test_a_slow_body_gets_408_and_holds_no_in_flight_slot(gk, caplog):
    await gk.start(body_timeout=0.4, max_in_flight=1)
    with caplog.at_level(logging.INFO, logger='sqlgate.access'):
        slow = asyncio.create_task(raw_request(gk.url, slow_head(gk.url), b'{"query": ', 2.0))
        await asyncio.sleep(0.1)
        assert gk.gatekeeper.shared.in_flight() == 0
        status, _, _ = await gk.post(headers=auth())  # the only slot is free
        assert status == 200
        answer = await slow
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 408 ')
    assert b'connection: close' in head.lower()
    assert json.loads(body)['error']['code'] == 'body_timeout'
    assert len(gk.stub.requests) == 1
    assert [line['error'] for line in access_lines(caplog) if line['status'] == 408] == ['body_timeout']


async def test_many_slow_bodies_do_not_block_everyone(gk):
    await gk.start(body_timeout=1.0, max_in_flight=2)
    slow = [asyncio.create_task(raw_request(gk.url, slow_head(gk.url, BOB), b'{', 1.5)) for _ in range(10)]
    await asyncio.sleep(0.2)
    status, _, _ = await gk.post(headers=auth())
    assert status == 200
    await asyncio.gather(*slow)


async def test_the_per_key_concurrency_limit(gk):
    gk.stub.delay = 0.5
    await gk.start(max_in_flight_per_key=1, rate_limit={'per_key': {'bob': {'max_in_flight': 2}}})
    assert gk.gatekeeper.limit_for('alice').max_in_flight == 1
    assert gk.gatekeeper.limit_for('bob').max_in_flight == 2
    first = asyncio.create_task(gk.post(headers=auth(ALICE)))
    await wait_for(lambda: len(gk.stub.requests) == 1)
    status, body, headers = await gk.post(headers=auth(ALICE))
    assert_error(status, body, headers, 429, 'too_many_concurrent')
    assert headers['Retry-After'] == '1'
    bobs = await asyncio.gather(gk.post(headers=auth(BOB)), gk.post(headers=auth(BOB)))  # bob may have two
    assert [answer[0] for answer in bobs] == [200, 200]
    assert (await first)[0] == 200
    assert gk.gatekeeper.shared.key_in_flight('alice') == 0 and gk.gatekeeper.shared.in_flight() == 0
    assert (await gk.post(headers=auth(ALICE)))[0] == 200  # released
    text = await (await gk.session.get(gk.url + '/metrics')).text()
    assert 'sqlgate_concurrency_limited_total{api_key="alice"} 1' in text


async def test_the_global_limit_still_answers_503(gk):
    gk.stub.delay = 0.5
    await gk.start(max_in_flight=1)
    first = asyncio.create_task(gk.post(headers=auth(ALICE)))
    await wait_for(lambda: len(gk.stub.requests) == 1)
    status, body, headers = await gk.post(headers=auth(BOB))
    assert_error(status, body, headers, 503, 'overloaded')
    assert headers['Retry-After'] == '1'
    assert (await first)[0] == 200


async def test_the_query_length_cap_defaults_to_8192_and_is_checked_before_forwarding(gk):
    await gk.start()
    assert (await gk.post(body={'query': 'SELECT ' + '1' * (8192 - 7)}, headers=auth()))[0] == 200
    status, body, headers = await gk.post(body={'query': 'SELECT ' + '1' * (8192 - 6)}, headers=auth())
    assert_error(status, body, headers, 400, 'query_too_long')
    assert len(gk.stub.requests) == 1
    document = await (await gk.session.get(gk.url + '/openapi.json')).json()
    assert document['components']['schemas']['QueryRequest']['properties']['query']['maxLength'] == 8192


async def test_an_oversized_answer_of_the_trusted_host_is_a_502(gk, caplog):
    gk.stub.body = {'request_id': 'x', 'rows': [['x' * 5000]]}
    await gk.start(upstream={'max_response_bytes': 4096})
    with caplog.at_level(logging.INFO):
        status, body, headers = await gk.post(headers=auth())
    assert_error(status, body, headers, 502, 'upstream_response_too_large')
    assert 'x' * 100 not in json.dumps(body)
    assert any(record.levelno == logging.ERROR and 'max_response_bytes' in record.getMessage()
               for record in caplog.records)


# -- 4. nothing internal leaks ---------------------------------------------------------------------
@pytest.mark.parametrize(('status', 'code', 'message', 'expected'), [
    (502, 'node_failed', "the node worker1 failed: (2003, \"Can't connect to MySQL server on '10.0.4.3'\")",
     'a backend tier failed; retry later and quote the request id'),
    (503, 'no_healthy_node', 'no node is available to serve this read; retry later',
     'the database is not available right now; retry later'),
    (504, 'node_timeout', 'the node worker2 did not answer in time', 'the request took too long in a backend tier'),
    (504, 'upstream_timeout', 'the proxy did not answer within 20 s', 'the request took too long in a backend tier'),
    (500, 'internal_error', 'the service failed to handle this request', GENERIC_MESSAGES[500]),
    (502, 'database_login_failed', 'the proxy could not log in to the database', GENERIC_MESSAGES[502]),
])
async def test_a_relayed_5xx_gets_a_fixed_message_and_the_original_goes_to_the_log(
        gk, caplog, status, code, message, expected):
    gk.stub.status = status
    gk.stub.body = {'error': {'code': code, 'message': message}, 'request_id': 'from-the-trusted-host'}
    gk.stub.headers = {'Retry-After': '3'} if status == 503 else {}
    await gk.start()
    with caplog.at_level(logging.INFO, logger='sqlgate.access'):
        answer, body, headers = await gk.post(headers={**auth(), 'X-Request-Id': 'client-req-0001'})
    assert_error(answer, body, headers, status, code)
    assert body['error']['message'] == expected
    assert body['request_id'] == 'client-req-0001'
    assert message not in json.dumps(body)
    if status == 503:
        assert headers['Retry-After'] == '3'
    line = access_lines(caplog)[-1]
    assert line['upstream_message'] == message and line['error'] == code and line['status'] == status


async def test_relayed_4xx_errors_pass_unchanged(gk, caplog):
    gk.stub.status = 403
    gk.stub.body = {'error': {'code': 'table_not_allowed', 'message': 'the table staff is not allowed'},
                    'request_id': 'r-0000000001'}
    await gk.start()
    with caplog.at_level(logging.INFO, logger='sqlgate.access'):
        status, body, _ = await gk.post(headers=auth())
    assert status == 403 and body == gk.stub.body
    line = access_lines(caplog)[-1]
    assert line['reason'] == 'the table staff is not allowed' and 'upstream_message' not in line
    gk.stub.status = 429
    gk.stub.body = {'error': {'code': 'user_limit', 'message': 'this API key has reached its limit'},
                    'request_id': 'r-0000000002'}
    gk.stub.headers = {'Retry-After': '2'}
    status, body, headers = await gk.post(headers=auth())
    assert status == 429 and body == gk.stub.body and headers['Retry-After'] == '2'


async def test_generic_messages_fall_back_by_status():
    assert generic_message(503, 'pool_exhausted') != generic_message(503, 'no_healthy_node')
    assert generic_message(503, 'something_new') == GENERIC_MESSAGES[503]
    assert generic_message(507, 'insufficient_storage') == GENERIC_MESSAGES[502]


# -- 5. healthz and metrics at the gatekeeper ------------------------------------------------------
async def test_healthz_is_bare_for_the_public_and_metrics_refused(gk):
    await gk.start(metrics_allowed_clients=['192.0.2.0/24'])  # not the test client (127.0.0.1)
    async with gk.session.get(gk.url + '/healthz') as response:
        assert response.status == 200 and await response.json() == {'status': 'ok'}
    async with gk.session.get(gk.url + '/metrics') as response:
        assert response.status == 403 and (await response.json())['error']['code'] == 'client_not_allowed'


async def test_loopback_reads_the_full_healthz_and_metrics_by_default(gk):
    await gk.start()
    async with gk.session.get(gk.url + '/healthz') as response:
        assert await response.json() == {'status': 'ok', 'service': 'gatekeeper'}
    async with gk.session.get(gk.url + '/metrics') as response:
        assert response.status == 200 and 'sqlgate_info' in await response.text()
