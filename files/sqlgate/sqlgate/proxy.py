# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The SQL proxy: accepts only the trusted host, classifies, routes, pools, probes, retries reads.

Each request runs as the database user of its API key's scope (named by the trusted host): a read as the
scope's SELECT-only user, a write as its write user, in a transaction whose matched rows are checked
before commit. The database's grants are the boundary; a statement the validator misjudged is refused
by the server and answered 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import web

from .auth import TierGuard
from .classify import Kind, classify
from .config import Credentials, NodeConfig, ProxyConfig, ScopeConfig
from .db import (
    Limits,
    NodeFailure,
    ReadResult,
    StatementFailure,
    WriteResult,
    close_quietly,
    connect,
    execute_read,
    execute_write,
    kill_query,
    probe,
    translate,
)
from .errors import ApiError
from .health import NodeHealth, ewma
from .pool import NodePool, PoolExhausted
from .request import RequestLimits, parse_query_request
from .routing import ROUTES, NodeView, Route, choose_node
from .sqllex import LexError, lex
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
from .wire import Connection

INLINE_LIMIT = 1024
ANSWER_OVERHEAD = 65536  # the JSON around the rows: keys, separators, column names
AUDIT_LOGGER = 'sqlgate.audit'


@dataclass
class Node:
    config: NodeConfig
    health: NodeHealth
    pools: dict[tuple[str, Kind], NodePool[ReadResult | WriteResult]]
    latency: float | None = None
    probe_conn: Connection | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    def view(self) -> NodeView:
        return NodeView(self.name, self.config.role, self.health.healthy, self.latency)  # type: ignore[arg-type]

    def idle(self) -> int:
        return sum(len(pool.idle) for pool in self.pools.values())

    def in_use(self) -> int:
        return sum(pool.in_use for pool in self.pools.values())

    def acquire_timeouts(self) -> int:
        return sum(pool.acquire_timeouts for pool in self.pools.values())


def fingerprint(sql: str) -> tuple[str, str]:
    """The statement with its literals replaced by '?', and a short hash of that, for the audit log."""
    try:
        toks = lex(sql).toks
    except LexError:
        shape = sql[:200]
    else:
        shape = ' '.join('?' if tok.kind in ('string', 'number', 'placeholder') else tok.value for tok in toks)
    return hashlib.sha256(shape.encode('utf-8', 'replace')).hexdigest()[:16], shape[:200]


class Proxy:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.guard = TierGuard(config.tier_auth)
        server = config.server
        # The query arrives validated, possibly with 'LIMIT <cap>' appended: only the body size bounds it.
        self.limits = RequestLimits(server.max_body_bytes, server.max_params)
        self.service = Service('proxy', server, health=self.health_report, routes=tuple(f'/{r}' for r in ROUTES))
        self.logger = logging.getLogger('sqlgate.proxy')
        # Statements run on the event loop; threads only log in (PyMySQL's handshake) and send KILL QUERY.
        users = sum(1 + (scope.write is not None) for scope in config.scopes.values())
        self.executor = ThreadPoolExecutor(
            max_workers=min(32, config.pool.size * len(config.nodes) * users), thread_name_prefix='sqlgate-db'
        )
        # Probes log in with threads of their own, so a pool that is opening connections never delays them.
        self.probe_executor = ThreadPoolExecutor(max_workers=len(config.nodes), thread_name_prefix='sqlgate-probe')
        self.analysis = ThreadPoolExecutor(max_workers=1, thread_name_prefix='sqlgate-classify')
        self.audit = logging.getLogger(AUDIT_LOGGER)
        self.large_results = threading.BoundedSemaphore(config.pool.large_results)
        self.audit.setLevel(logging.INFO)  # the audit trail is kept whatever the log level
        self.nodes: dict[str, Node] = {}
        for node_config in config.nodes:
            pools: dict[tuple[str, Kind], NodePool[ReadResult | WriteResult]] = {}
            for scope in config.scopes.values():
                for access, credentials in (('read', scope.read), ('write', scope.write)):
                    if credentials is not None:
                        pools[(scope.name, access)] = NodePool(
                            self._connector(node_config, scope, credentials, write=access == 'write'),
                            config.pool.size,
                            config.pool.acquire_timeout,
                            config.pool.idle_check_after,
                            config.health.probe_timeout,
                        )
            self.nodes[node_config.name] = Node(node_config, NodeHealth(config.health.failure_threshold), pools)
        self.fastest: str | None = None
        self.rng = random.Random()
        self.probe_tasks: list[asyncio.Task[None]] = []
        self._metrics()

    def _login(self, node: NodeConfig, scope: ScopeConfig, credentials: Credentials, write: bool):  # noqa: ANN202
        """Log in as ``credentials`` (blocking: PyMySQL's handshake, for a thread)."""
        return functools.partial(
            connect, node, self.config.database, credentials, write=write,
            statement_timeout=scope.statement_timeout, max_packet=scope.max_result_bytes + 4096,
            safe_updates=scope.sql_safe_updates,
        )

    def _connector(self, node: NodeConfig, scope: ScopeConfig, credentials: Credentials, write: bool):  # noqa: ANN202
        return functools.partial(self._open, self._login(node, scope, credentials, write), self.executor)

    async def _open(self, login, executor: ThreadPoolExecutor) -> Connection:  # noqa: ANN001
        """A connection logged in by a thread, then handed to the event loop."""
        conn = await asyncio.get_running_loop().run_in_executor(executor, login)
        try:
            return await Connection.adopt(conn, conn.max_packet)
        except Exception as exc:  # noqa: BLE001
            close_quietly(conn)
            raise translate(exc, self.config.database) from None

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
                ((n.name, 'idle'), float(n.idle())), ((n.name, 'in_use'), float(n.in_use())))],
        )
        registry.counter('sqlgate_pool_acquire_timeouts_total', 'Requests that found every connection busy.',
                         ('node',), callback=lambda: [((n.name,), float(n.acquire_timeouts())) for n in nodes])
        self.queries = registry.counter(
            'sqlgate_queries_total', 'Statements sent to a node, by outcome.', ('node', 'kind', 'outcome')
        )
        self.retries = registry.counter('sqlgate_read_retries_total', 'Reads retried on another node.')
        self.unavailable = registry.counter(
            'sqlgate_no_healthy_node_total', 'Requests refused because no healthy node could serve them.', ('kind',)
        )
        self.probe_failures = registry.counter('sqlgate_probe_failures_total', 'Failed health probes.', ('node',))
        self.refused_writes = registry.counter(
            'sqlgate_writes_refused_total', 'Writes rolled back or refused, by reason.', ('scope', 'code'))

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
    async def _probe(self, node: Node) -> float:
        health = self.config.health
        if node.probe_conn is None or not node.probe_conn.open:
            login = functools.partial(connect, node.config, self.config.database, self.config.probe_credentials,
                                      timeout=health.probe_timeout)
            node.probe_conn = await self._open(login, self.probe_executor)
        try:
            return await probe(node.probe_conn, health.probe_query, health.probe_timeout)
        except Exception:
            node.probe_conn.close()
            node.probe_conn = None
            raise

    async def _probe_loop(self, node: Node) -> None:
        health = self.config.health
        while True:
            try:
                sample = await self._probe(node)
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

    def scope_of(self, request: web.Request) -> ScopeConfig:
        scope = self.config.scopes.get(request.headers.get(SCOPE_HEADER, ''))
        if scope is None:
            raise ApiError(403, 'scope_unknown', "this API key's scope is not configured on the proxy")
        return scope

    def job(self, node: Node, scope: ScopeConfig, kind: str, sql: str, params: tuple[object, ...]):  # noqa: ANN201
        """What runs with a pooled connection of the scope's read or write user."""
        limits = Limits(scope.max_result_rows, scope.max_result_bytes, scope.max_affected_rows,
                        scope.statement_timeout, self.large_results)
        db = self.config.database
        if kind == 'read':
            return functools.partial(execute_read, sql=sql, params=params, limits=limits, db=db)
        connect_again = self._login(node.config, scope, scope.write, write=True)  # type: ignore[arg-type]

        def write(conn: Connection):  # noqa: ANN202
            def killer():  # noqa: ANN202
                return asyncio.get_running_loop().run_in_executor(
                    self.executor, kill_query, connect_again, conn.thread_id)
            return execute_write(conn, sql, params, limits, db, killer=killer)
        return write

    async def handle_query(self, request: web.Request) -> web.Response:
        log = request[LOG_FIELDS]
        route: Route = request.path[1:]  # type: ignore[assignment]
        log['route'] = route
        self.guard.check(request)
        scope = self.scope_of(request)
        log['scope'] = scope.name
        log['api_key'] = request.headers.get(KEY_HEADER, '')[:64]
        body = await read_body(request, self.config.server.max_body_bytes)
        query = parse_query_request(body, request.content_type, self.limits)
        if len(query.query) <= INLINE_LIMIT:
            kind = classify(query.query)
        else:  # keep the event loop free for long texts
            kind = await asyncio.get_running_loop().run_in_executor(self.analysis, classify, query.query)
        log['kind'] = kind
        if kind == 'write' and scope.write is None:
            raise ApiError(403, 'statement_not_allowed', 'this API key may only read')
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
            started = asyncio.get_running_loop().time()
            try:
                result = await node.pools[(scope.name, kind)].run(self.job(node, scope, kind, query.query,
                                                                            query.params))
            except StatementFailure as failure:
                self.queries.inc(name, kind, 'statement_error')
                if failure.detail:
                    log['db_error'] = failure.detail[:300]
                if kind == 'write':
                    self.refused_writes.inc(scope.name, failure.code)
                    self._audit(request, scope, name, query.query, None, failure.code)
                if failure.status == 502:  # our own login refused: the deployment is wrong, not the caller
                    self.logger.error('node %s refused the login of scope %s: %s', name, scope.name,
                                      failure.detail, extra={'node': name, 'request_id': request[REQUEST_ID]})
                headers = {'Retry-After': '1'} if failure.status in (429, 503) else None
                raise ApiError(failure.status, failure.code, failure.message, headers=headers) from None
            except NodeFailure as failure:
                log['db_error'] = failure.message[:300]
                elapsed = asyncio.get_running_loop().time() - started
                if failure.timeout and elapsed >= scope.statement_timeout and node.health.consecutive_failures == 0:
                    # The statement outlived its time while the node's probes kept answering: the server's
                    # timer cannot interrupt some functions, but the cost is the caller's, not the node's.
                    self.queries.inc(name, kind, 'statement_timeout')
                    if kind == 'write':
                        self._audit(request, scope, name, query.query, None, 'statement_timeout')
                    raise ApiError(422, 'statement_timeout', f'the statement ran longer than '
                                   f'{scope.statement_timeout:g} s and was stopped; make it cheaper') from None
                self.queries.inc(name, kind, 'node_failure')
                self._failed(node, failure.message, 'request')
                if kind == 'read' and not tried:
                    tried = (name,)
                    self.retries.inc()
                    continue
                if kind == 'write':
                    self._audit(request, scope, name, query.query, None, 'node_failed')
                if failure.timeout:
                    raise ApiError(504, 'node_timeout', 'a database node did not answer in time') from None
                raise ApiError(502, 'node_failed', 'a database node failed while running the statement') from None
            except PoolExhausted:
                self.queries.inc(name, kind, 'pool_exhausted')
                if kind == 'read' and not tried:
                    tried = (name,)
                    self.retries.inc()
                    continue
                raise ApiError(503, 'pool_exhausted', 'every database connection of this kind is busy; retry shortly',
                               headers={'Retry-After': '1'}) from None
            node.health.record_success(probe=False)
            self.queries.inc(name, kind, 'ok')
            if isinstance(result, WriteResult):
                self._audit(request, scope, name, query.query, result, 'ok')
            try:
                return self._answer(request[REQUEST_ID], route, name, kind, result, scope)
            finally:
                if isinstance(result, ReadResult) and result.large is not None:
                    result.large.release()

    def _audit(self, request: web.Request, scope: ScopeConfig, node: str, sql: str, result: WriteResult | None,
               outcome: str) -> None:
        """One line per write attempt: who, what shape of statement, where, how many rows, how it ended."""
        digest, shape = fingerprint(sql)
        entry: dict[str, object] = {
            'ts': datetime.now(timezone.utc).isoformat(timespec='milliseconds').replace('+00:00', 'Z'),
            'audit': 'write', 'service': self.service.name, 'request_id': request[REQUEST_ID],
            'api_key': request.headers.get(KEY_HEADER, '')[:64], 'scope': scope.name, 'node': node,
            'fingerprint': digest, 'statement': shape, 'outcome': outcome,
        }
        if result is not None:
            entry.update(affected_rows=result.affected_rows, matched_rows=result.matched_rows)
        self.audit.info('write', extra={'access': entry})

    @staticmethod
    def _answer(request_id: str, route: str, node: str, kind: str, result: ReadResult | WriteResult,
                scope: ScopeConfig) -> web.Response:
        document: dict[str, object] = {'request_id': request_id, 'route': route, 'node': node, 'kind': kind}
        if isinstance(result, ReadResult):
            document.update(columns=result.columns, rows=result.rows, row_count=len(result.rows))
        else:
            document.update(affected_rows=result.affected_rows, matched_rows=result.matched_rows,
                            last_insert_id=result.last_insert_id)
        body = json_bytes(document)
        # Escapes can make the JSON larger than the bytes counted while the rows streamed.
        if len(body) > scope.max_result_bytes + ANSWER_OVERHEAD:
            raise ApiError(403, 'result_too_large', f'the answer is larger than {scope.max_result_bytes} bytes, the '
                                                    'most this API key may read; select fewer rows or columns')
        return web.Response(body=body, content_type='application/json', headers={NODE_HEADER: node, KIND_HEADER: kind})

    # -- lifecycle --------------------------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        self.probe_tasks = [asyncio.create_task(self._probe_loop(node)) for node in self.nodes.values()]

    async def on_cleanup(self, app: web.Application) -> None:
        for task in self.probe_tasks:
            task.cancel()
        for task in self.probe_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in self.nodes.values():
            for pool in node.pools.values():
                pool.close_idle()
            if node.probe_conn is not None:
                node.probe_conn.close()
                node.probe_conn = None
        self.executor.shutdown(wait=False)
        self.probe_executor.shutdown(wait=False)
        self.analysis.shutdown(wait=False)


PROXY = web.AppKey('sqlgate_proxy', Proxy)


def create_proxy_app(config: ProxyConfig) -> web.Application:
    proxy = Proxy(config)
    app = create_app(proxy.service, proxy.handle_query)
    app[PROXY] = proxy
    app[TIER_GUARD] = proxy.guard
    app.on_startup.append(proxy.on_startup)
    app.on_cleanup.append(proxy.on_cleanup)
    return app
