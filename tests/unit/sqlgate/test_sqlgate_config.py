# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Configuration loading: valid files per service, and errors that name the bad key."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest

from sqlgate.__main__ import main
from sqlgate.config import ConfigError, GatekeeperConfig, ProxyConfig, TrustedConfig, load_config, parse_config

SECRET = 's3cret-token-' + 'x' * 20


@pytest.fixture
def files(tmp_path):
    (tmp_path / 'secret').write_text(SECRET + '\n')
    (tmp_path / 'password').write_text('db password with spaces\n')
    (tmp_path / 'keys').write_text('alice:' + 'ab' * 32 + '\n')
    (tmp_path / 'empty').write_text('\n')
    (tmp_path / 'short').write_text('short\n')
    return tmp_path


def gatekeeper(files):
    return {'api_keys_file': str(files / 'keys'),
            'upstream': {'url': 'http://trusted:8000', 'secret_file': str(files / 'secret')}}


def trusted(files):
    return {'allowed_clients': ['10.0.1.5', '10.0.2.0/24'], 'client_secret_file': str(files / 'secret'),
            'upstream': {'url': 'http://proxy:9000/', 'secret_file': str(files / 'secret')}}


def proxy(files):
    return {'allowed_clients': ['10.0.3.7'], 'client_secret_file': str(files / 'secret'),
            'database': {'user': 'sqlgate', 'password_file': str(files / 'password')},
            'scopes': {'default': {'read_user': 'sg_default_r', 'read_password_file': str(files / 'password'),
                                   'write_user': 'sg_default_w', 'write_password_file': str(files / 'secret')},
                       'readonly': {'read_user': 'sg_readonly_r', 'read_password_file': str(files / 'secret'),
                                    'max_affected_rows': 0, 'max_result_bytes': 2048}},
            'nodes': [{'name': 'manager', 'host': '10.0.4.2', 'role': 'manager'},
                      {'name': 'worker1', 'host': '10.0.4.3', 'port': 3307, 'role': 'worker'}]}


def test_minimal_configs_get_the_defaults(files):
    gk = parse_config('gatekeeper', gatekeeper(files))
    assert isinstance(gk, GatekeeperConfig)
    assert (gk.server.host, gk.server.port, gk.server.max_body_bytes) == ('0.0.0.0', 3000, 65536)  # noqa: S104
    assert gk.rate_limit.rate == 20 and gk.rate_limit.burst == 40
    assert gk.upstream.secret == SECRET.encode()
    tr = parse_config('trusted', trusted(files))
    assert isinstance(tr, TrustedConfig)
    assert tr.server.port == 8000 and tr.upstream.url == 'http://proxy:9000'
    assert tr.policy.select_limit_cap == 1000 and 'actor' in tr.policy.read_tables
    assert set(tr.scopes) == {'default'} and ('staff', 'password') in tr.policy.hidden_columns
    px = parse_config('proxy', proxy(files))
    assert isinstance(px, ProxyConfig)
    assert px.server.port == 9000 and px.nodes[1].port == 3307 and px.nodes[0].port == 3306
    assert px.database.password == b'db password with spaces'
    assert px.health.hysteresis == pytest.approx(0.0005)
    assert px.health.probe_query == 'SELECT 1'
    default, readonly = px.scopes['default'], px.scopes['readonly']
    assert (default.read.user, default.write.user) == ('sg_default_r', 'sg_default_w')
    assert (default.max_affected_rows, default.max_result_bytes, default.statement_timeout) == (100, 4194304, 5.0)
    assert readonly.write is None and readonly.max_result_bytes == 2048
    assert px.probe_credentials.user == 'sqlgate'
    custom = proxy(files)
    custom['health'] = {'probe_query': 'SELECT 1 FROM sakila.language LIMIT 1'}
    assert parse_config('proxy', custom).health.probe_query == 'SELECT 1 FROM sakila.language LIMIT 1'


def test_secrets_never_appear_in_repr(files):
    for service, data in (('gatekeeper', gatekeeper(files)), ('trusted', trusted(files)), ('proxy', proxy(files))):
        text = repr(parse_config(service, data))
        assert SECRET not in text and 'db password' not in text


def test_policy_and_rate_limits_are_configurable(files):
    data = trusted(files)
    data['scopes'] = {'default': {}, 'reader': {
        'allowed_statements': ['select'], 'read_tables': ['Film'], 'write_tables': [], 'allowed_functions': ['UUID'],
        'hidden_columns': ['film.rating'], 'select_limit_cap': 5, 'database': 'shop', 'flavor': 'mysql'}}
    config = parse_config('trusted', data)
    policy = config.scopes['reader']
    assert policy.allowed_statements == {'SELECT'} and policy.read_tables == {'film'} and not policy.write_tables
    assert policy.allowed_functions == {'uuid'} and policy.select_limit_cap == 5 and policy.database == 'shop'
    assert policy.hidden_columns == {('film', 'rating')} and policy.flavor == 'mysql'
    assert config.policy == config.scopes['default'] and config.policy.flavor == 'mariadb'
    data = gatekeeper(files)
    data['rate_limit'] = {'rate': 5, 'burst': 10, 'per_key': {'alice': {'rate': 100}}}
    config = parse_config('gatekeeper', data)
    assert config.rate_limit_per_key['alice'].rate == 100 and config.rate_limit_per_key['alice'].burst == 10


@pytest.mark.parametrize(('service', 'change', 'message'), [
    ('gatekeeper', lambda d: d.pop('api_keys_file'), "'api_keys_file' is required"),
    ('gatekeeper', lambda d: d.update(rate_limt={}), "unknown config key 'rate_limt'"),
    ('gatekeeper', lambda d: d.update(rate_limit={'burst': -1}), "'rate_limit.burst'"),
    ('gatekeeper', lambda d: d.update(rate_limit={'rate': 0}), "'rate_limit.rate'"),
    ('gatekeeper', lambda d: d.update(port='3000'), "'port'"),
    ('gatekeeper', lambda d: d.update(port=70000), "'port'"),
    ('gatekeeper', lambda d: d.update(max_body_bytes=True), "'max_body_bytes'"),
    ('gatekeeper', lambda d: d.update(log_level='loud'), "'log_level'"),
    ('gatekeeper', lambda d: d['upstream'].update(url='trusted:8000'), "'upstream.url'"),
    ('gatekeeper', lambda d: d['upstream'].update(timeout=-1), "'upstream.timeout'"),
    ('gatekeeper', lambda d: d['upstream'].update(extra=1), "unknown config key 'upstream.extra'"),
    ('gatekeeper', lambda d: d.update(metrics_allowed_clients=['not-an-ip']), "'metrics_allowed_clients'"),
    ('trusted', lambda d: d.update(allowed_clients=['10.0.0.0/33']), "'allowed_clients'"),
    ('trusted', lambda d: d.update(allowed_clients=[]), "'allowed_clients'"),
    ('trusted', lambda d: d.pop('client_secret_file'), "'client_secret_file' is required"),
    ('trusted', lambda d: d.update(scopes={'default': {'select_limit_cap': 0}}), "'scopes.default.select_limit_cap'"),
    ('trusted', lambda d: d.update(scopes={'default': {'read_tables': 'actor'}}), "'scopes.default.read_tables'"),
    ('trusted', lambda d: d.update(scopes={'default': {'tables': []}}), "unknown config key 'scopes.default.tables'"),
    ('trusted', lambda d: d.update(scopes={'default': {'hidden_columns': ['password']}}), 'expected table.column'),
    ('trusted', lambda d: d.update(scopes={'default': {'allowed_statements': ['DROP']}}), 'DROP cannot be allowed'),
    ('trusted', lambda d: d.update(scopes={'Bad': {}}), "'scopes.Bad'"),
    ('trusted', lambda d: d.update(scopes={}), 'at least one scope'),
    ('trusted', lambda d: d.update(policy={}), "unknown config key 'policy'"),
    ('proxy', lambda d: d.pop('scopes'), "'scopes' is required"),
    ('proxy', lambda d: d['scopes']['default'].pop('read_user'), "'scopes.default.read_user' is required"),
    ('proxy', lambda d: d['scopes']['default'].update(max_affected_rows=-1), "'scopes.default.max_affected_rows'"),
    ('proxy', lambda d: d['scopes']['default'].update(max_result_bytes=10), "'scopes.default.max_result_bytes'"),
    ('proxy', lambda d: d['nodes'].append({'name': 'm2', 'host': 'h', 'role': 'manager'}), 'exactly one'),
    ('proxy', lambda d: d['nodes'].append({'name': 'manager', 'host': 'h', 'role': 'worker'}), 'unique'),
    ('proxy', lambda d: d['nodes'][1].update(role='replica'), "'nodes[1].role'"),
    ('proxy', lambda d: d['nodes'][1].update(name='bad name'), "'nodes[1].name'"),
    ('proxy', lambda d: d['nodes'][1].pop('host'), "'nodes[1].host' is required"),
    ('proxy', lambda d: d.update(nodes=[]), "'nodes'"),
    ('proxy', lambda d: d['database'].pop('user'), "'database.user' is required"),
    ('proxy', lambda d: d.update(pool={'size': 0}), "'pool.size'"),
    ('proxy', lambda d: d.update(health={'ewma_alpha': 1.5}), "'health.ewma_alpha'"),
    ('proxy', lambda d: d.update(health={'failure_threshold': 0}), "'health.failure_threshold'"),
    ('proxy', lambda d: d.update(health={'probe_query': 42}), "'health.probe_query'"),
])
def test_errors_name_the_key(files, service, change, message):
    data = {'gatekeeper': gatekeeper, 'trusted': trusted, 'proxy': proxy}[service](files)
    change(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(service, data)
    assert message in str(caught.value)


@pytest.mark.parametrize(('secret_file', 'message'), [
    ('missing', 'cannot read'),
    ('empty', 'is empty'),
    ('short', '16 or more printable ASCII'),
])
def test_secret_file_problems_name_the_key_not_the_secret(files, secret_file, message):
    data = trusted(files)
    data['client_secret_file'] = str(files / secret_file)
    with pytest.raises(ConfigError) as caught:
        parse_config('trusted', data)
    assert "'client_secret_file'" in str(caught.value) and message in str(caught.value)
    assert 'short\n' not in str(caught.value)


def test_load_config_reports_bad_json_and_missing_files(files):
    (files / 'bad.json').write_text('{"port": ')
    with pytest.raises(ConfigError, match='not valid JSON'):
        load_config('gatekeeper', files / 'bad.json')
    with pytest.raises(ConfigError, match='cannot read the config file'):
        load_config('gatekeeper', files / 'nope.json')
    (files / 'list.json').write_text('[]')
    with pytest.raises(ConfigError, match='expected a JSON object'):
        load_config('gatekeeper', files / 'list.json')


def test_cli_check_validates_and_exits(files, capsys):
    (files / 'gk.json').write_text(json.dumps(gatekeeper(files)))
    assert main(['gatekeeper', '--config', str(files / 'gk.json'), '--check']) == 0
    assert 'configuration OK' in capsys.readouterr().out
    broken = gatekeeper(files)
    broken['api_keys_file'] = str(files / 'secret')  # not name:sha256 lines
    (files / 'gk.json').write_text(json.dumps(broken))
    assert main(['gatekeeper', '--config', str(files / 'gk.json'), '--check']) == 2
    err = capsys.readouterr().err
    assert "'api_keys_file'" in err and 'line 1' in err and SECRET not in err


def test_cli_check_builds_the_proxy_and_trusted_apps(files, capsys, caplog):
    caplog.set_level(logging.INFO)
    for service, data in (('trusted', trusted(files)), ('proxy', proxy(files))):
        (files / f'{service}.json').write_text(json.dumps(data))
        assert main([service, '--config', str(files / f'{service}.json'), '--check']) == 0
    assert capsys.readouterr().out.count('configuration OK') == 2


def self_signed(directory):
    cert, key = directory / 'cert.pem', directory / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', str(key), '-out', str(cert),
                    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_is_optional_and_checked(files):
    cert, key = self_signed(files)
    data = gatekeeper(files)
    assert parse_config('gatekeeper', data).server.ssl_context is None
    data.update(tls_cert_file=cert, tls_key_file=key)
    data['upstream'].update(url='https://trusted:8000', ca_file=cert)
    config = parse_config('gatekeeper', data)
    assert config.server.ssl_context is not None and config.upstream.ssl_context is not None
    for change, message in (
        (lambda d: d.pop('tls_key_file'), 'go together'),
        (lambda d: d.update(tls_key_file=str(files / 'secret')), "'tls_cert_file'"),
        (lambda d: d['upstream'].update(ca_file=str(files / 'nope.pem')), "'upstream.ca_file'"),
        (lambda d: d['upstream'].update(url='http://trusted:8000'), 'only used with an https url'),
    ):
        broken = json.loads(json.dumps(data))
        change(broken)
        with pytest.raises(ConfigError, match=message):
            parse_config('gatekeeper', broken)
