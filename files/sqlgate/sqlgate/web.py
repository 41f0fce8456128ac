# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""What the three services share: the aiohttp application, errors, request ids, logs, metrics, run.

Every response carries ``X-Request-Id``; every error is ``{"error": {"code", "message"},
"request_id"}``; every request produces exactly one JSON access-log line; an unexpected exception
becomes a 500 without details (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from . import __version__
from .config import Network, ServerConfig
from .errors import ApiError
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Registry

REQUEST_ID_HEADER = 'X-Request-Id'
NODE_HEADER = 'X-Sqlgate-Node'
KIND_HEADER = 'X-Sqlgate-Kind'
_REQUEST_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{7,63}$')
_HTTP_CODES = {
    400: ('bad_request', 'the request is malformed'),
    401: ('unauthorized', 'authentication is required'),
    403: ('forbidden', 'this request is not allowed'),
    404: ('not_found', 'there is no such endpoint'),
    405: ('method_not_allowed', 'this method is not allowed on this endpoint'),
    408: ('request_timeout', 'the request took too long to arrive'),
    413: ('payload_too_large', 'the request body is too large'),
    414: ('uri_too_long', 'the request URI is too long'),
    431: ('headers_too_large', 'the request headers are too large'),
}
ACCESS_LOGGER = 'sqlgate.access'
# Per-request storage: aiohttp >= 3.14 wants typed keys; older versions take strings.
_RequestKey = getattr(web, 'RequestKey', None)
REQUEST_ID: Any = _RequestKey('sqlgate_request_id', str) if _RequestKey else 'sqlgate_request_id'
LOG_FIELDS: Any = _RequestKey('sqlgate_log_fields', dict) if _RequestKey else 'sqlgate_log_fields'

HealthCheck = Callable[[], tuple[int, Mapping[str, object]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def valid_request_id(value: str | None) -> bool:
    return bool(value) and _REQUEST_ID.match(value) is not None  # type: ignore[arg-type]


def new_request_id() -> str:
    return uuid.uuid4().hex


def json_bytes(document: object) -> bytes:
    return json.dumps(document, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def json_response(document: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=json_bytes(document), status=status, content_type='application/json', headers=headers)


def error_document(code: str, message: str, request_id: str) -> dict[str, object]:
    return {'error': {'code': code, 'message': message}, 'request_id': request_id}


def error_response(
    status: int, code: str, message: str, request_id: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response(error_document(code, message, request_id), status, headers)


def address_allowed(remote: str | None, networks: Iterable[Network]) -> bool:
    """Whether the peer address lies in one of ``networks`` (IPv4-mapped IPv6 counts as IPv4)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split('%', 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='milliseconds').replace('+00:00', 'Z')


class JsonFormatter(logging.Formatter):
    """Access records are written as their dict; other records as a small JSON object."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, 'access', None)
        if isinstance(access, dict):
            return json.dumps(access, separators=(',', ':'), default=str)
        entry: dict[str, object] = {
            'ts': datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec='milliseconds').replace(
                '+00:00', 'Z'
            ),
            'service': self.service,
            'level': record.levelname.lower(),
            'logger': record.name,
            'message': record.getMessage(),
        }
        for key in ('request_id', 'node', 'error'):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry['exception'] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(',', ':'), default=str)


class BatchingHandler(logging.Handler):
    """Formats on the caller's thread; a background thread writes the lines in batches.

    Requests never wait for the journal: a line costs a deque append, and the writer thread wakes
    every ``interval`` seconds (at once for warnings and errors), so a busy service makes a few
    writes per second instead of one thread hand-off per line. If the output stalls, at most
    ``capacity`` lines wait in memory; older ones are dropped and the drop is reported.
    """

    def __init__(self, stream: Any, interval: float = 0.1, capacity: int = 100_000) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self.pending: deque[str] = deque(maxlen=capacity)
        self.dropped = 0
        self.wake = threading.Event()
        self.closing = False
        self.thread = threading.Thread(target=self._run, name='sqlgate-log', daemon=True)
        self.thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)
            return
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(line)
        if record.levelno >= logging.WARNING:
            self.wake.set()

    def _run(self) -> None:
        while not self.closing:
            self.wake.wait(self.interval)
            self.wake.clear()
            self.drain()

    def drain(self) -> None:
        lines = []
        with contextlib.suppress(IndexError):
            while True:
                lines.append(self.pending.popleft())
        if not lines:
            return
        dropped, self.dropped = self.dropped, 0
        if dropped:
            lines.insert(0, json.dumps({'ts': _utc_now(), 'level': 'warning', 'logger': 'sqlgate.log',
                                        'message': f'{dropped} log lines were dropped: the output is too slow'}))
        try:
            self.stream.write('\n'.join(lines) + '\n')
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stdout is gone; nothing sensible is left to do

    def close(self) -> None:
        self.closing = True
        self.wake.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(2)
        self.drain()
        super().close()


def setup_logging(service: str, level: str) -> BatchingHandler:
    """JSON lines on stdout for every logger (aiohttp's included), written in batches by a thread."""
    handler = BatchingHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    return handler


@dataclass
class Service:
    """One running service: its name, settings, metrics and health check."""

    name: str
    server: ServerConfig
    registry: Registry = field(default_factory=Registry)
    accept_request_id: bool = True
    health: HealthCheck | None = None
    routes: tuple[str, ...] = ()
    logger: logging.Logger = field(init=False)
    access_logger: logging.Logger = field(init=False)

    def __post_init__(self) -> None:
        self.logger = logging.getLogger(f'sqlgate.{self.name}')
        self.access_logger = logging.getLogger(ACCESS_LOGGER)
        self.registry.gauge('sqlgate_info', 'The service and its version.', ('service', 'version')).set(
            1, self.name, __version__
        )
        self.requests = self.registry.counter(
            'sqlgate_http_requests_total', 'HTTP requests answered, by path and status.', ('path', 'status')
        )
        self.durations = self.registry.histogram(
            'sqlgate_http_request_duration_seconds', 'Time to answer an HTTP request, by path.', ('path',)
        )

    def request_id_for(self, request: web.Request) -> str:
        offered = request.headers.get(REQUEST_ID_HEADER)
        if self.accept_request_id and valid_request_id(offered):
            return offered  # type: ignore[return-value]
        return new_request_id()

    def metric_path(self, request: web.Request) -> str:
        path = request.path
        if path in self.routes or path in ('/healthz', '/metrics', '/openapi.json'):
            return path
        return 'other'

    def finish(self, request: web.Request, status: int, started: float, extra: Mapping[str, object]) -> None:
        duration = time.perf_counter() - started
        path = self.metric_path(request)
        self.requests.inc(path, str(status))
        self.durations.observe(duration, path)
        if not self.access_logger.isEnabledFor(logging.INFO):
            return
        entry: dict[str, object] = {
            'ts': _utc_now(),
            'service': self.name,
            'request_id': request.get(REQUEST_ID),
            'method': request.method,
            'path': request.path[:256],
            'status': status,
            'duration_ms': round(duration * 1000, 3),
            'client': request.remote,
        }
        entry.update(extra)
        self.access_logger.info('request', extra={'access': entry})


SERVICE = web.AppKey('sqlgate_service', Service)


def _from_http_exception(exc: web.HTTPException, request_id: str) -> web.Response:
    code, message = _HTTP_CODES.get(exc.status, ('http_error', 'the request cannot be handled'))
    headers = {}
    if exc.status == 405:
        allowed = sorted(getattr(exc, 'allowed_methods', ()) or ())
        if allowed:
            headers['Allow'] = ', '.join(allowed)
            message = f'this endpoint only accepts {", ".join(allowed)}'
    if exc.status == 413:
        message = 'the request body is larger than this service accepts'
    return error_response(exc.status, code, message, request_id, headers)


@web.middleware
async def _request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    started = time.perf_counter()
    request_id = service.request_id_for(request)
    request[REQUEST_ID] = request_id
    extra: dict[str, object] = {}
    request[LOG_FIELDS] = extra
    try:
        response = await handler(request)
    except ApiError as exc:
        extra.update(exc.log)
        extra['error'] = exc.code
        response = error_response(exc.status, exc.code, exc.message, request_id, exc.headers)
    except web.HTTPException as exc:
        response = _from_http_exception(exc, request_id)
        extra['error'] = _HTTP_CODES.get(exc.status, ('http_error',))[0]
    except asyncio.CancelledError:
        raise
    except Exception:
        service.logger.exception('unhandled error', extra={'request_id': request_id})
        extra['error'] = 'internal_error'
        response = error_response(500, 'internal_error', 'the service failed to handle this request', request_id)
    response.headers[REQUEST_ID_HEADER] = request_id
    service.finish(request, response.status, started, extra)
    return response


async def _healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if service.health is None:
        return json_response({'status': 'ok', 'service': service.name})
    status, document = service.health()
    return json_response(document, status)


async def _metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    allowed = service.server.metrics_allowed_clients
    if allowed is not None and not address_allowed(request.remote, allowed):
        raise ApiError(403, 'client_not_allowed', 'metrics are only served to the configured clients')
    return web.Response(body=service.registry.render().encode('utf-8'), headers={'Content-Type': METRICS_CONTENT_TYPE})


def create_app(service: Service, query_handler: Handler, extra_routes: Iterable[web.RouteDef] = ()) -> web.Application:
    """An application with the query routes (POST /direct, /random, /customized), /healthz, /metrics."""
    app = web.Application(middlewares=[_request_middleware], client_max_size=service.server.max_body_bytes)
    app[SERVICE] = service
    app.router.add_routes([web.post(path, query_handler) for path in service.routes])
    app.router.add_routes([web.get('/healthz', _healthz), web.get('/metrics', _metrics), *extra_routes])
    return app


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing oversized ones before reading them when their length is declared."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, 'payload_too_large', f'the request body is larger than {limit} bytes')
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, 'payload_too_large', f'the request body is larger than {limit} bytes') from None


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """uvloop when asked for or, with 'auto', when installed (it roughly halves the loop's overhead)."""
    if choice != 'asyncio':
        try:
            import uvloop
        except ImportError:
            if choice == 'uvloop':
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(app: web.Application, server: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and let requests in flight finish."""
    service = app[SERVICE]
    loop = new_event_loop(server.event_loop)
    service.logger.info('sqlgate %s %s listening on %s://%s:%d (event loop: %s)', service.name, __version__,
                        'https' if server.ssl_context else 'http', server.host, server.port,
                        type(loop).__module__.split('.')[0])
    web.run_app(
        app,
        loop=loop,
        host=server.host,
        port=server.port,
        access_log=None,
        print=None,
        shutdown_timeout=server.shutdown_timeout,
        ssl_context=server.ssl_context,
        handle_signals=True,
    )
