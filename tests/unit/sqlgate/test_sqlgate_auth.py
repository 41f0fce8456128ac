# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""API keys, tier secrets, address allow-lists."""

from __future__ import annotations

import ipaddress

import pytest

from sqlgate.auth import find_key_name, hash_key, parse_api_keys, presented_key, secret_matches
from sqlgate.web import address_allowed, valid_request_id

ALICE = 'alice-key-' + 'a' * 40
BOB = 'bob-key-' + 'b' * 40


def keys():
    return parse_api_keys(f'# issued by the playbook\n\nalice:{hash_key(ALICE)}\nbob:{hash_key(BOB).upper()}\n')


def test_the_key_file_maps_names_to_digests():
    parsed = keys()
    assert set(parsed) == {'alice', 'bob'}
    assert all(len(digest) == 32 for digest in parsed.values())


@pytest.mark.parametrize(('text', 'message'), [
    ('alice', 'line 1'),
    ('alice:1234', 'line 1'),
    (f'ok:{"0" * 64}\nbad name:{"0" * 64}', 'line 2'),
    (f'a:{"0" * 64}\na:{"1" * 64}', 'twice'),
    ('# nothing\n', 'no key'),
])
def test_a_malformed_key_file_names_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_api_keys(text)


def test_find_key_name():
    parsed = keys()
    assert find_key_name(ALICE, parsed) == 'alice'
    assert find_key_name(BOB, parsed) == 'bob'
    assert find_key_name(ALICE + 'x', parsed) is None
    assert find_key_name('', parsed) is None
    assert find_key_name(hash_key(ALICE), parsed) is None  # the digest is not the key


@pytest.mark.parametrize(('headers', 'key'), [
    ({'Authorization': 'Bearer abc'}, 'abc'),
    ({'Authorization': 'bearer  abc '}, 'abc'),
    ({'Authorization': 'Basic abc'}, None),
    ({'Authorization': 'Bearer '}, None),
    ({'X-API-Key': 'abc'}, 'abc'),
    ({'X-API-Key': '  '}, None),
    ({'Authorization': 'Basic x', 'X-API-Key': 'abc'}, None),
    ({}, None),
])
def test_presented_key(headers, key):
    assert presented_key(headers) == key


def test_secret_matches():
    assert secret_matches('tier-secret-0123456789', b'tier-secret-0123456789')
    assert not secret_matches('tier-secret-012345678', b'tier-secret-0123456789')
    assert not secret_matches(None, b'tier-secret-0123456789')
    assert not secret_matches('\udcff', b'tier-secret-0123456789')


@pytest.mark.parametrize(('remote', 'allowed'), [
    ('10.0.1.5', True),
    ('10.0.2.77', True),
    ('10.0.3.1', False),
    ('::ffff:10.0.1.5', True),
    ('fe80::1%eth0', False),
    ('2001:db8::5', True),
    (None, False),
    ('not-an-address', False),
])
def test_address_allowed(remote, allowed):
    networks = [ipaddress.ip_network(n) for n in ('10.0.1.5/32', '10.0.2.0/24', '2001:db8::/64')]
    assert address_allowed(remote, networks) is allowed


@pytest.mark.parametrize(('value', 'valid'), [
    ('0123456789abcdef0123456789abcdef', True),
    ('req-2024.01_a', True),
    ('short', False),
    ('x' * 65, False),
    ('bad id with spaces', False),
    ('-leading-dash', False),
    ('line\nbreak-123456', False),
    (None, False),
])
def test_request_id_format(value, valid):
    assert valid_request_id(value) is valid
