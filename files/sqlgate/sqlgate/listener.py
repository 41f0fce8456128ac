# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""One listening port for HTTP and the link: the first byte of a connection says which it is.

A link request goes through the same middleware and handler as an HTTP one (same checks, same errors,
one access-log line each), as a :class:`LinkedRequest` that offers the few things of an aiohttp request
they use. The listener binds with ``SO_REUSEPORT`` when asked, so several processes can share a port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .errors import ApiError
from .link import LinkReply, LinkRequest, LinkServerProtocol, LinkServerSettings
from .web import (
    KEY_HEADER,
    KIND_HEADER,
    NODE_HEADER,
    QUERY_HANDLER,
    REQUEST_ID_HEADER,
    SCOPE_HEADER,
    SERVICE,
    TIER_GUARD,
    request_middleware,
)

_REPLY_HEADERS = (NODE_HEADER, KIND_HEADER, 'Retry-After', REQUEST_ID_HEADER)
SNIFF_TIMEOUT = 10.0  # seconds a new connection may stay silent


class LinkedRequest(dict):  # type: ignore[type-arg]
    """What the middleware and the query handlers read of a request, for one that came over the link."""

    method = 'POST'
    content_type = 'application/json'
    protocol = None
    # The link's handshake proved the tier secret and the peer's address was checked: TierGuard passes.
    tier_authenticated = True

    def __init__(self, app: web.Application, request: LinkRequest) -> None:
        super().__init__()
        meta = request.meta
        self.app = app
        self.path = str(meta.get('path', ''))
        self.remote = request.peer
        self.body = request.body
        self.content_length = len(request.body)
        self.headers = {REQUEST_ID_HEADER: str(meta.get('rid', '')), KEY_HEADER: str(meta.get('key', '')),
                        SCOPE_HEADER: str(meta.get('scope', ''))}

    async def read(self) -> bytes:
        return self.body


def link_handler(app: web.Application) -> Callable[[LinkRequest], Any]:
    service = app[SERVICE]
    handler = app[QUERY_HANDLER]

    async def missing(request: LinkedRequest) -> web.Response:
        raise ApiError(404, 'not_found', 'there is no such endpoint')

    async def handle(request: LinkRequest) -> LinkReply:
        linked = LinkedRequest(app, request)
        target = handler if linked.path in service.routes else missing
        response = await request_middleware(linked, target)  # type: ignore[arg-type]
        headers = {name: response.headers[name] for name in _REPLY_HEADERS if name in response.headers}
        return LinkReply(response.status, headers, response.body)  # type: ignore[arg-type]

    return handle


class _Sniffer(asyncio.Protocol):
    """Reads the first byte, then hands the connection to the link or to aiohttp."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.timer = asyncio.get_running_loop().call_later(SNIFF_TIMEOUT, transport.abort)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.timer is not None:
            self.timer.cancel()
        assert self.transport is not None
        protocol: asyncio.Protocol
        if data[:1] == b'\0' and self.listener.link is not None:
            protocol = LinkServerProtocol(self.listener.link, self.listener.links)
        else:
            protocol = self.listener.runner.server()  # type: ignore[assignment,misc]
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


class Listener:
    """Serves ``app`` over HTTP and, when it has a tier guard, over the link, on one port."""

    def __init__(self, app: web.Application, host: str, port: int, *, ssl: Any = None, reuse_port: bool = False,
                 shutdown_timeout: float = 10.0, max_streams: int = 1024) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl = ssl
        self.reuse_port = reuse_port
        self.shutdown_timeout = shutdown_timeout
        self.max_streams = max_streams
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout)
        self.server: asyncio.AbstractServer | None = None
        self.link: LinkServerSettings | None = None
        self.links: set[LinkServerProtocol] = set()

    async def start(self) -> int:
        """Start serving; the port bound (useful with port 0)."""
        await self.runner.setup()
        guard = self.app.get(TIER_GUARD)
        if guard is not None:
            self.link = LinkServerSettings(
                secret=guard.secret, allowed=guard.address_allowed, handler=link_handler(self.app),
                max_request_bytes=self.app[SERVICE].server.max_body_bytes, max_streams=self.max_streams,
                worker=self.app[SERVICE].worker, workers=self.app[SERVICE].workers)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _Sniffer(self), self.host, self.port, ssl=self.ssl, reuse_port=self.reuse_port or None,
            backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def make_url(self, path: str = '') -> str:
        host = f'[{self.host}]' if ':' in self.host else self.host
        return f'http://{host}:{self.port}{path}'

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to the shutdown timeout), run the cleanup hooks."""
        if self.server is not None:
            self.server.close()
        for link in list(self.links):
            link.goaway()
        deadline = asyncio.get_running_loop().time() + self.shutdown_timeout
        while any(link.tasks for link in self.links) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for link in list(self.links):
            link.close()
        await self.runner.cleanup()
