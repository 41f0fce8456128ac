# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The hop to the next tier (gatekeeper -> trusted host -> proxy): the link (``sqlgate://``, see
``link``) or HTTP (``http(s)://``, one keep-alive session).

Successful answers are relayed byte for byte. A timeout becomes 504, an unreachable or broken
upstream 502. When the next tier refuses *our* credentials (its 401/403 with a tier-auth code), the
client is not to blame: that becomes 502 and an error line in the log. An answer larger than
``max_response_bytes`` is not read to the end: 502 ``upstream_response_too_large``.

The request carries only the headers built here (content type, tier secret, request id and the
caller's ``extra`` ones): nothing the client sent is forwarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from .auth import TIER_AUTH_CODES, TIER_SECRET_HEADER
from .config import UpstreamConfig
from .errors import ApiError
from .link import AnswerTooLarge, LinkClient, LinkError
from .metrics import Registry
from .web import KEY_HEADER, KIND_HEADER, NODE_HEADER, REQUEST_ID_HEADER, SCOPE_HEADER

_RELAYED_HEADERS = (NODE_HEADER, KIND_HEADER, 'Retry-After')
_CHUNK = 65536


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Relayed:
    status: int
    body: bytes
    headers: dict[str, str]
    error_code: str | None
    error_message: str | None


class Upstream:
    def __init__(self, config: UpstreamConfig, peer: str, registry: Registry) -> None:
        self.config = config
        self.peer = peer
        self.session: aiohttp.ClientSession | None = None
        self.link: LinkClient | None = None
        self.logger = logging.getLogger('sqlgate.upstream')
        self.errors = registry.counter(
            'sqlgate_upstream_errors_total', 'Failed calls to the next tier, by error code.', ('code',)
        )
        self._headers = {
            'Content-Type': 'application/json',
            TIER_SECRET_HEADER: config.secret.decode('ascii'),
        }

    async def start(self) -> None:
        if self.config.url.startswith('sqlgate://'):
            host, _, port = self.config.url[len('sqlgate://'):].rpartition(':')
            self.link = LinkClient(host.strip('[]'), int(port), self.config.secret, connections=self.config.links,
                                   connect_timeout=self.config.connect_timeout,
                                   max_response_bytes=self.config.max_response_bytes)
            return
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections,
            limit_per_host=self.config.max_connections,
            ssl=self.config.ssl_context if self.config.ssl_context is not None else True,
        )
        timeout = aiohttp.ClientTimeout(total=self.config.timeout, sock_connect=self.config.connect_timeout)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=('User-Agent',))

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
        if self.session is not None:
            await self.session.close()

    def _fail(self, status: int, code: str, message: str) -> ApiError:
        self.errors.inc(code)
        return ApiError(status, code, message)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, in chunks, up to ``max_response_bytes`` (refused at once by a larger Content-Length)."""
        cap = self.config.max_response_bytes
        if response.content_length is not None and response.content_length > cap:
            raise _TooLarge(response.content_length)
        chunks = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise _TooLarge(size)
            chunks.append(chunk)
        return b''.join(chunks)

    async def post(
        self, path: str, body: bytes, request_id: str, headers: Mapping[str, str] | None = None
    ) -> Relayed:
        """POST ``body``; ``headers`` are added to this hop's own (they cannot replace the tier secret,
        the content type or the request id)."""
        if self.link is not None:
            return await self._post_link(path, body, request_id, headers or {})
        assert self.session is not None, 'Upstream.start() was not awaited'
        sent = dict(headers or {})
        sent.update(self._headers)
        sent[REQUEST_ID_HEADER] = request_id
        try:
            async with self.session.post(self.config.url + path, data=body, headers=sent) as response:
                try:
                    payload = await self._read(response)
                except _TooLarge as too_large:
                    response.close()  # the rest is not read: this connection cannot be reused
                    self.logger.error(
                        'the %s answered %s bytes or more, over max_response_bytes (%d)', self.peer,
                        too_large.args[0], self.config.max_response_bytes,
                        extra={'request_id': request_id, 'error': 'upstream_response_too_large'})
                    raise self._fail(
                        502, 'upstream_response_too_large', f'the {self.peer} sent an answer larger than this service '
                        'accepts') from None
                status = response.status
                content_type = response.content_type
                relayed = {name: response.headers[name] for name in _RELAYED_HEADERS if name in response.headers}
        except asyncio.TimeoutError:
            raise self._fail(
                504, 'upstream_timeout', f'the {self.peer} did not answer within {self.config.timeout:g} s'
            ) from None
        except aiohttp.ClientError:
            raise self._fail(502, 'upstream_unavailable', f'the {self.peer} cannot be reached') from None
        if content_type != 'application/json':
            raise self._fail(502, 'bad_upstream_response', f'the {self.peer} sent an answer that is not JSON')
        return self._relayed(status, payload, relayed, request_id)

    async def _post_link(self, path: str, body: bytes, request_id: str, headers: Mapping[str, str]) -> Relayed:
        assert self.link is not None
        meta = {'path': path, 'rid': request_id, 'key': headers.get(KEY_HEADER, ''),
                'scope': headers.get(SCOPE_HEADER, '')}
        try:
            answer, payload = await self.link.request(meta, body, self.config.timeout)
        except asyncio.TimeoutError:
            raise self._fail(
                504, 'upstream_timeout', f'the {self.peer} did not answer within {self.config.timeout:g} s'
            ) from None
        except AnswerTooLarge as too_large:
            self.logger.error(
                'the %s answered %s bytes, over max_response_bytes (%d)', self.peer, too_large.size,
                self.config.max_response_bytes, extra={'request_id': request_id, 'error': too_large.code})
            raise self._fail(502, too_large.code, f'the {self.peer} sent an answer larger than this service '
                                                  'accepts') from None
        except LinkError as error:
            if error.code == 'upstream_refused':
                self.logger.error('the %s refused our link: %s', self.peer, error,
                                  extra={'request_id': request_id, 'error': error.code})
                raise self._fail(502, 'upstream_refused', f'the {self.peer} refused this service; see its logs'
                                 ) from None
            if error.code == 'bad_upstream_response':
                raise self._fail(502, error.code, f'the {self.peer} sent a malformed answer') from None
            raise self._fail(502, 'upstream_unavailable', f'the {self.peer} cannot be reached') from None
        status = answer.get('status')
        relayed = answer.get('headers')
        if not isinstance(status, int) or not isinstance(relayed, dict):
            raise self._fail(502, 'bad_upstream_response', f'the {self.peer} sent a malformed answer')
        relayed = {name: str(relayed[name]) for name in _RELAYED_HEADERS if name in relayed}
        return self._relayed(status, payload, relayed, request_id)

    def _relayed(self, status: int, payload: bytes, relayed: dict[str, str], request_id: str) -> Relayed:
        code = message = None
        if status >= 400:
            code, message = _error_of(payload)
            if code is None:
                raise self._fail(502, 'bad_upstream_response', f'the {self.peer} sent a malformed error')
            if status in (401, 403) and code in TIER_AUTH_CODES:
                self.logger.error('the %s refused our credentials (%s)', self.peer, code,
                                  extra={'request_id': request_id, 'error': code})
                raise self._fail(502, 'upstream_refused', f'the {self.peer} refused this service; see its logs')
        return Relayed(status, payload, relayed, code, message)


def _error_of(payload: bytes) -> tuple[str | None, str | None]:
    try:
        document = json.loads(payload)
        error = document['error']
        code, message = error['code'], error['message']
    except (ValueError, TypeError, KeyError):
        return None, None
    if not isinstance(code, str) or not isinstance(message, str):
        return None, None
    return code, message
