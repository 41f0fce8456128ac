# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""sqlgate: the gatekeeper, trusted host and SQL proxy of cloudpatterns.mysql, in one package."""

from __future__ import annotations

__version__ = '1.0.0'
SERVICES = ('gatekeeper', 'trusted', 'proxy')
