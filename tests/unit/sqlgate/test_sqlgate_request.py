# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The request body schema: JSON object with query and optional params."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


def test_the_default_query_length_cap_is_8192():
    assert RequestLimits().max_query_length == 8192
    assert parse_query_request(json.dumps({'query': 'x' * 8192}).encode(), 'application/json', RequestLimits())
    with pytest.raises(ApiError) as caught:
        parse_query_request(json.dumps({'query': 'x' * 8193}).encode(), 'application/json', RequestLimits())
    assert (caught.value.status, caught.value.code) == (400, 'query_too_long')


# -- the OpenAPI document: every code and header a client can see ------------------------------------
SOURCE = Path(__file__).resolve().parents[3] / 'files' / 'sqlgate' / 'sqlgate'
DOCUMENTED = {
    '400': ['query_too_long', 'unsupported_syntax', 'sql_error', 'constraint_violation', 'invalid_placeholders',
            'placeholder_mismatch', 'unterminated_literal', 'empty_query', 'unbalanced_parentheses',
            'too_deeply_nested', 'invalid_json', 'invalid_request', 'invalid_params', 'unsupported_content_type'],
    '401': ['missing_credentials', 'invalid_credentials'],
    '403': ['table_not_allowed', 'table_not_writable', 'column_not_allowed', 'function_not_allowed',
            'tautological_where', 'missing_where', 'statement_not_allowed', 'ambiguous_token', 'comment_not_allowed',
            'multiple_statements', 'character_not_allowed', 'into_file', 'into_not_allowed', 'procedure_not_allowed',
            'system_schema', 'schema_not_allowed', 'unknown_qualifier', 'unreadable_table_reference',
            'database_denied', 'too_many_rows', 'result_too_large'],
    '408': ['body_timeout'],
    '413': ['payload_too_large'],
    '422': ['statement_timeout'],
    '429': ['rate_limited', 'too_many_concurrent', 'user_limit'],
    '500': ['internal_error'],
    '502': ['upstream_response_too_large', 'upstream_unavailable', 'upstream_refused', 'bad_upstream_response',
            'node_failed'],
    '503': ['overloaded', 'no_healthy_node', 'pool_exhausted', 'write_conflict'],
    '504': ['upstream_timeout', 'node_timeout'],
}


def openapi() -> dict:
    return json.loads((SOURCE / 'openapi.json').read_text(encoding='utf-8'))


def resolve(document: dict, node: dict) -> dict:
    while '$ref' in node:
        target: object = document
        for part in node['$ref'].removeprefix('#/').split('/'):
            target = target[part]  # type: ignore[index]
        node = target  # type: ignore[assignment]
    return node


def test_the_openapi_document_is_valid_openapi_3_1():
    validator = pytest.importorskip('openapi_spec_validator')
    document = openapi()
    assert document['openapi'].startswith('3.1')
    validator.validate(document)


@pytest.mark.parametrize('route', ['/direct', '/random', '/customized'])
def test_every_status_lists_its_codes_and_headers(route):
    document = openapi()
    responses = {status: resolve(document, response)
                 for status, response in document['paths'][route]['post']['responses'].items()}
    for status, codes in DOCUMENTED.items():
        listed = responses[status]['x-error-codes']
        assert set(codes) <= set(listed), (status, set(codes) - set(listed))
        for code in codes:
            assert code in responses[status]['description'], (status, code)
    for status, response in responses.items():
        assert 'X-Request-Id' in response['headers'], status
    for status in ('429', '503'):
        assert resolve(document, responses[status]['headers']['Retry-After'])['schema']['pattern']
    assert 'WWW-Authenticate' in responses['401']['headers'] and 'Allow' in responses['405']['headers']
    assert {'X-Sqlgate-Node', 'X-Sqlgate-Kind'} <= set(responses['200']['headers'])
    parameters = [resolve(document, item) for item in document['paths'][route]['post']['parameters']]
    assert [(item['in'], item['name']) for item in parameters] == [('header', 'X-Request-Id')]
    schemes = document['components']['securitySchemes']
    assert schemes['bearerAuth']['scheme'] == 'bearer'
    assert (schemes['apiKeyHeader']['in'], schemes['apiKeyHeader']['name']) == ('header', 'X-API-Key')


def test_a_code_is_listed_under_one_status_only():
    document = openapi()
    seen: dict[str, str] = {}
    for status, response in document['paths']['/direct']['post']['responses'].items():
        for code in resolve(document, response).get('x-error-codes', []):
            assert code not in seen, f'{code} under {seen.get(code)} and {status}'
            seen[code] = status


def test_the_codes_the_gatekeeper_and_the_shared_modules_raise_are_documented_with_their_status():
    document = openapi()
    listed = {code: status for status, response in document['paths']['/direct']['post']['responses'].items()
              for code in resolve(document, response).get('x-error-codes', [])}
    raised = set()
    for module in ('gatekeeper.py', 'web.py', 'upstream.py', 'request.py', 'auth.py'):
        text = (SOURCE / module).read_text(encoding='utf-8')
        raised |= set(re.findall(r"(?:ApiError|_fail|_bad)\(\s*(?:(\d{3}),\s*)?'([a-z_]+)'", text))
    tier_only = {'tier_auth_failed', 'client_not_allowed'}  # answered to the tier in front, never relayed as is
    for status, code in raised:
        if code in tier_only:
            continue
        assert code in listed, code
        assert status in ('', listed[code]), (code, status, listed[code])


def test_the_health_schema_fits_the_bare_answer():
    health = openapi()['components']['schemas']['Health']
    assert health['required'] == ['status']
    assert health['properties']['status']['enum'] == ['ok', 'degraded', 'down']
