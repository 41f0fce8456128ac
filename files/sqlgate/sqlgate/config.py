# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Configuration: one JSON file per service, checked strictly, with errors that name the key.

Secrets are never in the file: keys ending in ``_file`` name files that hold them. Secret values are
kept out of ``repr`` so that they cannot reach a log line.
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .validate import DEFAULT_STATEMENTS, SAKILA_TABLES, SAKILA_VIEWS, Policy

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NODE_NAME = re.compile(r'^[A-Za-z0-9_.-]{1,64}$')
_SCOPE_NAME = re.compile(r'^[a-z][a-z0-9_]{0,31}$')
_HIDDEN_COLUMN = re.compile(r'^([A-Za-z0-9_]{1,64})\.([A-Za-z0-9_]{1,64})$')
_LOG_LEVELS = ('debug', 'info', 'warning', 'error')
_REQUIRED = object()
# Served /metrics and the full /healthz when metrics_allowed_clients is not configured.
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network('127.0.0.0/8'), ipaddress.ip_network('::1/128'))
DEFAULT_MAX_QUERY_LENGTH = 8192
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT_PER_KEY = 16


class ConfigError(Exception):
    """A configuration problem, with the dotted name of the offending key."""


class _Section:
    """Typed reads from one JSON object; ``done()`` refuses the keys nobody read."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f'{path or "the configuration"}: expected a JSON object')
        self.data: dict[str, Any] = data
        self.path = path
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f'{self.path}.{name}' if self.path else name

    def raw(self, name: str, default: object) -> object:
        self.read.add(name)
        if name in self.data:
            return self.data[name]
        if default is _REQUIRED:
            raise ConfigError(f'config key {self.key(name)!r} is required')
        return default

    def string(self, name: str, default: object = _REQUIRED, choices: tuple[str, ...] = ()) -> str:
        value = self.raw(name, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f'config key {self.key(name)!r}: expected a non-empty string')
        if choices and value not in choices:
            raise ConfigError(f'config key {self.key(name)!r}: expected one of {", ".join(choices)}, got {value!r}')
        return value

    def integer(self, name: str, default: object = _REQUIRED, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum
        ):
            bound = f'between {minimum} and {maximum}' if maximum is not None else f'>= {minimum}'
            raise ConfigError(f'config key {self.key(name)!r}: expected an integer {bound}, got {value!r}')
        return value

    def number(self, name: str, default: object = _REQUIRED, minimum: float = 0.0, exclusive: bool = True) -> float:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum or (
            exclusive and value == minimum
        ):
            bound = f'> {minimum}' if exclusive else f'>= {minimum}'
            raise ConfigError(f'config key {self.key(name)!r}: expected a number {bound}, got {value!r}')
        return float(value)

    def boolean(self, name: str, default: object = _REQUIRED) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f'config key {self.key(name)!r}: expected true or false, got {value!r}')
        return value

    def strings(self, name: str, default: object = _REQUIRED, allow_empty: bool = False) -> tuple[str, ...]:
        value = self.raw(name, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
            raise ConfigError(f'config key {self.key(name)!r}: expected a list of non-empty strings')
        if not value and not allow_empty:
            raise ConfigError(f'config key {self.key(name)!r}: expected at least one item')
        return tuple(value)

    def networks(self, name: str, default: object = _REQUIRED) -> tuple[Network, ...] | None:
        value = self.raw(name, default)
        if value is None:
            return None
        items = value if isinstance(value, list) else None
        if not items or not all(isinstance(item, str) for item in items):
            raise ConfigError(f'config key {self.key(name)!r}: expected a non-empty list of addresses or CIDR networks')
        try:
            return tuple(ipaddress.ip_network(item, strict=False) for item in items)
        except ValueError as exc:
            raise ConfigError(f'config key {self.key(name)!r}: {exc}') from None

    def secret(self, name: str, token: bool = False) -> bytes:
        """Read the secret held in the file named by key ``name``; never echo its content.

        ``token``: the secret travels in an HTTP header, so it must be 16 or more printable ASCII
        characters without spaces.
        """
        path = Path(self.string(name))
        try:
            content = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f'config key {self.key(name)!r}: cannot read {path}: {exc.strerror}') from None
        if not content:
            raise ConfigError(f'config key {self.key(name)!r}: the file {path} is empty')
        if token and not re.fullmatch(rb'[\x21-\x7e]{16,}', content):
            raise ConfigError(
                f'config key {self.key(name)!r}: the secret in {path} must be 16 or more printable ASCII '
                'characters without spaces'
            )
        return content

    def section(self, name: str, required: bool = False) -> _Section:
        value = self.raw(name, _REQUIRED if required else {})
        return _Section(value, self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise ConfigError(f'unknown config key {self.key(unknown[0])!r}')


@dataclass(frozen=True)
class ServerConfig:
    """Keys shared by the three services."""

    host: str
    port: int
    log_level: str
    shutdown_timeout: float
    max_body_bytes: int
    max_query_length: int
    max_params: int
    # Who may read /metrics and the full /healthz document; loopback only unless configured.
    metrics_allowed_clients: tuple[Network, ...] | None
    event_loop: str  # auto (uvloop when installed), asyncio or uvloop
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)  # HTTPS when set
    body_timeout: float = 5.0  # seconds to receive a request body, then 408 body_timeout
    reuse_port: bool = False  # bind with SO_REUSEPORT, so several processes can share the port
    workers: int | str = 1  # worker processes on the port ('auto': one per CPU); more than 1 implies reuse_port


@dataclass(frozen=True)
class UpstreamConfig:
    url: str
    secret: bytes = field(repr=False)
    timeout: float
    connect_timeout: float
    max_connections: int
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)  # for https URLs
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # larger answers: 502 upstream_response_too_large
    links: int = 2  # with a sqlgate:// url: the persistent link connections kept open


@dataclass(frozen=True)
class RateLimit:
    rate: float
    burst: float
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT_PER_KEY  # requests of one key forwarded at once


@dataclass(frozen=True)
class GatekeeperConfig:
    server: ServerConfig
    api_keys_file: Path
    rate_limit: RateLimit
    rate_limit_per_key: Mapping[str, RateLimit]
    upstream: UpstreamConfig
    max_in_flight: int
    accept_client_request_id: bool
    max_in_flight_per_key: int = DEFAULT_MAX_IN_FLIGHT_PER_KEY


@dataclass(frozen=True)
class TierAuthConfig:
    allowed_clients: tuple[Network, ...]
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class TrustedConfig:
    server: ServerConfig
    tier_auth: TierAuthConfig
    upstream: UpstreamConfig
    # The policy of each API-key scope; the gatekeeper names the scope of every request.
    scopes: Mapping[str, Policy]

    @property
    def policy(self) -> Policy:
        """The default scope's policy."""
        return self.scopes.get('default') or next(iter(self.scopes.values()))


@dataclass(frozen=True)
class NodeConfig:
    name: str
    host: str
    port: int
    role: str  # manager or worker


@dataclass(frozen=True)
class Credentials:
    user: str
    password: bytes = field(repr=False)


@dataclass(frozen=True)
class ScopeConfig:
    """One API-key scope at the proxy: its two database users and what one statement may cost."""

    name: str
    read: Credentials  # SELECT only
    write: Credentials | None  # None: the scope never writes
    max_affected_rows: int
    max_result_bytes: int
    max_result_rows: int
    statement_timeout: float
    sql_safe_updates: bool = False


@dataclass(frozen=True)
class DatabaseConfig:
    name: str
    user: str  # the probe's user (it needs SELECT on the probe query's table only)
    password: bytes = field(repr=False)
    charset: str
    connect_timeout: float
    read_timeout: float
    write_timeout: float
    statement_timeout: float


@dataclass(frozen=True)
class PoolConfig:
    size: int
    acquire_timeout: float
    idle_check_after: float
    large_results: int = 8  # results over 256 KiB read at once, over every node and scope


@dataclass(frozen=True)
class HealthConfig:
    probe_interval: float
    probe_timeout: float
    probe_query: str
    failure_threshold: int
    ewma_alpha: float
    hysteresis: float  # seconds


@dataclass(frozen=True)
class ProxyConfig:
    server: ServerConfig
    tier_auth: TierAuthConfig
    database: DatabaseConfig
    nodes: tuple[NodeConfig, ...]
    pool: PoolConfig
    health: HealthConfig
    scopes: Mapping[str, ScopeConfig]

    @property
    def probe_credentials(self) -> Credentials:
        return Credentials(self.database.user, self.database.password)


ServiceConfig = GatekeeperConfig | TrustedConfig | ProxyConfig
DEFAULT_PORTS = {'gatekeeper': 3000, 'trusted': 8000, 'proxy': 9000}
# Each tier accepts a little more than the one in front: the trusted host appends 'LIMIT <cap>'.
DEFAULT_BODY_LIMITS = {'gatekeeper': 65536, 'trusted': 66560, 'proxy': 67584}


def _server_tls(root: _Section) -> ssl.SSLContext | None:
    cert = root.raw('tls_cert_file', None)
    key = root.raw('tls_key_file', None)
    if cert is None and key is None:
        return None
    if not isinstance(cert, str) or not isinstance(key, str):
        raise ConfigError("config keys 'tls_cert_file' and 'tls_key_file' go together: set both paths or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"config key 'tls_cert_file': cannot load {cert} with {key}: {exc}") from None
    return context


def _server(root: _Section, service: str) -> ServerConfig:
    return ServerConfig(
        host=root.string('host', '0.0.0.0'),  # noqa: S104 - each tier is isolated by its network
        port=root.integer('port', DEFAULT_PORTS[service], maximum=65535),
        log_level=root.string('log_level', 'info', choices=_LOG_LEVELS),
        shutdown_timeout=root.number('shutdown_timeout', 10.0),
        max_body_bytes=root.integer('max_body_bytes', DEFAULT_BODY_LIMITS[service], minimum=64),
        max_query_length=root.integer('max_query_length', DEFAULT_MAX_QUERY_LENGTH),
        max_params=root.integer('max_params', 100, minimum=0),
        metrics_allowed_clients=root.networks('metrics_allowed_clients', None) or LOOPBACK,
        event_loop=root.string('event_loop', 'auto', choices=('auto', 'asyncio', 'uvloop')),
        ssl_context=_server_tls(root),
        body_timeout=root.number('body_timeout', 5.0),
        reuse_port=root.boolean('reuse_port', False),
        workers=_workers(root),
    )


def _workers(root: _Section) -> int | str:
    value = root.raw('workers', 1)
    if value == 'auto' or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 256):
        return value  # type: ignore[return-value]
    raise ConfigError(f"config key {root.key('workers')!r}: expected 'auto' (one per CPU) or an integer between "
                      f"1 and 256, got {value!r}")


def _upstream(root: _Section, timeout: float) -> UpstreamConfig:
    section = root.section('upstream', required=True)
    url = section.string('url')
    if not re.match(r'^(https?|sqlgate)://[^/\s]+/?$', url):
        raise ConfigError(f"config key {section.key('url')!r}: expected sqlgate://host:port (the link) or "
                          f"http(s)://host:port, got {url!r}")
    ca_file = section.raw('ca_file', None)
    context = None
    if url.startswith('https://'):
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError, TypeError) as exc:
            raise ConfigError(f"config key {section.key('ca_file')!r}: cannot load {ca_file}: {exc}") from None
    elif ca_file is not None:
        raise ConfigError(f"config key {section.key('ca_file')!r}: only used with an https url")
    config = UpstreamConfig(
        url=url.rstrip('/'),
        secret=section.secret('secret_file', token=True),
        timeout=section.number('timeout', timeout),
        connect_timeout=section.number('connect_timeout', 3.0),
        max_connections=section.integer('max_connections', 100),
        ssl_context=context,
        max_response_bytes=section.integer('max_response_bytes', DEFAULT_MAX_RESPONSE_BYTES, minimum=1024),
        links=section.integer('links', 2, maximum=64),
    )
    section.done()
    return config


def _tier_auth(root: _Section) -> TierAuthConfig:
    allowed = root.networks('allowed_clients')
    assert allowed is not None
    return TierAuthConfig(allowed_clients=allowed, secret=root.secret('client_secret_file', token=True))


def _rate(section: _Section, rate_default: object, burst_default: object, in_flight_default: int | None = None
          ) -> RateLimit:
    """A token bucket; with ``in_flight_default`` (a per-key section) also the key's ``max_in_flight``."""
    limit = RateLimit(rate=section.number('rate', rate_default), burst=float(section.integer('burst', burst_default)))
    if in_flight_default is not None:
        limit = RateLimit(limit.rate, limit.burst, section.integer('max_in_flight', in_flight_default))
    return limit


def _gatekeeper(root: _Section) -> GatekeeperConfig:
    server = _server(root, 'gatekeeper')
    max_in_flight_per_key = root.integer('max_in_flight_per_key', DEFAULT_MAX_IN_FLIGHT_PER_KEY)
    rate_section = root.section('rate_limit')
    rate_limit = _rate(rate_section, 20.0, 40)
    rate_limit = RateLimit(rate_limit.rate, rate_limit.burst, max_in_flight_per_key)
    per_key_section = rate_section.section('per_key')
    per_key = {}
    for name in list(per_key_section.data):
        key_section = per_key_section.section(name, required=True)
        per_key[name] = _rate(key_section, rate_limit.rate, int(rate_limit.burst), max_in_flight_per_key)
        key_section.done()
    per_key_section.done()
    rate_section.done()
    return GatekeeperConfig(
        server=server,
        api_keys_file=Path(root.string('api_keys_file')),
        rate_limit=rate_limit,
        rate_limit_per_key=per_key,
        upstream=_upstream(root, 25.0),
        max_in_flight=root.integer('max_in_flight', 256),
        accept_client_request_id=root.boolean('accept_client_request_id', True),
        max_in_flight_per_key=max_in_flight_per_key,
    )


def _hidden_columns(section: _Section) -> frozenset[tuple[str, str]]:
    items = section.strings('hidden_columns', ['staff.password', 'staff.picture'], allow_empty=True)
    hidden = set()
    for item in items:
        match = _HIDDEN_COLUMN.match(item)
        if match is None:
            raise ConfigError(f"config key {section.key('hidden_columns')!r}: expected table.column, got {item!r}")
        hidden.add((match.group(1).lower(), match.group(2).lower()))
    return frozenset(hidden)


def _policy(section: _Section, max_query_length: int) -> Policy:
    statements = section.strings('allowed_statements', sorted(DEFAULT_STATEMENTS))
    read = section.strings('read_tables', sorted(SAKILA_TABLES | SAKILA_VIEWS), allow_empty=True)
    write = section.strings('write_tables', sorted(SAKILA_TABLES), allow_empty=True)
    unknown = sorted({item.upper() for item in statements} - {'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REPLACE'})
    if unknown:
        raise ConfigError(f"config key {section.key('allowed_statements')!r}: {unknown[0]} cannot be allowed "
                          '(choose among SELECT, INSERT, UPDATE, DELETE, REPLACE)')
    policy = Policy(
        database=section.string('database', 'sakila'),
        allowed_statements=frozenset(item.upper() for item in statements),
        read_tables=frozenset(item.lower() for item in read),
        write_tables=frozenset(item.lower() for item in write),
        hidden_columns=_hidden_columns(section),
        allowed_functions=frozenset(item.lower() for item in section.strings('allowed_functions', [],
                                                                              allow_empty=True)),
        select_limit_cap=section.integer('select_limit_cap', 1000),
        max_query_length=min(max_query_length, section.integer('max_query_length', max_query_length)),
        flavor=section.string('flavor', 'mariadb', choices=('mariadb', 'mysql')),
    )
    section.done()
    return policy


def _scope_sections(root: _Section) -> list[tuple[str, _Section]]:
    """Each scope's section under 'scopes', its name checked; at least one."""
    scopes = root.section('scopes', required=True)
    names = list(scopes.data)
    if not names:
        raise ConfigError("config key 'scopes': expected at least one scope")
    found = []
    for name in names:
        if not _SCOPE_NAME.match(name):
            raise ConfigError(f"config key 'scopes.{name}': a scope name is a lower-case letter, then up to 31 "
                              'lower-case letters, digits or _')
        found.append((name, scopes.section(name, required=True)))
    scopes.done()
    return found


def _trusted(root: _Section) -> TrustedConfig:
    server = _server(root, 'trusted')
    if 'scopes' in root.data:
        scopes = {name: _policy(section, server.max_query_length) for name, section in _scope_sections(root)}
    else:  # one scope, 'default', with the defaults
        scopes = {'default': _policy(_Section({}, 'scopes.default'), server.max_query_length)}
    return TrustedConfig(
        server=server,
        tier_auth=_tier_auth(root),
        upstream=_upstream(root, 20.0),
        scopes=scopes,
    )


def _nodes(root: _Section) -> tuple[NodeConfig, ...]:
    raw = root.raw('nodes', _REQUIRED)
    if not isinstance(raw, list) or not raw:
        raise ConfigError("config key 'nodes': expected a non-empty list of nodes")
    nodes = []
    for index, item in enumerate(raw):
        section = _Section(item, f'nodes[{index}]')
        name = section.string('name')
        if not _NODE_NAME.match(name):
            raise ConfigError(f"config key 'nodes[{index}].name': use letters, digits, '.', '_' or '-' (at most 64)")
        nodes.append(NodeConfig(
            name=name,
            host=section.string('host'),
            port=section.integer('port', 3306, maximum=65535),
            role=section.string('role', choices=('manager', 'worker')),
        ))
        section.done()
    names = [node.name for node in nodes]
    if len(set(names)) != len(names):
        raise ConfigError("config key 'nodes': node names must be unique")
    if sum(node.role == 'manager' for node in nodes) != 1:
        raise ConfigError("config key 'nodes': exactly one node must have role 'manager'")
    return tuple(nodes)


def _proxy(root: _Section) -> ProxyConfig:
    server = _server(root, 'proxy')
    tier_auth = _tier_auth(root)
    db = root.section('database', required=True)
    # database.user and password_file: the probe's user.
    database = DatabaseConfig(
        name=db.string('name', 'sakila'),
        user=db.string('user'),
        password=db.secret('password_file'),
        charset=db.string('charset', 'utf8mb4'),
        connect_timeout=db.number('connect_timeout', 3.0),
        read_timeout=db.number('read_timeout', 8.0),
        write_timeout=db.number('write_timeout', 8.0),
        statement_timeout=db.number('statement_timeout', 5.0),
    )
    db.done()
    pool_section = root.section('pool')
    pool = PoolConfig(
        size=pool_section.integer('size', 8, maximum=256),
        acquire_timeout=pool_section.number('acquire_timeout', 1.0),
        idle_check_after=pool_section.number('idle_check_after', 10.0, exclusive=False),
        large_results=pool_section.integer('large_results', 8, maximum=1024),
    )
    pool_section.done()
    health_section = root.section('health')
    health = HealthConfig(
        probe_interval=health_section.number('probe_interval', 1.0),
        probe_timeout=health_section.number('probe_timeout', 1.0),
        probe_query=health_section.string('probe_query', 'SELECT 1'),
        failure_threshold=health_section.integer('failure_threshold', 3),
        ewma_alpha=health_section.number('ewma_alpha', 0.3),
        hysteresis=health_section.number('hysteresis_ms', 0.5, exclusive=False) / 1000.0,
    )
    if health.ewma_alpha > 1.0:
        raise ConfigError("config key 'health.ewma_alpha': expected a number in (0, 1]")
    health_section.done()
    return ProxyConfig(
        server=server,
        tier_auth=tier_auth,
        database=database,
        nodes=_nodes(root),
        pool=pool,
        health=health,
        scopes=_proxy_scopes(root, database.statement_timeout),
    )


def _credentials(section: _Section, access: str, required: bool) -> Credentials | None:
    if not required and f'{access}_user' not in section.data:
        return None
    return Credentials(section.string(f'{access}_user'), section.secret(f'{access}_password_file'))


def _proxy_scopes(root: _Section, statement_timeout: float) -> dict[str, ScopeConfig]:
    scopes = {}
    for name, section in _scope_sections(root):
        scopes[name] = ScopeConfig(
            name=name,
            read=_credentials(section, 'read', required=True),  # type: ignore[arg-type]
            write=_credentials(section, 'write', required=False),
            max_affected_rows=section.integer('max_affected_rows', 100, minimum=0),
            max_result_bytes=section.integer('max_result_bytes', 4 * 1024 * 1024, minimum=1024),
            max_result_rows=section.integer('max_result_rows', 10000),
            statement_timeout=section.number('statement_timeout', statement_timeout),
            sql_safe_updates=section.boolean('sql_safe_updates', False),
        )
        section.done()
    return scopes


_BUILDERS = {'gatekeeper': _gatekeeper, 'trusted': _trusted, 'proxy': _proxy}


def parse_config(service: str, data: object) -> ServiceConfig:
    if service not in _BUILDERS:
        raise ConfigError(f'unknown service {service!r}; expected one of {", ".join(_BUILDERS)}')
    root = _Section(data, '')
    config = _BUILDERS[service](root)
    root.done()
    return config


def load_config(service: str, path: str | Path) -> ServiceConfig:
    try:
        text = Path(path).read_text(encoding='utf-8')
    except OSError as exc:
        raise ConfigError(f'cannot read the config file {path}: {exc.strerror}') from None
    except UnicodeDecodeError:
        raise ConfigError(f'the config file {path} is not UTF-8') from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f'the config file {path} is not valid JSON: {exc.msg} at line {exc.lineno}') from None
    return parse_config(service, data)
