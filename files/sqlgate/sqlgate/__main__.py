# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""``python -m sqlgate {gatekeeper|trusted|proxy} --config PATH [--check]``.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or a successful ``--check``; 2 when the
configuration is wrong (one line on stderr naming the key; secrets are never printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aiohttp import web

from . import SERVICES, __version__
from .config import ConfigError, GatekeeperConfig, ProxyConfig, ServiceConfig, TrustedConfig, load_config


def build_app(config: ServiceConfig) -> web.Application:
    if isinstance(config, GatekeeperConfig):
        from .gatekeeper import create_gatekeeper_app

        return create_gatekeeper_app(config)
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
    from .web import run, setup_logging

    handler = setup_logging(args.service, config.server.log_level)
    try:
        run(app, config.server)
    finally:
        handler.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
