# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The SQL proxy: accepts only the trusted host, classifies, routes, pools, probes, retries reads."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pymysql
from aiohttp import web

from .auth import TierGuard
from .classify import classify
from .config import NodeConfig, ProxyConfig
from .db import NodeFailure, ReadResult, StatementFailure, WriteResult, close_quietly, connect, execute, probe
from .errors import ApiError
from .health import NodeHealth, ewma
from .pool import NodePool, PoolExhausted
from .request import RequestLimits, parse_query_request
from .routing import ROUTES, NodeView, Route, choose_node
from .web import KIND_HEADER, LOG_FIELDS, NODE_HEADER, REQUEST_ID, Service, create_app, json_bytes, read_body

INLINE_LIMIT = 1024


@dataclass
class Node:
    config: NodeConfig
    health: NodeHealth
    pool: NodePool[ReadResult | WriteResult]
    latency: float | None = None
    probe_conn: pymysql.connections.Connection | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    def view(self) -> NodeView:
        return NodeView(self.name, self.config.role, self.health.healthy, self.latency)  # type: ignore[arg-type]


class Proxy:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.guard = TierGuard(config.tier_auth)
        server = config.server
        # The query arrives validated, possibly with 'LIMIT <cap>' appended: only the body size bounds it.
        self.limits = RequestLimits(server.max_body_bytes, server.max_params)
        self.service = Service('proxy', server, health=self.health_report, routes=tuple(f'/{r}' for r in ROUTES))
        self.logger = logging.getLogger('sqlgate.proxy')
        self.executor = ThreadPoolExecutor(
            max_workers=config.pool.size * len(config.nodes), thread_name_prefix='sqlgate-db'
        )
        # Probes have their own threads, so a saturated pool never delays them.
        self.probe_executor = ThreadPoolExecutor(max_workers=len(config.nodes), thread_name_prefix='sqlgate-probe')
        self.analysis = ThreadPoolExecutor(max_workers=1, thread_name_prefix='sqlgate-classify')
        self.nodes: dict[str, Node] = {}
        for node_config in config.nodes:
            pool: NodePool[ReadResult | WriteResult] = NodePool(
                functools.partial(connect, node_config, config.database),
                config.pool.size,
                config.pool.acquire_timeout,
                config.pool.idle_check_after,
                self.executor,
            )
            self.nodes[node_config.name] = Node(node_config, NodeHealth(config.health.failure_threshold), pool)
        self.fastest: str | None = None
        self.rng = random.Random()
        self.probe_tasks: list[asyncio.Task[None]] = []
        self._metrics()

    # -- metrics and health -----------------------------------------------------------------------
    def _metrics(self) -> None:
        registry = self.service.registry
        nodes = self.nodes.values()
        registry.gauge('sqlgate_node_up', 'Whether the node is admitted (1) or ejected (0).', ('node', 'role'),
                       callback=lambda: [((n.name, n.config.role), float(n.health.healthy)) for n in nodes])
        registry.gauge('sqlgate_node_latency_seconds', 'Moving average of the probe round trip.', ('node',),
                       callback=lambda: [((n.name,), n.latency) for n in nodes if n.latency is not None])
        registry.gauge('sqlgate_node_consecutive_failures', 'Consecutive failures of the node.', ('node',),
                       callback=lambda: [((n.name,), float(n.health.consecutive_failures)) for n in nodes])
        registry.counter('sqlgate_node_ejections_total', 'Times the node was ejected.', ('node',),
                         callback=lambda: [((n.name,), float(n.health.ejections)) for n in nodes])
        registry.counter('sqlgate_node_readmissions_total', 'Times the node was re-admitted.', ('node',),
                         callback=lambda: [((n.name,), float(n.health.readmissions)) for n in nodes])
        registry.gauge(
            'sqlgate_pool_connections', 'Pooled connections by state.', ('node', 'state'),
            callback=lambda: [item for n in nodes for item in (
                ((n.name, 'idle'), float(len(n.pool.idle))), ((n.name, 'in_use'), float(n.pool.in_use)))],
        )
        registry.counter('sqlgate_pool_acquire_timeouts_total', 'Requests that found every connection busy.',
                         ('node',), callback=lambda: [((n.name,), float(n.pool.acquire_timeouts)) for n in nodes])
        self.queries = registry.counter(
            'sqlgate_queries_total', 'Statements sent to a node, by outcome.', ('node', 'kind', 'outcome')
        )
        self.retries = registry.counter('sqlgate_read_retries_total', 'Reads retried on another node.')
        self.unavailable = registry.counter(
            'sqlgate_no_healthy_node_total', 'Requests refused because no healthy node could serve them.', ('kind',)
        )
        self.probe_failures = registry.counter('sqlgate_probe_failures_total', 'Failed health probes.', ('node',))

    def health_report(self) -> tuple[int, dict[str, object]]:
        nodes = [
            {
                'name': node.name,
                'role': node.config.role,
                'state': node.health.state,
                'consecutive_failures': node.health.consecutive_failures,
                'latency_ms': None if node.latency is None else round(node.latency * 1000, 3),
                'ejections': node.health.ejections,
            }
            for node in self.nodes.values()
        ]
        up = sum(node.health.healthy for node in self.nodes.values())
        status = 'ok' if up == len(self.nodes) else 'degraded' if up else 'down'
        return (200 if up else 503), {'status': status, 'service': 'proxy', 'nodes': nodes}

    def _failed(self, node: Node, error: str, source: str) -> None:
        if node.health.record_failure():
            node.latency = None
            if self.fastest == node.name:
                self.fastest = None
            self.logger.warning('node %s ejected after %d consecutive failures (%s: %s)', node.name,
                                node.health.consecutive_failures, source, error, extra={'node': node.name})

    # -- probes -----------------------------------------------------------------------------------
    def _probe_blocking(self, node: Node) -> float:
        if node.probe_conn is None:
            node.probe_conn = connect(node.config, self.config.database, timeout=self.config.health.probe_timeout)
        try:
            return probe(node.probe_conn, self.config.health.probe_query)
        except Exception:
            close_quietly(node.probe_conn)
            node.probe_conn = None
            raise

    async def _probe_loop(self, node: Node) -> None:
        loop = asyncio.get_running_loop()
        health = self.config.health
        while True:
            try:
                sample = await loop.run_in_executor(self.probe_executor, self._probe_blocking, node)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any probe failure counts against the node
                self.probe_failures.inc(node.name)
                self._failed(node, str(exc), 'probe')
            else:
                node.latency = ewma(node.latency, sample, health.ewma_alpha)
                if node.health.record_success(probe=True):
                    self.logger.info('node %s re-admitted', node.name, extra={'node': node.name})
            await asyncio.sleep(health.probe_interval)

    # -- requests ---------------------------------------------------------------------------------
    def choose(self, route: Route, kind: str, exclude: tuple[str, ...]) -> str | None:
        views = [node.view() for node in self.nodes.values()]
        name = choose_node(
            route, kind, views, exclude=exclude, current_fastest=self.fastest,  # type: ignore[arg-type]
            margin=self.config.health.hysteresis, rng=self.rng,
        )
        chosen_worker = name is not None and self.nodes[name].config.role == 'worker'
        if route == 'customized' and kind == 'read' and not exclude and chosen_worker:
            self.fastest = name
        return name

    async def handle_query(self, request: web.Request) -> web.Response:
        log = request[LOG_FIELDS]
        route: Route = request.path[1:]  # type: ignore[assignment]
        log['route'] = route
        self.guard.check(request)
        body = await read_body(request, self.config.server.max_body_bytes)
        query = parse_query_request(body, request.content_type, self.limits)
        if len(query.query) <= INLINE_LIMIT:
            kind = classify(query.query)
        else:  # a long text takes sqlparse a while: keep the event loop free meanwhile
            kind = await asyncio.get_running_loop().run_in_executor(self.analysis, classify, query.query)
        log['kind'] = kind
        job = functools.partial(
            execute, sql=query.query, params=query.params, max_rows=self.config.max_result_rows,
            db=self.config.database,
        )
        tried: tuple[str, ...] = ()
        while True:
            name = self.choose(route, kind, tried)
            if name is None:
                self.unavailable.inc(kind)
                what = 'the manager is not' if kind == 'write' else 'no node is'
                raise ApiError(503, 'no_healthy_node', f'{what} available to serve this {kind}; retry later',
                               headers={'Retry-After': '1'})
            node = self.nodes[name]
            log['node'] = name
            try:
                result = await node.pool.run(job)
            except StatementFailure as failure:
                node.health.record_success(probe=False)
                self.queries.inc(name, kind, 'statement_error')
                headers = {'Retry-After': '1'} if failure.status == 503 else None
                raise ApiError(failure.status, failure.code, failure.message, headers=headers) from None
            except NodeFailure as failure:
                self.queries.inc(name, kind, 'node_failure')
                self._failed(node, failure.message, 'request')
                if kind == 'read' and not tried:
                    tried = (name,)
                    self.retries.inc()
                    continue
                if failure.timeout:
                    raise ApiError(504, 'node_timeout', f'the node {name} did not answer in time') from None
                raise ApiError(502, 'node_failed', f'the node {name} failed: {failure.message}') from None
            except PoolExhausted:
                self.queries.inc(name, kind, 'pool_exhausted')
                if kind == 'read' and not tried:
                    tried = (name,)
                    self.retries.inc()
                    continue
                raise ApiError(503, 'pool_exhausted', f'every connection to {name} is busy; retry shortly',
                               headers={'Retry-After': '1'}) from None
            node.health.record_success(probe=False)
            self.queries.inc(name, kind, 'ok')
            return self._answer(request[REQUEST_ID], route, name, kind, result)

    @staticmethod
    def _answer(request_id: str, route: str, node: str, kind: str, result: ReadResult | WriteResult) -> web.Response:
        document: dict[str, object] = {'request_id': request_id, 'route': route, 'node': node, 'kind': kind}
        if isinstance(result, ReadResult):
            document.update(columns=result.columns, rows=result.rows, row_count=len(result.rows))
        else:
            document.update(affected_rows=result.affected_rows, last_insert_id=result.last_insert_id)
        return web.Response(
            body=json_bytes(document), content_type='application/json', headers={NODE_HEADER: node, KIND_HEADER: kind}
        )

    # -- lifecycle --------------------------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        self.probe_tasks = [asyncio.create_task(self._probe_loop(node)) for node in self.nodes.values()]

    async def on_cleanup(self, app: web.Application) -> None:
        for task in self.probe_tasks:
            task.cancel()
        for task in self.probe_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        loop = asyncio.get_running_loop()
        for node in self.nodes.values():
            await loop.run_in_executor(self.executor, node.pool.close_idle)
            await loop.run_in_executor(self.probe_executor, close_quietly, node.probe_conn)
            node.probe_conn = None
        self.executor.shutdown(wait=False)
        self.probe_executor.shutdown(wait=False)
        self.analysis.shutdown(wait=False)


PROXY = web.AppKey('sqlgate_proxy', Proxy)


def create_proxy_app(config: ProxyConfig) -> web.Application:
    proxy = Proxy(config)
    app = create_app(proxy.service, proxy.handle_query)
    app[PROXY] = proxy
    app.on_startup.append(proxy.on_startup)
    app.on_cleanup.append(proxy.on_cleanup)
    return app
