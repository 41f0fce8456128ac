# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The link between tiers: one persistent, authenticated TCP connection that carries many requests at once.

HTTP between tiers costs more CPU than the work it carries (an aiohttp client and server spend about
150 us per request and hop). The link frames each request and answer on a connection opened once, so
a hop costs a few microseconds a side. It shares its port with the tier's HTTP server: a connection
whose first byte is NUL is a link (no HTTP request starts with one), anything else goes to aiohttp.

Wire format, every integer big-endian::

    preface    b'\\0SQLGATE-LINK/1\\n' from the client
    frame      length u32 (of what follows the header) | type u8 | stream u32 | payload
    HELLO      server -> client: 32-byte nonce
    AUTH       client -> server: 32-byte nonce | HMAC-SHA256(secret, 'client' | server nonce | client nonce)
    WELCOME    server -> client: HMAC-SHA256(secret, 'server' | client nonce | server nonce) | worker u16 |
               workers u16 (which of the server's worker processes took the connection, and how many there are)
    REFUSE     server -> client: JSON {"code", "message"}, then the server closes
    REQUEST    client -> server: meta length u16 | JSON meta | body
    RESPONSE   server -> client: meta length u16 | JSON meta | body
    GOAWAY     server -> client: no new requests on this connection (the server is stopping)

Both sides prove they hold the tier secret, so neither talks to an impostor; the secret never crosses
the wire. The server also checks the peer's address against its allowed clients before saying HELLO.
Every resource is bounded: the handshake's time, a frame's size (a larger request closes the
connection; a larger answer is skipped and that request alone fails), the requests in flight on one
connection, and each request's time on the client.

A server with several worker processes on one port says in WELCOME which one answered: the client opens
links until it holds one to every worker (the kernel spreads connections by a hash, not evenly) and
takes the workers in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

PREFACE = b'\0SQLGATE-LINK/1\n'
HELLO, AUTH, WELCOME, REFUSE, REQUEST, RESPONSE, GOAWAY = range(1, 8)
_HEADER = struct.Struct('!IBI')
_META = struct.Struct('!H')
_WORKER = struct.Struct('!HH')
NONCE_BYTES = 32
MAX_META_BYTES = 4096
_CLIENT_PROOF = b'sqlgate-link/1 client'
_SERVER_PROOF = b'sqlgate-link/1 server'

logger = logging.getLogger('sqlgate.link')


class LinkError(Exception):
    """The link broke or could not be set up; ``code`` says how (for the caller's 502/504)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AnswerTooLarge(LinkError):
    def __init__(self, size: int) -> None:
        super().__init__('upstream_response_too_large', f'an answer of {size} bytes')
        self.size = size


def proof(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(secret, label + first + second, hashlib.sha256).digest()


def frame(kind: int, stream: int, payload: bytes = b'') -> bytes:
    return _HEADER.pack(len(payload), kind, stream) + payload


def message(kind: int, stream: int, meta: dict[str, Any], body: bytes) -> bytes:
    encoded = json.dumps(meta, separators=(',', ':')).encode('utf-8')
    payload_length = _META.size + len(encoded) + len(body)
    return b''.join((_HEADER.pack(payload_length, kind, stream), _META.pack(len(encoded)), encoded, body))


def split_message(payload: bytes) -> tuple[dict[str, Any], bytes]:
    if len(payload) < _META.size:
        raise ValueError('a message shorter than its meta length')
    (length,) = _META.unpack_from(payload)
    if length > MAX_META_BYTES or _META.size + length > len(payload):
        raise ValueError('a meta length beyond the message')
    meta = json.loads(payload[_META.size:_META.size + length])
    if not isinstance(meta, dict):
        raise ValueError('meta is not a JSON object')
    return meta, payload[_META.size + length:]


class _Writer:
    """Frames written in one turn of the event loop leave in one system call (many requests in flight
    share the cost of a write); a lone frame waits for nothing but the end of the current turn."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(data)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if pending and not self.transport.is_closing():
            self.transport.write(b''.join(pending))


class _Framer:
    """Splits a byte stream into frames; a frame over ``limit`` bytes is skipped and reported."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.skipping = 0  # bytes of an oversized frame still to drop

    def feed(self, data: bytes) -> Iterable[tuple[int, int, bytes | int]]:
        """(type, stream, payload) per whole frame; (type, stream, size) for an oversized one, once."""
        if self.skipping:
            dropped = min(self.skipping, len(data))
            self.skipping -= dropped
            data = data[dropped:]
        self.buffer += data
        buffer = self.buffer
        offset = 0
        while len(buffer) - offset >= _HEADER.size:
            length, kind, stream = _HEADER.unpack_from(buffer, offset)
            if length > self.limit:
                available = len(buffer) - offset - _HEADER.size
                self.skipping = max(0, length - available)
                offset = min(len(buffer), offset + _HEADER.size + length)
                yield kind, stream, length
                continue
            end = offset + _HEADER.size + length
            if end > len(buffer):
                break
            yield kind, stream, bytes(buffer[offset + _HEADER.size:end])
            offset = end
        del buffer[:offset]


# -- the server side -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkRequest:
    stream: int
    meta: dict[str, Any]
    body: bytes
    peer: str


@dataclass(frozen=True)
class LinkReply:
    status: int
    headers: dict[str, str]
    body: bytes


LinkHandler = Callable[[LinkRequest], Awaitable[LinkReply]]


@dataclass(frozen=True)
class LinkServerSettings:
    secret: bytes
    allowed: Callable[[str | None], bool]  # whether a peer address may connect
    handler: LinkHandler
    max_request_bytes: int
    max_streams: int = 1024
    handshake_timeout: float = 5.0
    worker: int = 0  # this process among the server's workers
    workers: int = 1


class LinkServerProtocol(asyncio.Protocol):
    """One client tier's connection: handshake, then requests handled concurrently as tasks."""

    def __init__(self, settings: LinkServerSettings, connections: set[LinkServerProtocol]) -> None:
        self.settings = settings
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.nonce = secrets.token_bytes(NONCE_BYTES)
        self.preface = b''
        self.authenticated = False
        self.framer = _Framer(settings.max_request_bytes + MAX_META_BYTES + _META.size)
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.timer: asyncio.TimerHandle | None = None
        self.writer: _Writer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info('peername')
        self.peer = peer[0] if isinstance(peer, tuple) else None
        self.connections.add(self)
        if not self.settings.allowed(self.peer):
            self.refuse('client_not_allowed', 'this service only accepts requests from its configured clients')
            return
        self.timer = asyncio.get_running_loop().call_later(self.settings.handshake_timeout, self._handshake_late)

    def _handshake_late(self) -> None:
        if not self.authenticated and self.transport is not None:
            logger.warning('a link client at %s did not finish its handshake in time', self.peer)
            self.transport.abort()

    def refuse(self, code: str, text: str) -> None:
        logger.warning('link from %s refused: %s', self.peer, code, extra={'error': code})
        assert self.transport is not None
        self.transport.write(frame(REFUSE, 0, json.dumps({'code': code, 'message': text}).encode()))
        self.transport.close()
        self.closing = True

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if len(self.preface) < len(PREFACE):
            needed = len(PREFACE) - len(self.preface)
            self.preface += data[:needed]
            data = data[needed:]
            if not PREFACE.startswith(self.preface):
                assert self.transport is not None
                self.transport.abort()
                return
            if len(self.preface) < len(PREFACE):
                return
            assert self.transport is not None
            self.transport.write(frame(HELLO, 0, self.nonce))
        for kind, stream, payload in self.framer.feed(data):
            if isinstance(payload, int):
                logger.warning('link from %s sent a frame of %d bytes, over the limit; closing', self.peer, payload)
                self._abort()
                return
            if not self.authenticated:
                self._authenticate(kind, payload)
            elif kind == REQUEST:
                self._request(stream, payload)
            else:
                self._abort()
            if self.closing:
                return

    def _authenticate(self, kind: int, payload: bytes) -> None:
        if kind != AUTH or len(payload) != 2 * NONCE_BYTES:
            self._abort()
            return
        client_nonce, presented = payload[:NONCE_BYTES], payload[NONCE_BYTES:]
        expected = proof(self.settings.secret, _CLIENT_PROOF, self.nonce, client_nonce)
        if not hmac.compare_digest(presented, expected):
            self.refuse('tier_auth_failed', 'the tier secret is missing or wrong')
            return
        self.authenticated = True
        if self.timer is not None:
            self.timer.cancel()
        assert self.transport is not None
        settings = self.settings
        self.transport.write(frame(WELCOME, 0, proof(settings.secret, _SERVER_PROOF, client_nonce, self.nonce)
                                   + _WORKER.pack(settings.worker, settings.workers)))

    def _request(self, stream: int, payload: bytes) -> None:
        try:
            meta, body = split_message(payload)
        except (ValueError, UnicodeDecodeError):
            self._abort()
            return
        if len(self.tasks) >= self.settings.max_streams:
            self._send(stream, LinkReply(503, {'Retry-After': '1'}, json.dumps(
                {'error': {'code': 'overloaded', 'message': 'too many requests in flight on this link'},
                 'request_id': str(meta.get('rid', ''))}).encode()))
            return
        task = asyncio.ensure_future(self._run(LinkRequest(stream, meta, body, self.peer or '')))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, request: LinkRequest) -> None:
        try:
            reply = await self.settings.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:  # the handler answers errors itself; this is a bug
            logger.exception('the link handler failed')
            reply = LinkReply(500, {}, json.dumps({'error': {'code': 'internal_error', 'message':
                                                   'the service failed to handle this request'}}).encode())
        self._send(request.stream, reply)

    def _send(self, stream: int, reply: LinkReply) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if self.writer is None:
                self.writer = _Writer(self.transport)
            self.writer.write(message(RESPONSE, stream, {'status': reply.status, 'headers': reply.headers},
                                      reply.body))

    def _abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Send what is written, then close."""
        if self.writer is not None:
            self.writer.flush()
        if self.transport is not None:
            self.transport.close()

    def goaway(self) -> None:
        """No new requests; those in flight still get their answers."""
        if self.transport is not None and self.authenticated and not self.transport.is_closing():
            self.transport.write(frame(GOAWAY, 0))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None


# -- the client side -------------------------------------------------------------------------------
class _ClientConnection(asyncio.Protocol):
    def __init__(self, client: LinkClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.framer = _Framer(client.max_response_bytes + MAX_META_BYTES + _META.size)
        self.nonce = secrets.token_bytes(NONCE_BYTES)
        self.server_nonce = b''  # from HELLO
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self.next_stream = 1
        self.draining = False  # GOAWAY received: no new requests here
        self.worker = 0  # which of the server's workers holds this link, of how many
        self.workers = 1
        self.writer: _Writer | None = None

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.draining

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(PREFACE)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        for kind, stream, payload in self.framer.feed(data):
            if isinstance(payload, int):
                future = self.pending.pop(stream, None)
                if future is not None and not future.done():
                    future.set_exception(AnswerTooLarge(payload))
                continue
            if kind == RESPONSE:
                future = self.pending.pop(stream, None)
                if future is None or future.done():
                    continue  # its caller gave up (timeout)
                try:
                    future.set_result(split_message(payload))
                except (ValueError, UnicodeDecodeError):
                    future.set_exception(LinkError('bad_upstream_response', 'a malformed answer'))
            elif kind == HELLO and not self.ready.done() and len(payload) == NONCE_BYTES:
                self.server_nonce = payload
                assert self.transport is not None
                self.transport.write(frame(AUTH, 0, self.nonce + proof(self.client.secret, _CLIENT_PROOF, payload,
                                                                       self.nonce)))
            elif kind == WELCOME and not self.ready.done():
                expected = proof(self.client.secret, _SERVER_PROOF, self.nonce, self.server_nonce)
                if len(payload) == len(expected) + _WORKER.size and hmac.compare_digest(payload[:len(expected)],
                                                                                        expected):
                    self.worker, self.workers = _WORKER.unpack_from(payload, len(expected))
                    self.ready.set_result(None)
                else:
                    self._fail(LinkError('upstream_refused', 'the server does not hold the tier secret'))
            elif kind == REFUSE:
                try:
                    code = str(json.loads(payload).get('code', 'refused'))
                except (ValueError, AttributeError):
                    code = 'refused'
                self._fail(LinkError('upstream_refused', f'the server refused the link ({code})'))
            elif kind == GOAWAY:
                self.draining = True
            else:
                self._fail(LinkError('bad_upstream_response', f'an unexpected frame of type {kind}'))

    def _fail(self, error: LinkError) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(error)
        self.pending.clear()
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(LinkError('upstream_unavailable', 'the connection was lost'))
        self.client.forget(self)

    def send(self, meta: dict[str, Any], body: bytes) -> asyncio.Future[tuple[dict[str, Any], bytes]]:
        stream = self.next_stream
        self.next_stream = stream + 1 if stream < 0xFFFFFFFF else 1
        future: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
        self.pending[stream] = future
        if self.writer is None:
            assert self.transport is not None
            self.writer = _Writer(self.transport)
        self.writer.write(message(REQUEST, stream, meta, body))
        return future

    def forget_stream(self, future: asyncio.Future[Any]) -> None:
        for stream, pending in list(self.pending.items()):
            if pending is future:
                del self.pending[stream]
                return


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


class LinkClient:
    """Requests to one upstream tier over up to ``connections`` links, opened when first needed."""

    def __init__(self, host: str, port: int, secret: bytes, *, connections: int = 1, connect_timeout: float = 3.0,
                 max_response_bytes: int = 8 * 1024 * 1024, ssl: Any = None) -> None:
        self.host = host
        self.port = port
        self.secret = secret
        self.size = connections
        self.connect_timeout = connect_timeout
        self.max_response_bytes = max_response_bytes
        self.ssl = ssl
        self.links: list[_ClientConnection] = []
        self.opening: asyncio.Future[_ClientConnection] | None = None
        self.turn = 0

    def forget(self, link: _ClientConnection) -> None:
        with contextlib.suppress(ValueError):
            self.links.remove(link)

    async def _open(self) -> _ClientConnection:
        loop = asyncio.get_running_loop()
        try:
            _, link = await asyncio.wait_for(
                loop.create_connection(lambda: _ClientConnection(self), self.host, self.port, ssl=self.ssl),
                self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise LinkError('upstream_unavailable', f'cannot connect: {exc.__class__.__name__}') from None
        try:
            await asyncio.wait_for(asyncio.shield(link.ready), self.connect_timeout)
        except asyncio.TimeoutError:
            if link.transport is not None:
                link.transport.abort()
            raise LinkError('upstream_unavailable', 'the handshake did not finish in time') from None
        self.links.append(link)
        return link

    async def _link(self) -> _ClientConnection:
        usable = [link for link in self.links if link.usable]
        if usable:
            workers = max(link.workers for link in usable)
            reached = {link.worker for link in usable}
            # More links while some worker has none (up to 8 a worker: the kernel places them by a hash).
            wanted = len(usable) < self.size or (len(reached) < workers and len(usable) < 8 * workers)
            if wanted and self.opening is None:
                self.opening = asyncio.ensure_future(self._open())
                self.opening.add_done_callback(self._opened)
            self.turn += 1
            worker = sorted(reached)[self.turn % len(reached)]
            choices = [link for link in usable if link.worker == worker]
            return choices[(self.turn // len(reached)) % len(choices)]
        if self.opening is None:
            self.opening = asyncio.ensure_future(self._open())
            self.opening.add_done_callback(self._opened)
        return await asyncio.shield(self.opening)

    def _opened(self, future: asyncio.Future[_ClientConnection]) -> None:
        self.opening = None
        if not future.cancelled():
            future.exception()  # retrieved: the waiters got it

    async def request(self, meta: dict[str, Any], body: bytes, timeout: float) -> tuple[dict[str, Any], bytes]:
        """The answer's (meta, body); LinkError, AnswerTooLarge or asyncio.TimeoutError otherwise."""
        link = await self._link()
        future = link.send(meta, body)
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
        try:
            return await future
        except BaseException:
            link.forget_stream(future)
            raise
        finally:
            timer.cancel()

    async def close(self) -> None:
        for link in list(self.links):
            if link.transport is not None:
                link.transport.close()
        self.links.clear()
        if self.opening is not None:
            self.opening.cancel()
