# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The public gatekeeper: API keys, per-key rate limit, size and schema checks, then the trusted host.

It holds no database credentials and never looks inside the SQL: that is the trusted host's job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources

from aiohttp import web

from .auth import find_key_name, parse_api_keys, presented_key
from .config import ConfigError, GatekeeperConfig, RateLimit
from .errors import ApiError
from .ratelimit import TokenBucket, retry_after_seconds
from .request import RequestLimits, parse_query_request
from .routing import ROUTES
from .upstream import Upstream
from .web import KIND_HEADER, LOG_FIELDS, NODE_HEADER, REQUEST_ID, Service, create_app, read_body


def load_api_keys(config: GatekeeperConfig) -> dict[str, bytes]:
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
    def __init__(self, config: GatekeeperConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
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
        self.in_flight = 0
        registry.gauge('sqlgate_in_flight_requests', 'Requests being forwarded right now.',
                       callback=lambda: [((), float(self.in_flight))])
        self.buckets: dict[str, TokenBucket] = {}
        self.upstream = Upstream(config.upstream, 'trusted host', registry)
        self.openapi = openapi_document(self.limits)

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

    def check_rate(self, name: str) -> None:
        now = self.clock()
        bucket = self.buckets.get(name)
        if bucket is None:
            limit = self.limit_for(name)
            bucket = self.buckets[name] = TokenBucket.full(limit.rate, limit.burst, now)
        wait = bucket.take(now)
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
        if self.in_flight >= self.config.max_in_flight:
            raise ApiError(503, 'overloaded', 'the gatekeeper is at its concurrency limit; retry shortly',
                           headers={'Retry-After': '1'})
        self.in_flight += 1
        try:
            body = await read_body(request, self.config.server.max_body_bytes)
            parse_query_request(body, request.content_type, self.limits)
            relayed = await self.upstream.post(request.path, body, request[REQUEST_ID])
        finally:
            self.in_flight -= 1
        headers = dict(relayed.headers)
        if NODE_HEADER in headers:
            log['node'] = headers[NODE_HEADER]
        if KIND_HEADER in headers:
            log['kind'] = headers[KIND_HEADER]
        if relayed.error_code:
            log['error'] = relayed.error_code
            if relayed.status == 403:
                log['reason'] = relayed.error_message
        return web.Response(status=relayed.status, body=relayed.body, content_type='application/json', headers=headers)

    async def handle_openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type='application/json')

    async def on_startup(self, app: web.Application) -> None:
        await self.upstream.start()

    async def on_cleanup(self, app: web.Application) -> None:
        await self.upstream.close()


GATEKEEPER = web.AppKey('sqlgate_gatekeeper', Gatekeeper)


def create_gatekeeper_app(config: GatekeeperConfig, clock: Callable[[], float] = time.monotonic) -> web.Application:
    gatekeeper = Gatekeeper(config, clock)
    app = create_app(gatekeeper.service, gatekeeper.handle_query, [web.get('/openapi.json', gatekeeper.handle_openapi)])
    app[GATEKEEPER] = gatekeeper
    app.on_startup.append(gatekeeper.on_startup)
    app.on_cleanup.append(gatekeeper.on_cleanup)
    return app
