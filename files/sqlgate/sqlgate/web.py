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
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from . import __version__
from .config import LOOPBACK, Network, ServerConfig
from .errors import ApiError
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Registry

REQUEST_ID_HEADER = 'X-Request-Id'
NODE_HEADER = 'X-Sqlgate-Node'
KIND_HEADER = 'X-Sqlgate-Kind'
# Set by the gatekeeper on its request to the trusted host, from the API key file; never from the client.
KEY_HEADER = 'X-Sqlgate-Key'
SCOPE_HEADER = 'X-Sqlgate-Scope'
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
Reload = Callable[[], object]


def valid_request_id(value: str | None) -> bool:
    return bool(value) and _REQUEST_ID.match(value) is not None  # type: ignore[arg-type]


def new_request_id() -> str:
    """32 random hex digits (as a UUID4's hex, without the cost of building one)."""
    return os.urandom(16).hex()


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


_second: list[object] = [None, '']


def _utc_now() -> str:
    """ISO 8601 UTC with milliseconds; the date and time of day are formatted once a second."""
    now = time.time()
    second = int(now)
    if _second[0] != second:
        _second[:] = [second, time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(second))]
    return f'{_second[1]}.{int((now - second) * 1000):03d}Z'


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
        self.write_line(line)
        if record.levelno >= logging.WARNING:
            self.wake.set()

    def write_line(self, line: str) -> None:
        """One line as it is (the access log's path: no log record is built for it)."""
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(line)

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
    # Called on SIGHUP (the gatekeeper rereads its API keys); None: SIGHUP only logs.
    reload: Reload | None = None
    # With several worker processes: every worker's metrics for /metrics (see sqlgate.workers).
    gather: Callable[[], Awaitable[str]] | None = None
    worker: int = 0  # this process among the service's worker processes
    workers: int = 1
    logger: logging.Logger = field(init=False)
    access_logger: logging.Logger = field(init=False)
    # Where access lines go straight to, skipping the logging module (set when the service runs with its own
    # log handler; tests that capture log records leave it unset).
    access_sink: Callable[[str], None] | None = None

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

    def monitoring_client(self, request: web.Request) -> bool:
        """Whether the peer may read /metrics and the full /healthz (loopback unless configured)."""
        allowed = self.server.metrics_allowed_clients
        return address_allowed(request.remote, LOOPBACK if allowed is None else allowed)

    def sighup(self) -> None:
        if self.reload is None:
            self.logger.info('SIGHUP: nothing to reload in the %s; restart it to apply a new configuration',
                             self.name)
            return
        try:
            self.reload()
        except Exception:
            self.logger.exception('SIGHUP: the reload failed')

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
        if self.access_sink is not None:
            self.access_sink(json.dumps(entry, separators=(',', ':'), default=str))
        else:
            self.access_logger.info('request', extra={'access': entry})


SERVICE = web.AppKey('sqlgate_service', Service)
# The query routes' handler (the link calls it too) and, on the trusted host and the proxy, the tier guard.
QUERY_HANDLER = web.AppKey('sqlgate_query_handler', object)
TIER_GUARD = web.AppKey('sqlgate_tier_guard', object)


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
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    started = time.perf_counter()
    request_id = service.request_id_for(request)
    request[REQUEST_ID] = request_id
    extra: dict[str, object] = {}
    request[LOG_FIELDS] = extra
    close = False
    try:
        response = await handler(request)
    except ApiError as exc:
        extra.update(exc.log)
        extra['error'] = exc.code
        response = error_response(exc.status, exc.code, exc.message, request_id, exc.headers)
        close = exc.close
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
    if close:
        await _send_and_close(request, response)
    return response


async def _send_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Send the answer, then close the connection at once instead of draining the rest of the body
    (aiohttp would read it for up to 10 s more): a slow sender holds nothing past its deadline."""
    response.force_close()
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.prepare(request)
        await response.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()


async def _healthz(request: web.Request) -> web.Response:
    """Everyone gets ``{"status"}`` and the HTTP status; monitoring clients the whole document."""
    service = request.app[SERVICE]
    if service.health is None:
        status, document = 200, {'status': 'ok', 'service': service.name}
    else:
        status, document = service.health()
    if not service.monitoring_client(request):
        document = {'status': document.get('status', 'ok' if status < 500 else 'down')}
    return json_response(document, status)


async def _metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if not service.monitoring_client(request):
        raise ApiError(403, 'client_not_allowed', 'metrics are only served to the configured clients')
    text = service.registry.render() if service.gather is None else await service.gather()
    return web.Response(body=text.encode('utf-8'), headers={'Content-Type': METRICS_CONTENT_TYPE})


# Services of this process that listen for SIGHUP (one in production, several in tests).
_SIGHUP_SERVICES: list[Service] = []


def _on_sighup() -> None:
    for service in list(_SIGHUP_SERVICES):
        service.sighup()


async def _listen_for_sighup(app: web.Application) -> None:
    """SIGHUP calls the service's reload (``systemctl reload``); only the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, 'SIGHUP'):
        return
    if not _SIGHUP_SERVICES:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _on_sighup)
        except (NotImplementedError, RuntimeError, ValueError):
            return
    _SIGHUP_SERVICES.append(app[SERVICE])


async def _stop_listening_for_sighup(app: web.Application) -> None:
    service = app[SERVICE]
    if service not in _SIGHUP_SERVICES:
        return
    _SIGHUP_SERVICES.remove(service)
    if not _SIGHUP_SERVICES:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


def create_app(service: Service, query_handler: Handler, extra_routes: Iterable[web.RouteDef] = ()) -> web.Application:
    """An application with the query routes (POST /direct, /random, /customized), /healthz, /metrics."""
    app = web.Application(middlewares=[request_middleware], client_max_size=service.server.max_body_bytes)
    app[SERVICE] = service
    app[QUERY_HANDLER] = query_handler
    app.router.add_routes([web.post(path, query_handler) for path in service.routes])
    app.router.add_routes([web.get('/healthz', _healthz), web.get('/metrics', _metrics), *extra_routes])
    app.on_startup.append(_listen_for_sighup)
    app.on_cleanup.append(_stop_listening_for_sighup)
    return app


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    """The request body, refusing oversized ones before reading them when their length is declared.

    The body must arrive within ``timeout`` seconds (default: the service's ``body_timeout``), else
    408 ``body_timeout`` and the connection is closed: a slow sender holds no more than that.
    """
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, 'payload_too_large', f'the request body is larger than {limit} bytes')
    if getattr(request, 'tier_authenticated', False):
        return await request.read()  # it came whole over the link: nothing to wait for
    if request.content.is_eof():
        return await request.read()  # all of it is here already (the usual small body): no timer needed
    if timeout is None:
        service = request.app.get(SERVICE)
        timeout = service.server.body_timeout if service is not None else None
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, 'payload_too_large', f'the request body is larger than {limit} bytes') from None
    except asyncio.TimeoutError:
        raise ApiError(408, 'body_timeout', f'the request body did not arrive within {timeout:g} s',
                       close=True) from None


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
    from .listener import Listener

    service = app[SERVICE]
    if hasattr(signal, 'SIGHUP'):
        # Until the application starts and listens for it, a reload must not kill the process.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    loop = new_event_loop(server.event_loop)
    asyncio.set_event_loop(loop)
    listener = Listener(app, server.host, server.port, ssl=server.ssl_context, reuse_port=server.reuse_port,
                        shutdown_timeout=server.shutdown_timeout)
    stopping = asyncio.Event()

    async def serve() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await listener.start()
        service.logger.info('sqlgate %s %s listening on %s://%s:%d (event loop: %s)', service.name, __version__,
                            'https' if server.ssl_context else 'http', server.host, listener.port,
                            type(loop).__module__.split('.')[0])
        await stopping.wait()
        service.logger.info('stopping: requests in flight get up to %g s', server.shutdown_timeout)
        await listener.stop()

    try:
        loop.run_until_complete(serve())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
