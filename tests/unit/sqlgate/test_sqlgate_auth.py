# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""API keys, tier secrets, address allow-lists."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sqlgate.auth import ApiKey, find_key_name, hash_key, parse_api_keys, presented_key, secret_matches
from sqlgate.web import address_allowed, valid_request_id

ALICE = 'alice-key-' + 'a' * 40
BOB = 'bob-key-' + 'b' * 40


def keys():
    return parse_api_keys(f'# issued by the playbook\n\nalice:{hash_key(ALICE)}\nbob:{hash_key(BOB).upper()}\n')


def test_the_key_file_maps_names_to_digests():
    parsed = keys()
    assert set(parsed) == {'alice', 'bob'}
    assert all(isinstance(key, ApiKey) and len(key.digest) == 32 for key in parsed.values())
    assert parsed['alice'].digest == bytes.fromhex(hash_key(ALICE))


def test_old_lines_get_the_default_scope_and_new_lines_their_own():
    parsed = parse_api_keys(f'alice:{hash_key(ALICE)}\nbob:reporting_2:{hash_key(BOB)}\nc.d@e-f:x:{"0" * 64}\n')
    assert parsed['alice'] == ApiKey(bytes.fromhex(hash_key(ALICE)), 'default')
    assert parsed['bob'].scope == 'reporting_2' and parsed['bob'].digest == bytes.fromhex(hash_key(BOB))
    assert parsed['c.d@e-f'].scope == 'x'
    assert find_key_name(BOB, parsed) == 'bob'
    digest, scope = parsed['bob']  # a tuple too
    assert scope == 'reporting_2' and digest == parsed['bob'].digest


@pytest.mark.parametrize(('text', 'message'), [
    ('alice', 'line 1'),
    ('alice:1234', 'line 1'),
    (f'ok:{"0" * 64}\nbad name:{"0" * 64}', 'line 2'),
    (f'a:{"0" * 64}\na:{"1" * 64}', 'twice'),
    (f'a:{"0" * 64}\na:s:{"1" * 64}', 'twice'),
    ('# nothing\n', 'no key'),
    (f'a:Admin:{"0" * 64}', 'line 1'),  # scopes are lowercase
    (f'a:1st:{"0" * 64}', 'line 1'),  # and start with a letter
    (f'a:{"s" * 33}:{"0" * 64}', 'line 1'),  # 32 characters at most
    (f'a:s-t:{"0" * 64}', 'line 1'),
    (f'a:s:t:{"0" * 64}', 'line 1'),
    (f'a::{"0" * 64}', 'line 1'),
])
def test_a_malformed_key_file_names_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_api_keys(text)


def test_a_parse_error_never_quotes_the_line():
    digest = hash_key(ALICE)
    with pytest.raises(ValueError) as caught:
        parse_api_keys(f'alice:BAD:{digest}')
    assert digest not in str(caught.value) and 'alice' not in str(caught.value)


def test_a_scope_of_32_characters_is_accepted():
    assert parse_api_keys(f'a:{"s" * 32}:{"0" * 64}')['a'].scope == 's' * 32


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


# -- the gatekeeper role writes what parse_api_keys reads ------------------------------------------
ROLES = Path(__file__).resolve().parents[3] / 'roles'


def render(expression: str, variables: dict) -> object:
    template = pytest.importorskip('ansible.template')
    from ansible.parsing.dataloader import DataLoader

    return template.Templar(loader=DataLoader(), variables=variables).template(template.trust_as_template(expression))


def role_tasks(path: str) -> list:
    yaml = pytest.importorskip('yaml')
    return yaml.safe_load((ROLES / path).read_text(encoding='utf-8'))


def test_the_role_writes_name_scope_digest_lines_the_gatekeeper_parses():
    block = next(task for task in role_tasks('gatekeeper/tasks/main.yml') if task.get('name') == 'Write the API keys')
    copy = next(task for task in block['block'] if 'ansible.builtin.copy' in task)
    assert copy['notify'] == 'Reload gatekeeper' and copy['no_log'] is True
    keys = [{'name': 'alice', 'key': ALICE}, {'name': 'bob', 'key': BOB, 'scope': 'reporting'}]
    text = render(copy['ansible.builtin.copy']['content'], {'gatekeeper_api_keys': keys})
    assert text == f'alice:default:{hash_key(ALICE)}\nbob:reporting:{hash_key(BOB)}\n'
    assert ALICE not in text
    assert parse_api_keys(text) == {'alice': ApiKey(bytes.fromhex(hash_key(ALICE)), 'default'),
                                    'bob': ApiKey(bytes.fromhex(hash_key(BOB)), 'reporting')}


@pytest.mark.parametrize(('scope', 'valid'), [(None, True), ('reporting_2', True), ('Admin', False),
                                              ('1st', False), ('s' * 33, False), (7, False)])
def test_the_role_preflight_checks_scopes(scope, valid):
    check = next(task for task in role_tasks('gatekeeper/tasks/preflight.yml') if task['name'] == 'Check the API keys')
    key = {'name': 'alice', 'key': ALICE} if scope is None else {'name': 'alice', 'key': ALICE, 'scope': scope}
    results = [render('{{ ' + condition + ' }}', {'gatekeeper_api_keys': [key]})
               for condition in check['ansible.builtin.assert']['that']]
    assert all(results) is valid, results


def test_the_gatekeeper_is_reloaded_not_restarted_for_a_key_change():
    handlers = role_tasks('gatekeeper/handlers/main.yml')
    assert [(h['name'], h['ansible.builtin.systemd_service']['state']) for h in handlers] == [
        ('Reload gatekeeper', 'reloaded')]
    unit = (ROLES / '_sqlgate' / 'templates' / 'sqlgate.service.j2').read_text(encoding='utf-8')
    assert 'ExecReload=/bin/kill -HUP $MAINPID' in unit
    secrets = next(task for task in role_tasks('gatekeeper/tasks/main.yml') if 'include_role' in str(task))
    assert 'api_keys' not in secrets['vars']['_sqlgate_secrets']  # not written by _sqlgate, which restarts
    for conditions, running in (([], False), (['ActiveState', 'ExecReload'], True), (['ActiveState'], False)):
        status = {'ActiveState': 'active'} if 'ActiveState' in conditions else {'ActiveState': 'inactive'}
        if 'ExecReload' in conditions:
            status['ExecReload'] = '{ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID ; ignore_errors=no }'
        results = [render('{{ ' + condition + ' }}', {'__gatekeeper_unit': {'status': status}})
                   for condition in handlers[0]['when']]
        assert all(results) is running, (conditions, results)
