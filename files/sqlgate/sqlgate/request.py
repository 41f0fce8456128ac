# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The query request body ``{"query": "...", "params": [...]}``: parsing and schema checks.

Every tier parses the body itself: the trusted host and the proxy do not rely on the tier in front.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import ApiError
from .validate import Scalar, is_scalar

ALLOWED_KEYS = ('query', 'params')


@dataclass(frozen=True)
class RequestLimits:
    max_query_length: int = 8192
    max_params: int = 100


@dataclass(frozen=True)
class QueryRequest:
    query: str
    params: tuple[Scalar, ...]


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _reject_constant(name: str) -> object:
    raise ValueError(f'{name} is not valid JSON')


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + '...')


def _is_text(value: str) -> bool:
    """False for strings holding lone surrogates ("\\ud800" escapes), which no database can store."""
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def parse_query_request(body: bytes, content_type: str, limits: RequestLimits) -> QueryRequest:
    """The request, or ApiError(400) naming what is wrong."""
    if content_type != 'application/json':
        raise _bad('unsupported_content_type', 'the request body must be JSON (Content-Type: application/json)')
    try:
        document = json.loads(body.decode('utf-8'), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _bad('invalid_json', 'the request body is not valid UTF-8') from None
    except (ValueError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or 'too deeply nested'
        raise _bad('invalid_json', f'the request body is not valid JSON: {detail}') from None
    if not isinstance(document, dict):
        raise _bad('invalid_request', 'the request body must be a JSON object')
    for key in document:
        if key not in ALLOWED_KEYS:
            raise _bad('invalid_request', f'unknown key {_short(key)}; allowed keys are query and params')
    query = document.get('query')
    if 'query' not in document:
        raise _bad('invalid_request', "the key 'query' is missing")
    if not isinstance(query, str):
        raise _bad('invalid_request', "'query' must be a string")
    if not query.strip():
        raise _bad('invalid_request', "'query' must not be empty")
    if len(query) > limits.max_query_length:
        raise _bad(
            'query_too_long', f"'query' has {len(query)} characters; the maximum is {limits.max_query_length}"
        )
    if not _is_text(query):
        raise _bad('invalid_request', "'query' contains invalid Unicode (a lone surrogate)")
    params = document.get('params', [])
    if not isinstance(params, list):
        raise _bad('invalid_request', "'params' must be a list")
    if len(params) > limits.max_params:
        raise _bad('invalid_request', f"'params' has {len(params)} items; the maximum is {limits.max_params}")
    for index, value in enumerate(params):
        if not is_scalar(value):
            raise _bad('invalid_params', f'params[{index}] must be a string, a number, a boolean or null')
        if isinstance(value, str) and not _is_text(value):
            raise _bad('invalid_params', f'params[{index}] contains invalid Unicode (a lone surrogate)')
    return QueryRequest(query, tuple(params))
