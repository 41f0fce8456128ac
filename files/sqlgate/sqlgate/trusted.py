# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The trusted host: accepts only the gatekeeper, validates each statement, forwards it to the proxy."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from .auth import TierGuard
from .config import TrustedConfig
from .errors import ApiError
from .request import RequestLimits, parse_query_request
from .routing import ROUTES
from .upstream import Upstream
from .validate import Rejection, cache_entries, validate
from .web import KIND_HEADER, LOG_FIELDS, NODE_HEADER, REQUEST_ID, Service, create_app, json_bytes, read_body

# Longer texts are validated in a thread: a 10 000-character query costs sqlparse a good part of a
# second, which must not stall the event loop (health checks, cached queries) meanwhile.
INLINE_LIMIT = 1024


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
        self.analysis = ThreadPoolExecutor(max_workers=1, thread_name_prefix='sqlgate-validate')

    async def handle_query(self, request: web.Request) -> web.Response:
        log = request[LOG_FIELDS]
        log['route'] = request.path[1:]
        self.guard.check(request)
        body = await read_body(request, self.config.server.max_body_bytes)
        query = parse_query_request(body, request.content_type, self.limits)
        if len(query.query) <= INLINE_LIMIT:
            outcome = validate(query.query, query.params, self.config.policy)
        else:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self.analysis, validate, query.query, query.params, self.config.policy)
        if isinstance(outcome, Rejection):
            self.rejections.inc(outcome.code)
            raise ApiError(outcome.status, outcome.code, outcome.reason, log={'reason': outcome.reason})
        log['statement'] = outcome.statement
        forwarded = json_bytes({'query': outcome.sql, 'params': list(outcome.params)})
        relayed = await self.upstream.post(request.path, forwarded, request[REQUEST_ID])
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
        self.analysis.shutdown(wait=False)


TRUSTED = web.AppKey('sqlgate_trusted', Trusted)


def create_trusted_app(config: TrustedConfig) -> web.Application:
    trusted = Trusted(config)
    app = create_app(trusted.service, trusted.handle_query)
    app[TRUSTED] = trusted
    app.on_startup.append(trusted.on_startup)
    app.on_cleanup.append(trusted.on_cleanup)
    return app
