# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The trusted host: accepts only the gatekeeper, validates each statement, forwards it to the proxy.

The gatekeeper names each request's API key and scope; the statement is judged by that scope's policy, and
the scope travels on to the proxy, which runs the statement as the scope's database user.
"""

from __future__ import annotations

from aiohttp import web

from .auth import TierGuard
from .config import TrustedConfig
from .errors import ApiError
from .request import RequestLimits, parse_query_request
from .routing import ROUTES
from .upstream import Upstream
from .validate import Rejection, cache_entries, validate
from .web import (
    KEY_HEADER,
    KIND_HEADER,
    LOG_FIELDS,
    NODE_HEADER,
    REQUEST_ID,
    SCOPE_HEADER,
    TIER_GUARD,
    Service,
    create_app,
    json_bytes,
    read_body,
)


class Trusted:
    def __init__(self, config: TrustedConfig) -> None:
        self.config = config
        self.guard = TierGuard(config.tier_auth)
        server = config.server
        self.limits = RequestLimits(server.max_query_length, server.max_params)
        self.service = Service('trusted', server, routes=tuple(f'/{route}' for route in ROUTES))
        registry = self.service.registry
        self.rejections = registry.counter(
            'sqlgate_rejections_total', 'Statements refused by the policy, by rule.', ('code',)
        )
        registry.gauge('sqlgate_validation_cache_entries', 'Query texts in the validation cache.',
                       callback=lambda: [((), float(cache_entries()))])
        self.upstream = Upstream(config.upstream, 'proxy', registry)

    async def handle_query(self, request: web.Request) -> web.Response:
        log = request[LOG_FIELDS]
        log['route'] = request.path[1:]
        self.guard.check(request)
        scope = request.headers.get(SCOPE_HEADER, '')
        policy = self.config.scopes.get(scope)
        if policy is None:
            raise ApiError(403, 'scope_unknown', "this API key's scope is not configured on the trusted host")
        key = request.headers.get(KEY_HEADER, '')[:64]
        log['scope'] = scope
        log['api_key'] = key
        body = await read_body(request, self.config.server.max_body_bytes)
        query = parse_query_request(body, request.content_type, self.limits)
        # The validator is linear (at most a few milliseconds for the longest text accepted), so it runs
        # inline: a thread hand-off would cost more than it saves, and no text can hold the loop for long.
        outcome = validate(query.query, query.params, policy)
        if isinstance(outcome, Rejection):
            self.rejections.inc(outcome.code)
            raise ApiError(outcome.status, outcome.code, outcome.reason, log={'reason': outcome.reason})
        log['statement'] = outcome.statement
        forwarded = json_bytes({'query': outcome.sql, 'params': list(outcome.params)})
        relayed = await self.upstream.post(request.path, forwarded, request[REQUEST_ID],
                                           {KEY_HEADER: key, SCOPE_HEADER: scope})
        if NODE_HEADER in relayed.headers:
            log['node'] = relayed.headers[NODE_HEADER]
        if KIND_HEADER in relayed.headers:
            log['kind'] = relayed.headers[KIND_HEADER]
        if relayed.error_code:
            log['error'] = relayed.error_code
        return web.Response(
            status=relayed.status, body=relayed.body, content_type='application/json', headers=relayed.headers
        )

    async def on_startup(self, app: web.Application) -> None:
        await self.upstream.start()

    async def on_cleanup(self, app: web.Application) -> None:
        await self.upstream.close()


TRUSTED = web.AppKey('sqlgate_trusted', Trusted)


def create_trusted_app(config: TrustedConfig) -> web.Application:
    trusted = Trusted(config)
    app = create_app(trusted.service, trusted.handle_query)
    app[TRUSTED] = trusted
    app[TIER_GUARD] = trusted.guard
    app.on_startup.append(trusted.on_startup)
    app.on_cleanup.append(trusted.on_cleanup)
    return app
