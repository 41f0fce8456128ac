# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The injection corpora of tests/e2e/data, offline: each entry through the request parser and the validator.

The end-to-end test (tests/e2e/test_injection.py) needs the lab; this one needs nothing and catches, in CI, a pinned
code the validator does not give, or a statement meant to reach the database that the validator already refuses.
Each entry's body is built as the e2e client sends it (``corpus.request_body``, the e2e client's own) and goes
where the chain sends it: a body larger than the gatekeeper's limit is 413; else ``parse_query_request`` (which the
gatekeeper and the trusted host both run) with the default limits; else ``validate`` with the policy of the entry's
API key (``default``: ``Policy()``; ``readonly``: SELECT only, nothing writable, as inventory/group_vars/all/policy.yml
gives it). Entries sent without a key test the gatekeeper's authentication and are left to the e2e test.

* a hostile entry that pins a code refused before the database must get exactly that status and code;
* a hostile entry that pins a database code (``by: database``), and a harmless one, must be accepted: the
  statement really reaches the server;
* a ``safe`` entry is accepted or gets its pinned code;
* every legitimate entry is accepted as a SELECT.

The code lists and categories are read from the e2e test module itself, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from corpus import load_corpus, request_body

from sqlgate.config import DEFAULT_BODY_LIMITS, DEFAULT_MAX_QUERY_LENGTH
from sqlgate.errors import ApiError
from sqlgate.request import RequestLimits, parse_query_request
from sqlgate.validate import Policy, Rejection, validate

ROOT = Path(__file__).resolve().parents[3]
INJECTION_TEST = ROOT / 'tests' / 'e2e' / 'test_injection.py'
LIMITS = RequestLimits(DEFAULT_MAX_QUERY_LENGTH, 100)
POLICIES = {
    'default': Policy(),
    'readonly': Policy(allowed_statements=frozenset({'SELECT'}), write_tables=frozenset()),
}


def _constants(*names: str) -> dict[str, Any]:
    """Module-level literals of the e2e test, read without importing it (it needs docker and the lab)."""
    found = {}
    for node in ast.parse(INJECTION_TEST.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(node.value)
    assert set(found) == set(names), f'{INJECTION_TEST} no longer defines {set(names) - set(found)}'
    return found


HOSTILE = load_corpus('hostile')
LEGITIMATE = load_corpus('legitimate')
E2E = _constants('HOSTILE_CATEGORIES', 'LEGITIMATE_CATEGORIES', 'CODE_STATUS', 'DATABASE_CODES', 'KEYS')


def media_type(content_type: str | None) -> str:
    """What aiohttp's ``request.content_type`` gives for the header: its media type, lower case, without
    parameters; ``application/octet-stream`` when there is none."""
    if not content_type:
        return 'application/octet-stream'
    return content_type.split(';', 1)[0].strip().lower()


def outcome(entry: dict[str, Any]) -> tuple[int, str, str] | None:
    """(status, code, reason) of the refusal before the database, or None: the statement goes to the server."""
    data, content_type = request_body(entry)
    if len(data) > DEFAULT_BODY_LIMITS['gatekeeper']:
        return 413, 'payload_too_large', f'{len(data)} bytes'
    try:
        request = parse_query_request(data, media_type(content_type), LIMITS)
    except ApiError as error:
        return error.status, error.code, error.message
    result = validate(request.query, list(request.params), POLICIES[entry.get('key', 'default')])
    if isinstance(result, Rejection):
        return result.status, result.code, result.reason
    return None


def test_the_corpora_are_well_formed() -> None:
    problems = []
    for corpus, entries in (('hostile', HOSTILE), ('legitimate', LEGITIMATE)):
        ids = [entry['id'] for entry in entries]
        if len(ids) != len(set(ids)):
            problems.append(f'{corpus}: ids are not unique')
    if {entry['category'] for entry in HOSTILE} != E2E['HOSTILE_CATEGORIES']:
        problems.append('hostile categories differ from HOSTILE_CATEGORIES')
    if {entry['category'] for entry in LEGITIMATE} != E2E['LEGITIMATE_CATEGORIES']:
        problems.append('legitimate categories differ from LEGITIMATE_CATEGORIES')
    for entry in HOSTILE:
        where, code = entry['id'], entry.get('code')
        if entry.get('key', 'default') not in E2E['KEYS']:
            problems.append(f'{where}: unknown key')
        if entry['expect'] == 'harmless':
            if 'code' in entry or 'status' in entry:
                problems.append(f'{where}: harmless, yet pins a refusal')
        elif code not in E2E['CODE_STATUS'] or entry.get('status') != E2E['CODE_STATUS'][code]:
            problems.append(f'{where}: expect {entry["expect"]} needs a known code and its status: {code}')
        elif (code in E2E['DATABASE_CODES']) != (entry.get('by') == 'database'):
            problems.append(f'{where}: `by: database` goes with exactly the database codes ({code})')
        if entry.get('write_rows') and entry['expect'] == 'refuse':
            problems.append(f'{where}: a refusal writes nothing')
    for entry in LEGITIMATE:
        if not isinstance(entry.get('query'), str) or set(entry) - {'id', 'category', 'query', 'params', 'ordered',
                                                                      'expect_rows'}:
            problems.append(f'{entry["id"]}: a legitimate entry is a query with optional params and expectations')
    assert problems == []


@pytest.mark.parametrize('entry', [e for e in HOSTILE if e.get('key', 'default') is not None],
                         ids=lambda entry: entry['id'])
def test_hostile_entry_meets_the_validator(entry: dict[str, Any]) -> None:
    got = outcome(entry)
    code = entry.get('code')
    text = entry.get('query') or entry.get('raw') or json.dumps(entry.get('body') or entry.get('long'))
    if entry['expect'] == 'harmless' or code in E2E['DATABASE_CODES']:
        assert got is None, f'refused before the database with {got}; expected it to reach the server: {text!r:.300}'
    elif entry['expect'] == 'refuse':
        assert got is not None, f'accepted; expected {entry["status"]} {code}: {text!r:.300}'
        assert got[:2] == (entry['status'], code), f'{got}; expected {entry["status"]} {code}: {text!r:.300}'
    else:
        assert got is None or got[:2] == (entry['status'], code), f'{got}; expected {code} or a 200: {text!r:.300}'


@pytest.mark.parametrize('entry', LEGITIMATE, ids=lambda entry: entry['id'])
def test_legitimate_entry_is_accepted_as_a_select(entry: dict[str, Any]) -> None:
    result = validate(entry['query'], entry.get('params', []), POLICIES['default'])
    assert not isinstance(result, Rejection), f'{result.status} {result.code}: {result.reason}'
    assert result.statement == 'SELECT'
