# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""``python -m sqlgate {gatekeeper|trusted|proxy} --config PATH [--check]``.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or a successful ``--check``; 2 when the
configuration is wrong (one line on stderr naming the key; secrets are never printed).

With ``workers`` above 1 this process is the supervisor of that many workers on one port (``workers``).
A proxy's connection pool and large-result budget are shared out between its workers, so the database
sees as many connections as with one process.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from . import SERVICES, __version__
from .config import ConfigError, GatekeeperConfig, ProxyConfig, ServiceConfig, TrustedConfig, load_config
from .web import SERVICE


def build_app(config: ServiceConfig, limits: object = None) -> web.Application:
    if isinstance(config, GatekeeperConfig):
        from .gatekeeper import create_gatekeeper_app

        return create_gatekeeper_app(config, limits=limits)  # type: ignore[arg-type]
    if isinstance(config, TrustedConfig):
        from .trusted import create_trusted_app

        return create_trusted_app(config)
    if isinstance(config, ProxyConfig):
        from .proxy import create_proxy_app

        return create_proxy_app(config)
    raise TypeError(f'unknown configuration type {type(config).__name__}')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m sqlgate', description='Run one sqlgate service.')
    parser.add_argument('service', choices=SERVICES)
    parser.add_argument('--config', required=True, metavar='PATH', help='the JSON configuration file')
    parser.add_argument('--check', action='store_true', help='validate the configuration and exit')
    parser.add_argument('--version', action='version', version=f'sqlgate {__version__}')
    args = parser.parse_args(argv)
    try:
        config = load_config(args.service, args.config)
        app = build_app(config)  # reads the API keys file too, so --check covers it
    except ConfigError as exc:
        print(f'sqlgate {args.service}: configuration error: {exc}', file=sys.stderr)
        return 2
    if args.check:
        print(f'sqlgate {args.service}: configuration OK')
        return 0
    from .workers import worker_count

    count = worker_count(config.server.workers)
    if isinstance(config, ProxyConfig) and count > config.pool.size:
        count = config.pool.size  # every worker needs a connection of each kind
    if count == 1:
        return serve(app, config)
    del app  # each worker builds its own after the fork
    return supervise(args.service, config, count)


def serve(app: web.Application, config: ServiceConfig) -> int:
    from .web import run, setup_logging

    handler = setup_logging(app[SERVICE].name, config.server.log_level)
    app[SERVICE].access_sink = handler.write_line
    try:
        run(app, config.server)
    finally:
        handler.close()
    return 0


def per_worker(config: ServiceConfig, count: int) -> ServiceConfig:
    """The configuration of one of ``count`` workers: the port shared, a proxy's pool shared out."""
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, reuse_port=True))
    if isinstance(config, ProxyConfig):
        pool = config.pool
        config = dataclasses.replace(config, pool=dataclasses.replace(
            pool, size=max(1, pool.size // count), large_results=max(1, pool.large_results // count)))
    return config


def supervise(service: str, config: ServiceConfig, count: int) -> int:
    from .shared import SharedLimits
    from .web import JsonFormatter
    from .workers import Supervisor, WorkerMetrics

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(config.server.log_level.upper())
    limits = SharedLimits(count) if isinstance(config, GatekeeperConfig) else None
    # systemd's RuntimeDirectory= sets RUNTIME_DIRECTORY; elsewhere a private directory of this run.
    directory = Path(os.environ.get('RUNTIME_DIRECTORY') or tempfile.mkdtemp(prefix=f'sqlgate-{service}-'))
    worker_config = per_worker(config, count)

    def start_worker(index: int) -> int:
        if limits is not None:
            limits.worker = index
        app = build_app(worker_config, limits)
        metrics = WorkerMetrics(app, index, count, directory)
        app[SERVICE].gather = metrics.gather
        app[SERVICE].worker, app[SERVICE].workers = index, count
        app.on_startup.append(metrics.start)
        app.on_cleanup.append(metrics.stop)
        return serve(app, worker_config)

    return Supervisor(count, start_worker, limits.clear_worker if limits is not None else None).run()


if __name__ == '__main__':
    sys.exit(main())
