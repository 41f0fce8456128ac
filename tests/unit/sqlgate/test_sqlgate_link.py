# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The link between tiers, over a real socket: handshake both ways, multiplexing, bounds, HTTP beside it."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession, web

from sqlgate.auth import TierGuard
from sqlgate.config import TierAuthConfig, _Section, _server
from sqlgate.link import PREFACE, AnswerTooLarge, LinkClient, LinkError
from sqlgate.listener import Listener
from sqlgate.web import LOG_FIELDS, REQUEST_ID, SERVICE, TIER_GUARD, Service, create_app, json_response, read_body

SECRET = b'tier-secret-' + b's' * 24


async def handler(request: web.Request) -> web.Response:
    """Echoes the query; 'sleep N' waits, 'big N' answers N bytes."""
    body = json.loads(await read_body(request, 1 << 20))
    query = body['query']
    request[LOG_FIELDS]['echo'] = True
    if query.startswith('sleep '):
        await asyncio.sleep(float(query.split()[1]))
    if query.startswith('big '):
        return web.Response(body=b'"' + b'x' * int(query.split()[1]) + b'"', content_type='application/json')
    if query == 'worker':
        return json_response({'worker': request.app[SERVICE].worker})
    return json_response({'query': query, 'request_id': request[REQUEST_ID], 'path': request.path},
                         headers={'X-Sqlgate-Node': 'n1', 'X-Other': 'dropped'})


class Served:
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.clients: list[LinkClient] = []

    def client(self, secret: bytes = SECRET, **kwargs: Any) -> LinkClient:
        client = LinkClient('127.0.0.1', self.listener.port, secret, connect_timeout=2, **kwargs)
        self.clients.append(client)
        return client


async def serve(allowed: str = '127.0.0.1/32', port: int = 0, worker: tuple[int, int] = (0, 1),
                **listener_kwargs: Any) -> Listener:
    server = _server(_Section({'host': '127.0.0.1', 'max_body_bytes': 4096}, ''), 'proxy')
    service = Service('proxy', server, routes=('/direct', '/random'))
    service.worker, service.workers = worker
    app = create_app(service, handler)
    app[TIER_GUARD] = TierGuard(TierAuthConfig((ipaddress.ip_network(allowed),), SECRET))
    listener = Listener(app, '127.0.0.1', port, **listener_kwargs)
    await listener.start()
    return listener


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    result = Served(await serve())
    yield result
    for client in result.clients:
        await client.close()
    await result.listener.stop()


def request(query: str, rid: str = 'rid-00000001', path: str = '/direct') -> tuple[dict[str, Any], bytes]:
    return {'path': path, 'rid': rid, 'key': 'k', 'scope': 'default'}, json.dumps({'query': query}).encode()


@pytest.mark.asyncio
async def test_a_request_goes_through_the_handler_and_keeps_its_id(served: Served) -> None:
    meta, body = await served.client().request(*request('SELECT 1'), timeout=2)
    assert meta['status'] == 200
    assert meta['headers'] == {'X-Sqlgate-Node': 'n1', 'X-Request-Id': 'rid-00000001'}
    assert json.loads(body) == {'query': 'SELECT 1', 'request_id': 'rid-00000001', 'path': '/direct'}


@pytest.mark.asyncio
async def test_many_requests_share_one_connection_and_each_gets_its_own_answer(served: Served) -> None:
    client = served.client(connections=1)
    answers = await asyncio.gather(*(client.request(*request(f'q{i}', rid=f'rid-{i:08d}'), timeout=5)
                                     for i in range(200)))
    assert [json.loads(body)['query'] for _, body in answers] == [f'q{i}' for i in range(200)]
    assert len(client.links) == 1
    assert len(served.listener.links) == 1


@pytest.mark.asyncio
async def test_errors_come_back_as_json_with_their_status(served: Served) -> None:
    meta, body = await served.client().request(*request('x', path='/nowhere'), timeout=2)
    assert meta['status'] == 404
    assert json.loads(body)['error']['code'] == 'not_found'


@pytest.mark.asyncio
async def test_a_wrong_secret_is_refused_by_the_server() -> None:
    listener = await serve()
    client = LinkClient('127.0.0.1', listener.port, b'wrong-secret-' + b'w' * 24, connect_timeout=2)
    try:
        with pytest.raises(LinkError) as raised:
            await client.request(*request('SELECT 1'), timeout=2)
        assert raised.value.code == 'upstream_refused'
        assert 'tier_auth_failed' in str(raised.value)
    finally:
        await client.close()
        await listener.stop()


@pytest.mark.asyncio
async def test_an_address_outside_the_allowed_clients_is_refused_before_any_handshake() -> None:
    listener = await serve(allowed='10.9.9.0/24')
    client = LinkClient('127.0.0.1', listener.port, SECRET, connect_timeout=2)
    try:
        with pytest.raises(LinkError) as raised:
            await client.request(*request('SELECT 1'), timeout=2)
        assert 'client_not_allowed' in str(raised.value)
    finally:
        await client.close()
        await listener.stop()


@pytest.mark.asyncio
async def test_a_server_without_the_secret_is_not_trusted_by_the_client() -> None:
    """An impostor that answers HELLO but cannot prove the secret: the client never sends a request."""
    received = bytearray()

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.readexactly(len(PREFACE)))
        writer.write(b'\0\0\0\x20\x01\0\0\0\0' + b'n' * 32)  # HELLO
        received.extend(await reader.readexactly(9 + 64))  # AUTH
        writer.write(b'\0\0\0\x20\x03\0\0\0\0' + b'm' * 32)  # a WELCOME with a wrong proof
        received.extend(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(impostor, '127.0.0.1', 0)
    client = LinkClient('127.0.0.1', server.sockets[0].getsockname()[1], SECRET, connect_timeout=2)
    try:
        with pytest.raises(LinkError) as raised:
            await client.request(*request('SELECT secret'), timeout=2)
        assert raised.value.code == 'upstream_refused'
        assert b'SELECT secret' not in received
    finally:
        await client.close()
        server.close()


@pytest.mark.asyncio
async def test_an_answer_over_the_limit_fails_alone_and_the_link_goes_on(served: Served) -> None:
    client = served.client(max_response_bytes=2048, connections=1)
    big = asyncio.ensure_future(client.request(*request('big 100000'), timeout=5))
    small = [client.request(*request(f'q{i}'), timeout=5) for i in range(20)]
    answers = await asyncio.gather(*small)
    with pytest.raises(AnswerTooLarge):
        await big
    assert all(meta['status'] == 200 for meta, _ in answers)
    meta, _ = await client.request(*request('after'), timeout=2)
    assert meta['status'] == 200
    assert len(client.links) == 1


@pytest.mark.asyncio
async def test_a_late_answer_times_out_without_breaking_the_link(served: Served) -> None:
    client = served.client(connections=1)
    with pytest.raises(asyncio.TimeoutError):
        await client.request(*request('sleep 0.5'), timeout=0.1)
    meta, body = await client.request(*request('next'), timeout=2)
    assert json.loads(body)['query'] == 'next'
    await asyncio.sleep(0.6)  # the late answer arrives for nobody
    meta, body = await client.request(*request('again'), timeout=2)
    assert json.loads(body)['query'] == 'again'
    assert not client.links[0].pending


@pytest.mark.asyncio
async def test_a_request_frame_over_the_limit_closes_that_connection(served: Served) -> None:
    client = served.client()
    with pytest.raises(LinkError) as raised:
        await client.request(*request('x' * 10000), timeout=2)
    assert raised.value.code == 'upstream_unavailable'
    meta, _ = await client.request(*request('small'), timeout=2)  # a new link
    assert meta['status'] == 200


@pytest.mark.asyncio
async def test_garbage_after_the_nul_byte_is_dropped(served: Served) -> None:
    reader, writer = await asyncio.open_connection('127.0.0.1', served.listener.port)
    writer.write(b'\0GET / HTTP/1.1\r\n\r\n')
    assert await asyncio.wait_for(reader.read(), 2) == b''
    writer.close()


@pytest.mark.asyncio
async def test_http_shares_the_port(served: Served) -> None:
    async with ClientSession() as session, session.get(served.listener.make_url('/healthz')) as response:
        assert response.status == 200
        assert (await response.json())['status'] == 'ok'


@pytest.mark.asyncio
async def test_too_many_requests_in_flight_on_one_link_get_503() -> None:
    listener = await serve(max_streams=2)
    client = LinkClient('127.0.0.1', listener.port, SECRET, connections=1)
    try:
        answers = await asyncio.gather(*(client.request(*request('sleep 0.2'), timeout=5) for _ in range(5)))
        statuses = sorted(meta['status'] for meta, _ in answers)
        assert statuses == [200, 200, 503, 503, 503]
    finally:
        await client.close()
        await listener.stop()


@pytest.mark.asyncio
async def test_stopping_lets_requests_in_flight_finish_and_says_goaway() -> None:
    listener = await serve()
    client = LinkClient('127.0.0.1', listener.port, SECRET, connections=1)
    try:
        slow = asyncio.ensure_future(client.request(*request('sleep 0.3'), timeout=5))
        await asyncio.sleep(0.1)
        await listener.stop()
        meta, _ = await slow
        assert meta['status'] == 200
        with pytest.raises(LinkError):
            await client.request(*request('after stop'), timeout=2)
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_the_client_reaches_every_worker_on_a_shared_port_and_takes_them_in_turn() -> None:
    first = await serve(worker=(0, 2), reuse_port=True)
    second = await serve(port=first.port, worker=(1, 2), reuse_port=True)
    client = LinkClient('127.0.0.1', first.port, SECRET, connections=1)
    try:
        workers = []
        for _ in range(40):
            _, body = await client.request(*request('worker'), timeout=2)
            workers.append(json.loads(body)['worker'])
        assert {link.worker for link in client.links} == {0, 1}
        assert len(client.links) <= 16
        assert workers[-10:].count(0) == workers[-10:].count(1) == 5, workers  # in turn, once both are reached
    finally:
        await client.close()
        await second.stop()
        await first.stop()
