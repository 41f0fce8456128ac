# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The request body schema: JSON object with query and optional params."""

from __future__ import annotations

import json

import pytest

from sqlgate.errors import ApiError
from sqlgate.request import QueryRequest, RequestLimits, parse_query_request

LIMITS = RequestLimits(max_query_length=100, max_params=3)


def parse(body, content_type='application/json'):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_query_request(raw, content_type, LIMITS)


def test_a_valid_request():
    assert parse({'query': 'SELECT 1'}) == QueryRequest('SELECT 1', ())
    assert parse({'query': 'SELECT %s', 'params': ['a', 1.5, None]}) == QueryRequest('SELECT %s', ('a', 1.5, None))
    assert parse({'query': 'SELECT %s', 'params': [True]}).params == (True,)


@pytest.mark.parametrize(('body', 'content_type', 'code'), [
    ({'query': 'SELECT 1'}, 'text/plain', 'unsupported_content_type'),
    ({'query': 'SELECT 1'}, '', 'unsupported_content_type'),
    (b'{"query": ', 'application/json', 'invalid_json'),
    (b'\xff\xfe', 'application/json', 'invalid_json'),
    (b'{"query": NaN}', 'application/json', 'invalid_json'),
    (b'{"query": "SELECT 1", "params": [Infinity]}', 'application/json', 'invalid_json'),
    (b'[' * 100000 + b']' * 100000, 'application/json', 'invalid_json'),
    (b'1' * 5000, 'application/json', 'invalid_json'),
    ([1, 2], 'application/json', 'invalid_request'),
    ('SELECT 1', 'application/json', 'invalid_request'),
    (None, 'application/json', 'invalid_request'),
    ({}, 'application/json', 'invalid_request'),
    ({'query': 'SELECT 1', 'extra': 1}, 'application/json', 'invalid_request'),
    ({'query': 1}, 'application/json', 'invalid_request'),
    ({'query': ''}, 'application/json', 'invalid_request'),
    ({'query': ' \n\t'}, 'application/json', 'invalid_request'),
    ({'query': 'x' * 101}, 'application/json', 'query_too_long'),
    ({'query': 'SELECT 1', 'params': 'a'}, 'application/json', 'invalid_request'),
    ({'query': 'SELECT 1', 'params': None}, 'application/json', 'invalid_request'),
    ({'query': 'SELECT 1', 'params': [1, 2, 3, 4]}, 'application/json', 'invalid_request'),
    ({'query': 'SELECT 1', 'params': [[1]]}, 'application/json', 'invalid_params'),
    ({'query': 'SELECT 1', 'params': [{'a': 1}]}, 'application/json', 'invalid_params'),
    (b'{"query": "SELECT 1", "params": [1e400]}', 'application/json', 'invalid_params'),
    (b'{"query": "SELECT \\ud800"}', 'application/json', 'invalid_request'),
    (b'{"query": "SELECT %s", "params": ["\\udfff"]}', 'application/json', 'invalid_params'),
])
def test_malformed_requests_are_400_with_a_code(body, content_type, code):
    with pytest.raises(ApiError) as caught:
        parse(body, content_type)
    assert caught.value.status == 400
    assert caught.value.code == code
    assert caught.value.message


def test_an_unknown_key_is_named_but_truncated():
    with pytest.raises(ApiError) as caught:
        parse({'query': 'SELECT 1', 'k' * 500: 1})
    assert 'kkk' in caught.value.message and len(caught.value.message) < 150
