# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The public gatekeeper: API keys, per-key rate limit, size and schema checks, then the trusted host.

It holds no database credentials and never looks inside the SQL: that is the trusted host's job.
The API keys file is reread on SIGHUP (``systemctl reload``): a revoked key is refused at once. The
costs a client can impose are bounded: the body must arrive within ``body_timeout``, a request
counts against ``max_in_flight`` and the key's ``max_in_flight`` only once its body is in, and the
trusted host's answer is read up to ``upstream.max_response_bytes``. A 5xx from behind is passed on
with its status and code but a fixed message: the original goes to the access log only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources

from aiohttp import web

from .auth import ApiKey, find_key_name, parse_api_keys, presented_key
from .config import ConfigError, GatekeeperConfig, RateLimit
from .errors import ApiError
from .ratelimit import retry_after_seconds
from .request import RequestLimits, parse_query_request
from .routing import ROUTES
from .shared import SharedLimits
from .upstream import Relayed, Upstream
from .web import (
    KEY_HEADER,
    KIND_HEADER,
    LOG_FIELDS,
    NODE_HEADER,
    REQUEST_ID,
    SCOPE_HEADER,
    Service,
    create_app,
    error_document,
    json_bytes,
    read_body,
)

# What a public client reads instead of a backend tier's own 5xx message (which may name nodes,
# hosts or settings): one fixed sentence per code, else per status.
GENERIC_MESSAGES = {
    500: 'a backend tier failed to handle this request; retry later and quote the request id',
    502: 'a backend tier failed; retry later and quote the request id',
    503: 'a backend tier cannot take this request right now; retry later',
    504: 'the request took too long in a backend tier',
}
GENERIC_CODE_MESSAGES = {
    'no_healthy_node': 'the database is not available right now; retry later',
    'pool_exhausted': 'every database connection is busy right now; retry shortly',
    'busy': 'too many large results are being read right now; retry shortly',
    'write_conflict': 'the statement conflicted with another write; retry it',
    'lock_wait_timeout': 'the statement waited too long for a row lock; retry it',
}
_GENERIC_FALLBACK = 'a backend tier failed; retry later and quote the request id'


def generic_message(status: int, code: str) -> str:
    """The fixed sentence a client gets for a backend tier's error ``code`` with ``status`` >= 500."""
    return GENERIC_CODE_MESSAGES.get(code) or GENERIC_MESSAGES.get(status, _GENERIC_FALLBACK)


def load_api_keys(config: GatekeeperConfig) -> dict[str, ApiKey]:
    try:
        text = config.api_keys_file.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config key 'api_keys_file': cannot read {config.api_keys_file}: {exc}") from None
    try:
        return parse_api_keys(text)
    except ValueError as exc:
        raise ConfigError(f"config key 'api_keys_file': {config.api_keys_file}: {exc}") from None


def openapi_document(limits: RequestLimits) -> bytes:
    """The packaged OpenAPI document with this deployment's request limits filled in."""
    document = json.loads(resources.files('sqlgate').joinpath('openapi.json').read_text(encoding='utf-8'))
    properties = document['components']['schemas']['QueryRequest']['properties']
    properties['query']['maxLength'] = limits.max_query_length
    properties['params']['maxItems'] = limits.max_params
    return json.dumps(document, indent=1).encode('utf-8')


class Gatekeeper:
    def __init__(self, config: GatekeeperConfig, clock: Callable[[], float] = time.monotonic,
                 limits: SharedLimits | None = None) -> None:
        self.config = config
        self.clock = clock
        # Shared with the other worker processes when there are several (see sqlgate.shared).
        self.shared = limits if limits is not None else SharedLimits()
        self.keys = load_api_keys(config)
        server = config.server
        self.limits = RequestLimits(server.max_query_length, server.max_params)
        self.service = Service(
            'gatekeeper', server, accept_request_id=config.accept_client_request_id,
            routes=tuple(f'/{route}' for route in ROUTES),
        )
        registry = self.service.registry
        self.auth_failures = registry.counter(
            'sqlgate_auth_failures_total', 'Requests refused for missing or unknown API keys.', ('reason',)
        )
        self.rate_limited = registry.counter(
            'sqlgate_rate_limited_total', 'Requests refused by the rate limit, by API key name.', ('api_key',)
        )
        self.concurrency_limited = registry.counter(
            'sqlgate_concurrency_limited_total',
            'Requests refused by the per-key concurrency limit, by API key name.', ('api_key',)
        )
        self.key_reloads = registry.counter(
            'sqlgate_api_key_reloads_total', 'Rereadings of the API keys file, by outcome (ok, failed).', ('outcome',)
        )
        registry.gauge('sqlgate_api_keys', 'API keys in use.', callback=lambda: [((), float(len(self.keys)))])
        registry.gauge('sqlgate_in_flight_requests', 'Requests being forwarded right now (all workers).',
                       callback=lambda: [((), float(self.shared.in_flight()))])
        self.upstream = Upstream(config.upstream, 'trusted host', registry)
        self.openapi = openapi_document(self.limits)
        self.service.reload = self.reload_keys

    def reload_keys(self) -> bool:
        """Reread the API keys file (SIGHUP). A file that does not parse changes nothing.

        Keys no longer listed are refused from now on and their rate-limit and concurrency state
        is dropped. The log says how many keys there are, never what they are.
        """
        logger = self.service.logger
        try:
            keys = load_api_keys(self.config)
        except ConfigError as exc:
            self.key_reloads.inc('failed')
            logger.error('API keys not reloaded, the %d keys in use stay: %s', len(self.keys), exc)
            return False
        revoked = set(self.keys) - set(keys)
        for name in revoked:
            self.shared.forget(name)
        self.keys = keys
        self.key_reloads.inc('ok')
        logger.info('API keys reloaded: %d keys, %d revoked', len(keys), len(revoked))
        return True

    def authenticate(self, request: web.Request) -> str:
        key = presented_key(request.headers)
        if key is None:
            self.auth_failures.inc('missing')
            raise ApiError(401, 'missing_credentials', 'send an API key as "Authorization: Bearer <key>"',
                           headers={'WWW-Authenticate': 'Bearer'})
        name = find_key_name(key, self.keys)
        if name is None:
            self.auth_failures.inc('invalid')
            raise ApiError(
                401, 'invalid_credentials', 'the API key is not valid', headers={'WWW-Authenticate': 'Bearer'}
            )
        return name

    def limit_for(self, name: str) -> RateLimit:
        return self.config.rate_limit_per_key.get(name, self.config.rate_limit)

    def acquire(self, name: str) -> None:
        """Count one forwarded request of key ``name``, or refuse it (429 for the key, 503 for all)."""
        full = self.shared.acquire(name, self.limit_for(name).max_in_flight, self.config.max_in_flight)
        if full == 'key':
            self.concurrency_limited.inc(name)
            raise ApiError(429, 'too_many_concurrent',
                           'this API key has too many requests in progress; wait for one to finish',
                           headers={'Retry-After': '1'})
        if full == 'total':
            raise ApiError(503, 'overloaded', 'the gatekeeper is at its concurrency limit; retry shortly',
                           headers={'Retry-After': '1'})

    def release(self, name: str) -> None:
        self.shared.release(name)

    def check_rate(self, name: str) -> None:
        limit = self.limit_for(name)
        wait = self.shared.take(name, limit.rate, limit.burst, self.clock())
        if wait > 0:
            self.rate_limited.inc(name)
            seconds = retry_after_seconds(wait)
            raise ApiError(429, 'rate_limited', f'too many requests for this API key; retry in {seconds} s',
                           headers={'Retry-After': str(seconds)})

    async def handle_query(self, request: web.Request) -> web.Response:
        log = request[LOG_FIELDS]
        route = request.path[1:]
        log['route'] = route
        name = self.authenticate(request)
        log['api_key'] = name
        self.check_rate(name)
        server = self.config.server
        # The body is read before the request counts as in flight: slow senders hold no slot.
        body = await read_body(request, server.max_body_bytes, server.body_timeout)
        key = self.keys.get(name)
        if key is None:  # revoked while its body was arriving
            self.auth_failures.inc('invalid')
            raise ApiError(
                401, 'invalid_credentials', 'the API key is not valid', headers={'WWW-Authenticate': 'Bearer'}
            )
        parse_query_request(body, request.content_type, self.limits)
        self.acquire(name)
        try:
            relayed = await self.upstream.post(
                request.path, body, request[REQUEST_ID], headers={KEY_HEADER: name, SCOPE_HEADER: key.scope}
            )
        finally:
            self.release(name)
        return self.relay(request, relayed)

    def relay(self, request: web.Request, relayed: Relayed) -> web.Response:
        """The trusted host's answer for the client: as it is, except a 5xx's message."""
        log = request[LOG_FIELDS]
        headers = dict(relayed.headers)
        if NODE_HEADER in headers:
            log['node'] = headers[NODE_HEADER]
        if KIND_HEADER in headers:
            log['kind'] = headers[KIND_HEADER]
        body = relayed.body
        if relayed.error_code:
            log['error'] = relayed.error_code
            if relayed.status == 403:
                log['reason'] = relayed.error_message
            if relayed.status >= 500:
                log['upstream_message'] = relayed.error_message
                body = json_bytes(error_document(
                    relayed.error_code, generic_message(relayed.status, relayed.error_code), request[REQUEST_ID]))
        return web.Response(status=relayed.status, body=body, content_type='application/json', headers=headers)

    async def handle_openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type='application/json')

    async def on_startup(self, app: web.Application) -> None:
        await self.upstream.start()

    async def on_cleanup(self, app: web.Application) -> None:
        await self.upstream.close()


GATEKEEPER = web.AppKey('sqlgate_gatekeeper', Gatekeeper)


def create_gatekeeper_app(config: GatekeeperConfig, clock: Callable[[], float] = time.monotonic,
                          limits: SharedLimits | None = None) -> web.Application:
    gatekeeper = Gatekeeper(config, clock, limits)
    app = create_app(gatekeeper.service, gatekeeper.handle_query, [web.get('/openapi.json', gatekeeper.handle_openapi)])
    app[GATEKEEPER] = gatekeeper
    app.on_startup.append(gatekeeper.on_startup)
    app.on_cleanup.append(gatekeeper.on_cleanup)
    return app
