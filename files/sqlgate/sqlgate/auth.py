# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Who may call: API keys at the gatekeeper, address allow-list plus shared secret between tiers.

API keys are random tokens of 32 bytes or more, so they are stored as an unsalted SHA-256: a salt
and a slow hash (bcrypt, scrypt) protect guessable passwords against dictionary attacks, and a
256-bit random key has no dictionary; a slow hash would only cost every request tens of
milliseconds. Comparisons run over every stored digest with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import NamedTuple

from aiohttp import web

from .config import Network, TierAuthConfig
from .errors import ApiError
from .web import address_allowed

TIER_SECRET_HEADER = 'X-Sqlgate-Secret'  # noqa: S105 - a header name
TIER_AUTH_CODES = frozenset({'client_not_allowed', 'tier_auth_failed'})
DEFAULT_SCOPE = 'default'
# name:scope:sha256hex, or the older name:sha256hex (scope 'default').
_KEY_LINE = re.compile(r'^([A-Za-z0-9_.@-]{1,64}):(?:([a-z][a-z0-9_]{0,31}):)?([0-9a-fA-F]{64})$')


class ApiKey(NamedTuple):
    """One line of the keys file: the SHA-256 of the key and the scope forwarded with its requests."""

    digest: bytes
    scope: str = DEFAULT_SCOPE


def hash_key(key: str) -> str:
    """The digest stored in the keys file for ``key``: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode('utf-8')).hexdigest()


def parse_api_keys(text: str) -> dict[str, ApiKey]:
    """``name:scope:sha256hex`` or ``name:sha256hex`` lines (blank lines and '#' comments ignored).

    The scope is ``[a-z][a-z0-9_]{0,31}``; without one it is ``default``. Errors name the line, never
    its content.
    """
    keys: dict[str, ApiKey] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            raise ValueError(
                f'line {number}: expected name:scope:sha256hex or name:sha256hex (64 hex digits; '
                'a scope is a lowercase letter then up to 31 lowercase letters, digits or _)'
            )
        name, scope, digest = match.groups()
        if name in keys:
            raise ValueError(f'line {number}: the key name {name} appears twice')
        keys[name] = ApiKey(bytes.fromhex(digest), scope or DEFAULT_SCOPE)
    if not keys:
        raise ValueError('the file holds no key')
    return keys


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>``, else from ``X-API-Key``."""
    authorization = headers.get('Authorization')
    if authorization:
        scheme, _, value = authorization.partition(' ')
        if scheme.lower() == 'bearer' and value.strip():
            return value.strip()
        return None
    key = headers.get('X-API-Key')
    return key.strip() if key and key.strip() else None


def find_key_name(presented: str, keys: Mapping[str, ApiKey | bytes]) -> str | None:
    """The name whose digest matches; every digest is compared, so timing says nothing."""
    digest = hashlib.sha256(presented.encode('utf-8', 'surrogateescape')).digest()
    found = None
    for name, stored in keys.items():
        if hmac.compare_digest(digest, stored.digest if isinstance(stored, ApiKey) else stored):
            found = name
    return found


def secret_matches(presented: str | None, secret: bytes) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode('utf-8', 'surrogateescape'), secret)


class TierGuard:
    """The trusted host and the proxy accept only the tier in front: its address and its secret."""

    def __init__(self, config: TierAuthConfig) -> None:
        self.networks: tuple[Network, ...] = config.allowed_clients
        self.secret = config.secret

    def address_allowed(self, remote: str | None) -> bool:
        return address_allowed(remote, self.networks)

    def check(self, request: web.Request) -> None:
        if getattr(request, 'tier_authenticated', False):
            return  # it came over the link, whose handshake checked the address and the secret
        if not address_allowed(request.remote, self.networks):
            raise ApiError(403, 'client_not_allowed', 'this service only accepts requests from its configured clients')
        if not secret_matches(request.headers.get(TIER_SECRET_HEADER), self.secret):
            raise ApiError(401, 'tier_auth_failed', 'the tier secret is missing or wrong')
