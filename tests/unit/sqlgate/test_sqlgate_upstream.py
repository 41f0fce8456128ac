# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The hop to the next tier: the headers it sends, and the bound on the answer it reads."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from sqlgate.config import UpstreamConfig
from sqlgate.errors import ApiError
from sqlgate.metrics import Registry
from sqlgate.upstream import Upstream

pytestmark = pytest.mark.asyncio
SECRET = b'tier-secret-' + b's' * 24
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Next:
    """The next tier, answering with whatever handler the test sets."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.seen: list[Any] = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.headers.copy())
        await request.read()
        assert self.handler is not None
        return await self.handler(request)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route('*', '/{tail:.*}', self.handle)
        self.server = TestServer(app, host='127.0.0.1')
        await self.server.start_server()
        return str(self.server.make_url('')).rstrip('/')


@pytest_asyncio.fixture
async def hop() -> AsyncIterator[tuple[Next, Callable[..., Awaitable[Upstream]]]]:
    following = Next()
    url = await following.start()
    upstreams: list[Upstream] = []

    async def make(max_response_bytes: int = 8 * 1024 * 1024, timeout: float = 3.0) -> Upstream:
        config = UpstreamConfig(url=url, secret=SECRET, timeout=timeout, connect_timeout=1.0, max_connections=4,
                                max_response_bytes=max_response_bytes)
        upstream = Upstream(config, 'trusted host', Registry())
        await upstream.start()
        upstreams.append(upstream)
        return upstream

    yield following, make
    for upstream in upstreams:
        await upstream.close()
    assert following.server is not None
    await following.server.close()


def json_answer(document: object, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(document, status=status)
    return handler


async def test_extra_headers_are_added_but_cannot_replace_the_hops_own(hop):
    following, make = hop
    following.handler = json_answer({'ok': True})
    upstream = await make()
    relayed = await upstream.post('/direct', b'{}', 'req-00000001', headers={
        'X-Sqlgate-Key': 'alice', 'X-Sqlgate-Scope': 'reporting',
        'X-Sqlgate-Secret': 'forged', 'X-Request-Id': 'forged-0000', 'Content-Type': 'text/plain'})
    assert relayed.status == 200 and json.loads(relayed.body) == {'ok': True}
    seen = following.seen[0]
    assert seen['X-Sqlgate-Key'] == 'alice' and seen['X-Sqlgate-Scope'] == 'reporting'
    assert seen.getall('X-Sqlgate-Secret') == [SECRET.decode()]
    assert seen.getall('X-Request-Id') == ['req-00000001']
    assert seen['Content-Type'] == 'application/json'
    await upstream.post('/direct', b'{}', 'req-00000002')  # without extra headers: only the hop's own
    assert 'X-Sqlgate-Key' not in following.seen[1]


async def test_an_answer_up_to_the_cap_is_read_whole(hop):
    following, make = hop
    document = {'rows': ['x' * 3000]}
    size = len(json.dumps(document))
    following.handler = json_answer(document)
    upstream = await make(max_response_bytes=size)
    assert json.loads((await upstream.post('/direct', b'{}', 'r-000000001')).body) == document


async def test_a_declared_length_over_the_cap_is_refused_without_reading_it(hop, caplog):
    following, make = hop

    async def huge_and_slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={'Content-Type': 'application/json'})
        response.content_length = 10 * 1024 * 1024
        await response.prepare(request)
        await response.write(b'{"rows": [' + b' ' * 1000)
        await asyncio.sleep(5)  # reading the body would time out
        return response

    following.handler = huge_and_slow
    upstream = await make(max_response_bytes=65536, timeout=3.0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger='sqlgate.upstream'), pytest.raises(ApiError) as caught:
        await upstream.post('/direct', b'{}', 'r-000000001')
    assert time.monotonic() - started < 2
    assert (caught.value.status, caught.value.code) == (502, 'upstream_response_too_large')
    assert 'upstream' not in caught.value.message and '65536' not in caught.value.message
    assert upstream.errors.get('upstream_response_too_large') == 1
    assert [record.error for record in caplog.records] == ['upstream_response_too_large']  # type: ignore[attr-defined]


async def test_an_undeclared_length_is_cut_at_the_cap(hop):
    following, make = hop

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={'Content-Type': 'application/json'})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b' ' * 16384)
        await response.write_eof()
        return response

    following.handler = streamed
    upstream = await make(max_response_bytes=100_000)
    with pytest.raises(ApiError) as caught:
        await upstream.post('/direct', b'{}', 'r-000000001')
    assert caught.value.code == 'upstream_response_too_large'


async def test_the_cap_counts_decompressed_bytes(hop):
    following, make = hop
    inflated = json.dumps({'rows': ['x' * 1_000_000]}).encode()

    async def compressed(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(inflated), content_type='application/json',
                            headers={'Content-Encoding': 'gzip'})

    following.handler = compressed
    upstream = await make(max_response_bytes=65536)
    with pytest.raises(ApiError) as caught:
        await upstream.post('/direct', b'{}', 'r-000000001')
    assert caught.value.code == 'upstream_response_too_large'
    upstream = await make()
    assert (await upstream.post('/direct', b'{}', 'r-000000002')).body == inflated


async def test_errors_are_parsed_and_retry_after_relayed(hop):
    following, make = hop

    async def busy(request: web.Request) -> web.Response:
        return web.json_response({'error': {'code': 'pool_exhausted', 'message': 'busy'}, 'request_id': 'r'},
                                 status=503, headers={'Retry-After': '1', 'X-Other': 'x'})

    following.handler = busy
    upstream = await make()
    relayed = await upstream.post('/direct', b'{}', 'r-000000001')
    assert (relayed.status, relayed.error_code, relayed.error_message) == (503, 'pool_exhausted', 'busy')
    assert relayed.headers == {'Retry-After': '1'}
