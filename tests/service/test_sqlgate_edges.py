# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Gatekeeper and tier edges against stub upstreams (no database): every error status and its body."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web

from sqlgate.config import load_config
from sqlgate.gatekeeper import create_gatekeeper_app
from sqlgate.proxy import create_proxy_app
from sqlgate.trusted import create_trusted_app
from sqlgate_support import API_KEY, API_KEY_NAME, access_lines, start_server, write_config, write_secret

pytestmark = pytest.mark.asyncio(loop_scope='session')
AUTH = {'Authorization': f'Bearer {API_KEY}'}


class Stub:
    """A stand-in for the next tier that records what it received and answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self.status = 200
        self.body: Any = {'request_id': 'x', 'route': 'direct', 'node': 'manager', 'kind': 'read',
                          'columns': ['a'], 'rows': [[1]], 'row_count': 1}
        self.content_type = 'application/json'

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({'path': request.path, 'headers': request.headers.copy(), 'body': await request.read()})
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return web.Response(status=self.status, text=text, content_type=self.content_type,
                            headers={'X-Sqlgate-Node': 'manager', 'X-Sqlgate-Kind': 'read'})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route('*', '/{tail:.*}', self.handle)
        return app


class Edge:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.session = ClientSession()
        self.servers: list[Any] = []
        self.stub = Stub()
        self.secret = secrets.token_urlsafe(24)
        write_secret(directory, 'secret', self.secret)
        keys = directory / 'keys'
        keys.write_text(f'{API_KEY_NAME}:{hashlib.sha256(API_KEY.encode()).hexdigest()}\n')

    async def serve(self, app: web.Application) -> str:
        server = await start_server(app)
        self.servers.append(server)
        return str(server.make_url('')).rstrip('/')

    async def gatekeeper(self, upstream_url: str | None = None, **overrides: Any) -> str:
        if upstream_url is None:
            upstream_url = await self.serve(self.stub.app())
        config = {'host': '127.0.0.1', 'api_keys_file': str(self.directory / 'keys'),
                  'rate_limit': {'rate': 1000, 'burst': 1000},
                  'upstream': {'url': upstream_url, 'secret_file': str(self.directory / 'secret'), 'timeout': 2}}
        config.update(overrides)
        return await self.serve(create_gatekeeper_app(load_config('gatekeeper', write_config(
            self.directory, f'gatekeeper{len(self.servers)}', config))))

    async def trusted(self, upstream_url: str | None = None, **overrides: Any) -> str:
        if upstream_url is None:
            upstream_url = await self.serve(self.stub.app())
        config = {'host': '127.0.0.1', 'allowed_clients': ['127.0.0.1'],
                  'client_secret_file': str(self.directory / 'secret'),
                  'upstream': {'url': upstream_url, 'secret_file': str(self.directory / 'secret'), 'timeout': 2}}
        config.update(overrides)
        return await self.serve(create_trusted_app(load_config('trusted', write_config(
            self.directory, f'trusted{len(self.servers)}', config))))

    async def proxy(self, **overrides: Any) -> str:
        write_secret(self.directory, 'db_password', 'unused')
        config = {'host': '127.0.0.1', 'allowed_clients': ['127.0.0.1'],
                  'client_secret_file': str(self.directory / 'secret'),
                  'database': {'user': 'nobody', 'password_file': str(self.directory / 'db_password')},
                  'scopes': {'default': {'read_user': 'nobody',
                                         'read_password_file': str(self.directory / 'db_password')}},
                  'nodes': [{'name': 'manager', 'host': '127.0.0.1', 'port': 9, 'role': 'manager'}],
                  'health': {'probe_interval': 60}}
        config.update(overrides)
        return await self.serve(create_proxy_app(load_config('proxy', write_config(
            self.directory, f'proxy{len(self.servers)}', config))))

    async def post(self, url: str, body: Any = None, headers: dict[str, str] | None = None,
                   data: bytes | None = None) -> tuple[int, Any, Any]:
        kwargs: dict[str, Any] = {'data': data} if data is not None else {'json': body}
        async with self.session.post(url, headers=headers, **kwargs) as response:
            text = await response.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            return response.status, parsed, response.headers

    async def close(self) -> None:
        await self.session.close()
        for server in self.servers:
            await server.close()


@pytest_asyncio.fixture(loop_scope='session')
async def edge(tmp_path):
    built = Edge(tmp_path)
    yield built
    await built.close()


def assert_error(status: int, body: Any, headers: Any, expected_status: int, code: str | None = None) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {'error', 'request_id'}, body
    assert set(body['error']) == {'code', 'message'} and body['error']['message']
    assert 'Traceback' not in json.dumps(body)
    assert body['request_id'] == headers['X-Request-Id']
    if code is not None:
        assert body['error']['code'] == code, body


# -- gatekeeper ------------------------------------------------------------------------------------
async def test_a_valid_request_is_forwarded_with_the_tier_secret_and_request_id(edge):
    url = await edge.gatekeeper()
    status, body, headers = await edge.post(f'{url}/random', {'query': 'SELECT 1', 'params': []}, AUTH)
    assert status == 200 and body['rows'] == [[1]]
    forwarded = edge.stub.requests[0]
    assert forwarded['path'] == '/random'
    assert forwarded['headers']['X-Sqlgate-Secret'] == edge.secret
    assert re.fullmatch(r'[0-9a-f]{32}', headers['X-Request-Id'])
    assert forwarded['headers']['X-Request-Id'] == headers['X-Request-Id']
    assert 'Authorization' not in forwarded['headers']
    assert json.loads(forwarded['body']) == {'query': 'SELECT 1', 'params': []}


async def test_a_well_formed_client_request_id_is_kept_a_malformed_one_replaced(edge):
    url = await edge.gatekeeper()
    _, _, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, {**AUTH, 'X-Request-Id': 'client-req-0001'})
    assert headers['X-Request-Id'] == 'client-req-0001'
    _, _, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, {**AUTH, 'X-Request-Id': 'bad id"{}'})
    assert re.fullmatch(r'[0-9a-f]{32}', headers['X-Request-Id'])


@pytest.mark.parametrize(('headers', 'code'), [
    ({}, 'missing_credentials'),
    ({'Authorization': 'Bearer wrong-key'}, 'invalid_credentials'),
    ({'Authorization': f'Basic {API_KEY}'}, 'missing_credentials'),
    ({'X-API-Key': 'wrong-key'}, 'invalid_credentials'),
])
async def test_401_without_a_valid_key(edge, headers, code):
    url = await edge.gatekeeper()
    status, body, response_headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, headers)
    assert_error(status, body, response_headers, 401, code)
    assert response_headers['WWW-Authenticate'] == 'Bearer'
    assert not edge.stub.requests


async def test_the_x_api_key_header_is_accepted(edge):
    url = await edge.gatekeeper()
    status, _, _ = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, {'X-API-Key': API_KEY})
    assert status == 200


async def test_429_with_retry_after_instead_of_queueing(edge):
    url = await edge.gatekeeper(rate_limit={'rate': 0.4, 'burst': 2})
    statuses = []
    for _ in range(2):
        status, _, _ = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
        statuses.append(status)
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert statuses == [200, 200]
    assert_error(status, body, headers, 429, 'rate_limited')
    assert headers['Retry-After'] in ('2', '3')
    assert len(edge.stub.requests) == 2
    metrics = await (await edge.session.get(f'{url}/metrics')).text()
    assert f'sqlgate_rate_limited_total{{api_key="{API_KEY_NAME}"}} 1' in metrics


async def test_413_for_a_body_over_the_limit(edge):
    url = await edge.gatekeeper(max_body_bytes=1024)
    big = {'query': 'SELECT ' + '1' * 2000}
    status, body, headers = await edge.post(f'{url}/direct', big, AUTH)
    assert_error(status, body, headers, 413, 'payload_too_large')

    async def chunks():
        for _ in range(4):
            yield b'{"query": "' + b'x' * 400
    headers = {**AUTH, 'Content-Type': 'application/json'}
    async with edge.session.post(f'{url}/direct', data=chunks(), headers=headers) as response:
        assert response.status == 413
        assert (await response.json())['error']['code'] == 'payload_too_large'
    assert not edge.stub.requests


@pytest.mark.parametrize(('data', 'content_type', 'code'), [
    (b'{"query": "SELECT 1"}', 'text/plain', 'unsupported_content_type'),
    (b'{"query": ', 'application/json', 'invalid_json'),
    (b'[1]', 'application/json', 'invalid_request'),
    (b'{"query": ""}', 'application/json', 'invalid_request'),
    (b'{"query": "SELECT 1", "limit": 5}', 'application/json', 'invalid_request'),
    (b'{"query": "SELECT %s", "params": [{"a": 1}]}', 'application/json', 'invalid_params'),
    (b'{"query": "' + b'x' * 10001 + b'"}', 'application/json', 'query_too_long'),
])
async def test_400_for_malformed_requests(edge, data, content_type, code):
    url = await edge.gatekeeper()
    status, body, headers = await edge.post(f'{url}/customized', data=data,
                                            headers={**AUTH, 'Content-Type': content_type})
    assert_error(status, body, headers, 400, code)
    assert not edge.stub.requests


async def test_404_and_405(edge):
    url = await edge.gatekeeper()
    status, body, headers = await edge.post(f'{url}/admin', {'query': 'SELECT 1'}, AUTH)
    assert_error(status, body, headers, 404, 'not_found')
    async with edge.session.get(f'{url}/direct', headers=AUTH) as response:
        body = await response.json()
        assert_error(response.status, body, response.headers, 405, 'method_not_allowed')
        assert response.headers['Allow'] == 'POST'


async def test_502_when_the_trusted_host_is_unreachable(edge):
    url = await edge.gatekeeper(upstream_url='http://127.0.0.1:9')
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert_error(status, body, headers, 502, 'upstream_unavailable')


async def test_504_when_the_trusted_host_is_too_slow(edge):
    edge.stub.delay = 1.5
    upstream = await edge.serve(edge.stub.app())
    url = await edge.gatekeeper(upstream_url=upstream, upstream={
        'url': upstream, 'secret_file': str(edge.directory / 'secret'), 'timeout': 0.3})
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert_error(status, body, headers, 504, 'upstream_timeout')


async def test_502_when_the_upstream_answers_nonsense(edge):
    edge.stub.body = '<html>oops</html>'
    edge.stub.content_type = 'text/html'
    url = await edge.gatekeeper()
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert_error(status, body, headers, 502, 'bad_upstream_response')


async def test_upstream_errors_pass_through_but_a_refused_tier_secret_is_a_502(edge):
    edge.stub.status = 403
    edge.stub.body = {'error': {'code': 'table_not_allowed', 'message': 'the table staff is not allowed'},
                      'request_id': 'r'}
    url = await edge.gatekeeper()
    status, body, _ = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert status == 403 and body['error']['code'] == 'table_not_allowed'
    edge.stub.status = 401
    edge.stub.body = {'error': {'code': 'tier_auth_failed', 'message': 'no'}, 'request_id': 'r'}
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert_error(status, body, headers, 502, 'upstream_refused')


async def test_503_at_the_concurrency_limit(edge):
    edge.stub.delay = 1.0
    url = await edge.gatekeeper(max_in_flight=1)
    first = asyncio.create_task(edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH))
    for _ in range(100):
        if edge.stub.requests:
            break
        await asyncio.sleep(0.02)
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert_error(status, body, headers, 503, 'overloaded')
    assert headers['Retry-After'] == '1'
    assert (await first)[0] == 200


async def test_an_unexpected_exception_is_a_500_without_details(edge, caplog, monkeypatch):
    url = await edge.gatekeeper()
    from sqlgate import gatekeeper as module

    def explode(*args, **kwargs):
        raise RuntimeError('secret internals')

    monkeypatch.setattr(module, 'parse_query_request', explode)
    with caplog.at_level(logging.INFO):
        status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, AUTH)
    assert_error(status, body, headers, 500, 'internal_error')
    assert 'secret internals' not in json.dumps(body)
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert errors and errors[0].exc_info and 'secret internals' in str(errors[0].exc_info[1])


async def test_openapi_healthz_and_metrics(edge):
    url = await edge.gatekeeper(max_query_length=500)
    async with edge.session.get(f'{url}/openapi.json') as response:
        document = await response.json()
    assert document['openapi'].startswith('3.')
    assert set(document['paths']) >= {'/direct', '/random', '/customized'}
    assert document['components']['schemas']['QueryRequest']['properties']['query']['maxLength'] == 500
    async with edge.session.get(f'{url}/healthz') as response:
        assert response.status == 200 and (await response.json()) == {'status': 'ok', 'service': 'gatekeeper'}
    await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, {})
    async with edge.session.get(f'{url}/metrics') as response:
        assert response.headers['Content-Type'].startswith('text/plain; version=0.0.4')
        text = await response.text()
    assert 'sqlgate_info{service="gatekeeper",version="1.0.0"} 1' in text
    assert 'sqlgate_auth_failures_total{reason="missing"} 1' in text
    assert 'sqlgate_http_requests_total{path="/direct",status="401"} 1' in text
    assert 'sqlgate_http_request_duration_seconds_bucket{path="/healthz",le="+Inf"} 1' in text


async def test_metrics_can_be_restricted_to_some_clients(edge):
    url = await edge.gatekeeper(metrics_allowed_clients=['10.9.9.9'])
    async with edge.session.get(f'{url}/metrics') as response:
        assert response.status == 403
        assert (await response.json())['error']['code'] == 'client_not_allowed'


async def test_one_json_access_line_per_request(edge, caplog):
    url = await edge.gatekeeper()
    with caplog.at_level(logging.INFO, logger='sqlgate.access'):
        await edge.post(f'{url}/random', {'query': 'SELECT 1'}, {**AUTH, 'X-Request-Id': 'line-test-0001'})
        await edge.post(f'{url}/random', {'query': 'SELECT 1'}, {})
    lines = access_lines(caplog, 'gatekeeper')
    assert len(lines) == 2
    ok, refused = lines
    assert {'ts', 'service', 'request_id', 'method', 'path', 'status', 'duration_ms', 'client'} <= set(ok)
    assert ok['request_id'] == 'line-test-0001' and ok['status'] == 200 and ok['api_key'] == API_KEY_NAME
    assert ok['route'] == 'random' and ok['node'] == 'manager' and ok['kind'] == 'read'
    assert ok['client'] == '127.0.0.1' and ok['method'] == 'POST' and ok['path'] == '/random'
    assert refused['status'] == 401 and refused['error'] == 'missing_credentials' and 'api_key' not in refused
    for line in lines:
        json.dumps(line)


# -- tier authentication ---------------------------------------------------------------------------
async def test_the_trusted_host_accepts_only_the_gatekeeper(edge):
    url = await edge.trusted()
    good = {'X-Sqlgate-Secret': edge.secret, 'X-Sqlgate-Scope': 'default'}
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1 LIMIT 1'}, {})
    assert_error(status, body, headers, 401, 'tier_auth_failed')
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1 LIMIT 1'},
                                            {'X-Sqlgate-Secret': edge.secret + 'x'})
    assert_error(status, body, headers, 401, 'tier_auth_failed')
    status, body, _ = await edge.post(f'{url}/direct', {'query': 'SELECT 1 LIMIT 1'}, good)
    assert status == 200
    other = await edge.trusted(allowed_clients=['10.0.0.0/8'])
    status, body, headers = await edge.post(f'{other}/direct', {'query': 'SELECT 1 LIMIT 1'}, good)
    assert_error(status, body, headers, 403, 'client_not_allowed')
    assert len(edge.stub.requests) == 1


async def test_the_proxy_accepts_only_the_trusted_host(edge):
    url = await edge.proxy()
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1'}, {'X-Sqlgate-Secret': 'nope'})
    assert_error(status, body, headers, 401, 'tier_auth_failed')
    other = await edge.proxy(allowed_clients=['192.0.2.1'])
    status, body, headers = await edge.post(f'{other}/direct', {'query': 'SELECT 1'},
                                            {'X-Sqlgate-Secret': edge.secret})
    assert_error(status, body, headers, 403, 'client_not_allowed')


async def test_a_gatekeeper_with_the_wrong_secret_gets_502_not_the_clients_fault(edge, tmp_path):
    trusted = await edge.trusted()
    write_secret(tmp_path, 'wrong', secrets.token_urlsafe(24))
    url = await edge.gatekeeper(upstream={'url': trusted, 'secret_file': str(tmp_path / 'wrong')})
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT 1 LIMIT 1'}, AUTH)
    assert_error(status, body, headers, 502, 'upstream_refused')


# -- the trusted host's policy, through the gatekeeper ----------------------------------------------
@pytest.mark.parametrize(('query', 'code', 'words'), [
    ('SELECT * FROM actor -- x', 'comment_not_allowed', 'comments'),
    ('SELECT * FROM mysql.user', 'system_schema', 'mysql'),
    ('DROP TABLE actor', 'statement_not_allowed', 'DROP'),
    ('DELETE FROM actor', 'missing_where', 'WHERE'),
    ('SELECT SLEEP(10)', 'function_not_allowed', 'SLEEP'),
    ('SELECT 1; SELECT 2', 'multiple_statements', 'one statement'),
    ("SELECT * FROM actor INTO OUTFILE '/tmp/x'", 'into_file', 'OUTFILE'),
])
async def test_403_carries_the_reason_and_the_trusted_host_logs_it(edge, caplog, query, code, words):
    trusted = await edge.trusted()
    url = await edge.gatekeeper(upstream_url=trusted)
    with caplog.at_level(logging.INFO, logger='sqlgate.access'):
        status, body, headers = await edge.post(f'{url}/direct', {'query': query}, AUTH)
    assert_error(status, body, headers, 403, code)
    assert words in body['error']['message']
    assert not edge.stub.requests
    line = access_lines(caplog, 'trusted')[-1]
    assert line['status'] == 403 and line['error'] == code and line['reason'] == body['error']['message']
    assert line['request_id'] == headers['X-Request-Id']
    assert access_lines(caplog, 'gatekeeper')[-1]['reason'] == body['error']['message']


async def test_the_trusted_host_appends_the_limit_and_forwards_params(edge):
    trusted = await edge.trusted(scopes={'default': {'select_limit_cap': 25}})
    url = await edge.gatekeeper(upstream_url=trusted)
    status, _, _ = await edge.post(f'{url}/direct', {'query': 'SELECT * FROM film WHERE film_id > %s',
                                                     'params': ["x'; DROP TABLE film; --"]}, AUTH)
    assert status == 200
    forwarded = json.loads(edge.stub.requests[0]['body'])
    assert forwarded == {'query': 'SELECT * FROM film WHERE film_id > %s LIMIT 25',
                         'params': ["x'; DROP TABLE film; --"]}
    assert edge.stub.requests[0]['headers']['X-Sqlgate-Secret'] == edge.secret
    assert edge.stub.requests[0]['headers']['X-Sqlgate-Scope'] == 'default'
    assert edge.stub.requests[0]['headers']['X-Sqlgate-Key'] == API_KEY_NAME


async def test_the_trusted_host_judges_by_the_scope_it_is_told_and_refuses_unknown_ones(edge):
    readonly = {'allowed_statements': ['SELECT'], 'write_tables': []}
    url = await edge.trusted(scopes={'default': {}, 'readonly': readonly})
    headers = {'X-Sqlgate-Secret': edge.secret, 'X-Sqlgate-Scope': 'readonly'}
    status, body, _ = await edge.post(f'{url}/direct', {'query': 'DELETE FROM actor WHERE actor_id = 1'}, headers)
    assert (status, body['error']['code']) == (403, 'statement_not_allowed')
    status, body, _ = await edge.post(f'{url}/direct', {'query': 'SELECT 1 LIMIT 1'},
                                      {**headers, 'X-Sqlgate-Scope': 'admin'})
    assert (status, body['error']['code']) == (403, 'scope_unknown')
    assert not edge.stub.requests


async def test_400_for_placeholder_mismatch_at_the_trusted_host(edge):
    trusted = await edge.trusted()
    url = await edge.gatekeeper(upstream_url=trusted)
    status, body, headers = await edge.post(f'{url}/direct', {'query': 'SELECT %s LIMIT 1', 'params': []}, AUTH)
    assert_error(status, body, headers, 400, 'placeholder_mismatch')


async def test_a_long_query_takes_the_validation_thread_and_passes_unchanged(edge):
    trusted = await edge.trusted()
    url = await edge.gatekeeper(upstream_url=trusted)
    long_query = 'SELECT ' + ', '.join(f'first_name AS n{i}' for i in range(300)) + ' FROM actor LIMIT 1'
    assert len(long_query) > 1024
    slow = asyncio.create_task(edge.post(f'{url}/direct', {'query': long_query}, AUTH))
    async with edge.session.get(f'{trusted}/healthz') as response:
        assert response.status == 200
    status, _, _ = await slow
    assert status == 200
    assert json.loads(edge.stub.requests[0]['body'])['query'] == long_query
