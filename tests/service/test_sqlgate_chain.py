# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""End to end through gatekeeper -> trusted host -> proxy -> MariaDB with sakila."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sqlgate_support import API_KEY_NAME, access_lines

pytestmark = pytest.mark.asyncio(loop_scope='session')

FIRST_CUSTOMERS = [('MARY', 'SMITH'), ('PATRICIA', 'JOHNSON'), ('LINDA', 'WILLIAMS')]


@pytest.mark.parametrize('route', ['direct', 'random', 'customized'])
async def test_first_three_customers_on_every_route(chain, route):
    status, body, headers = await chain.query(route, 'SELECT * FROM customer LIMIT 3')
    assert status == 200, body
    first, last = body['columns'].index('first_name'), body['columns'].index('last_name')
    assert [(row[first], row[last]) for row in body['rows']] == FIRST_CUSTOMERS
    assert body['row_count'] == 3
    assert body['kind'] == 'read'
    assert body['route'] == route
    assert body['request_id'] == headers['X-Request-Id']
    if route == 'direct':
        assert body['node'] == 'manager'
    else:
        assert body['node'] in ('worker1', 'worker2')


async def test_insert_on_direct_then_read_back_on_customized(chain, database):
    status, body, _ = await chain.query(
        'direct', 'INSERT INTO actor (first_name, last_name) VALUES (%s, %s)', ['GRACE', 'HOPPER'])
    assert status == 200, body
    assert body['kind'] == 'write' and body['node'] == 'manager' and body['affected_rows'] == 1
    actor_id = body['last_insert_id']
    assert isinstance(actor_id, int) and actor_id > 200
    status, body, _ = await chain.query('customized', 'SELECT first_name, last_name FROM actor WHERE actor_id = %s',
                                        [actor_id])
    assert status == 200, body
    assert body['node'].startswith('worker') and body['rows'] == [['GRACE', 'HOPPER']]
    status, body, _ = await chain.query('direct', 'DELETE FROM actor WHERE actor_id = %s', [actor_id])
    assert (status, body['affected_rows'], body['last_insert_id']) == (200, 1, None)


@pytest.mark.parametrize('route', ['random', 'customized'])
async def test_writes_on_read_routes_still_go_once_to_the_manager(chain, route):
    status, body, _ = await chain.query(route, "UPDATE actor SET last_name = last_name WHERE actor_id = %s", [1])
    assert status == 200, body
    assert body['node'] == 'manager' and body['kind'] == 'write' and body['affected_rows'] == 0
    metrics = await chain.metrics()
    assert 'sqlgate_queries_total{node="manager",kind="write",outcome="ok"} 1' in metrics
    assert 'kind="write",outcome="ok"} 1' in metrics.replace('node="manager",', '')  # nowhere else


HOSTILE = [
    "Robert'); DROP TABLE students;--",
    "' OR '1'='1",
    '\\\'; SELECT SLEEP(5); -- ',
    '/*! UNION */ %s %% #',
    '"; DELETE FROM actor WHERE 1; --',
    '\x00\n\r\x1a\\0',
    'O\u2019Brien \u00e9\u00e8 \u2603 \U0001F600',
]


async def test_hostile_parameter_values_are_stored_verbatim(chain):
    ids = []
    for value in HOSTILE:
        status, body, _ = await chain.query(
            'direct', 'INSERT INTO film_text (film_id, title, description) VALUES (%s, %s, %s)',
            [9000 + len(ids), value[:255], value])
        assert status == 200, (value, body)
        ids.append(9000 + len(ids))
    try:
        for film_id, value in zip(ids, HOSTILE, strict=True):
            status, body, _ = await chain.query(
                'random', 'SELECT title, description FROM film_text WHERE film_id = %s AND title = %s',
                [film_id, value])
            assert status == 200, body
            assert body['rows'] == [[value, value]], value
        status, body, _ = await chain.query('direct', 'SELECT COUNT(*) FROM actor')
        assert body['rows'] == [[200]]
    finally:
        status, body, _ = await chain.query('direct', 'DELETE FROM film_text WHERE film_id >= %s', [9000])
        assert status == 200 and body['affected_rows'] == len(HOSTILE)


async def test_a_literal_percent_works_without_params(chain):
    status, body, _ = await chain.query('direct', "SELECT first_name FROM actor WHERE first_name LIKE 'PENE%' "
                                                  'ORDER BY actor_id')
    assert status == 200, body
    assert body['rows'] == [['PENELOPE'], ['PENELOPE'], ['PENELOPE'], ['PENELOPE']]
    status, body, _ = await chain.query('direct', "SELECT COUNT(*) FROM actor WHERE first_name LIKE 'PENE%%' "
                                                  'AND actor_id > %s', [0])
    assert body['rows'] == [[4]]


async def test_values_are_json_safe(chain):
    status, body, _ = await chain.query(
        'direct', "SELECT p.amount, p.payment_date, UNHEX('00FF'), CAST('abc' AS BINARY), f.special_features, "
                  "f.rental_rate, CAST('12:34:56' AS TIME), f.release_year, r.return_date "
                  'FROM payment p, film f, rental r WHERE p.payment_id = 1 AND f.film_id = 1 AND r.rental_id = 11496')
    assert status == 200, body
    amount, paid, binary, text, features, rate, time_value, year, returned = body['rows'][0]
    assert amount == '2.99' and rate == '0.99'
    assert paid == '2005-05-25T11:30:37'
    assert binary == {'base64': 'AP8='} and text == 'abc'
    assert features == 'Deleted Scenes,Behind the Scenes'
    assert time_value == '12:34:56'
    assert year == 2006 and returned is None


async def test_a_select_without_limit_is_capped(chain_factory):
    chain = await chain_factory(trusted={'scopes': {'default': {'select_limit_cap': 7}}})
    status, body, _ = await chain.query('random', 'SELECT * FROM payment')
    assert status == 200 and body['row_count'] == 7


async def test_database_errors_are_400_in_our_words_not_the_servers(chain, caplog):
    with caplog.at_level(logging.INFO, logger='sqlgate.access'):
        status, body, _ = await chain.query('direct', 'SELECT no_such_column FROM actor LIMIT 1')
    assert status == 400 and body['error'] == {'code': 'sql_error', 'message': 'unknown column no_such_column'}
    proxy_line = access_lines(caplog, 'proxy')[-1]
    assert 'MySQL error 1054' in proxy_line['db_error']  # the server's words go to the log only
    status, body, _ = await chain.query('direct', 'SELECT first_name FROM actor WHERE actor_id IN (1, 2')
    assert (status, body['error']['code']) in ((400, 'unbalanced_parentheses'), (400, 'sql_error'))
    status, body, _ = await chain.query('direct', 'INSERT INTO actor (actor_id, first_name, last_name) '
                                                  "VALUES (1, 'DUP', 'LICATE')")
    assert status == 400 and body['error']['code'] == 'constraint_violation'
    assert 'Duplicate' not in body['error']['message'] and 'PRIMARY' not in body['error']['message']
    status, body, _ = await chain.query('direct', 'SELECT * FROM actor LIMIT 1')
    assert status == 200  # the node stays healthy: statement errors are not node failures
    _, report = await chain.health()
    assert all(node['state'] == 'up' for node in report['nodes'])


async def test_the_database_user_cannot_do_more_than_dml(chain):
    status, body = await chain.proxy_query('direct', 'DROP TABLE film_text')
    assert status == 403 and body['error']['code'] == 'database_denied'
    status, body = await chain.proxy_query('direct', "SELECT LOAD_FILE('/etc/passwd')")
    assert status == 200 and body['rows'] == [[None]]


async def test_the_proxy_stops_long_statements(chain):
    status, body = await chain.proxy_query('direct', 'SELECT SLEEP(5)')
    assert status == 422 and body['error']['code'] == 'statement_timeout'


async def test_the_proxy_refuses_huge_results_and_keeps_working(chain_factory):
    chain = await chain_factory(proxy={'scopes': {'default': {'max_result_rows': 100}}})
    status, body = await chain.proxy_query('direct', 'SELECT * FROM payment LIMIT 500')
    assert status == 403 and body['error']['code'] == 'result_too_large'
    status, body = await chain.proxy_query('direct', 'SELECT * FROM payment LIMIT 100')
    assert status == 200 and body['row_count'] == 100


async def test_an_exhausted_pool_answers_503(chain_factory):
    chain = await chain_factory(proxy={'pool': {'size': 1, 'acquire_timeout': 0.2}})
    await chain.wait_probed()
    first = asyncio.create_task(chain.proxy_query('direct', 'DO SLEEP(1)'))
    pool = chain.proxy_service.nodes['manager'].pools[('default', 'write')]  # DO is routed as a write
    for _ in range(100):
        if pool.in_use:
            break
        await asyncio.sleep(0.01)
    status, body = await chain.proxy_query('direct', 'DO SLEEP(0)')
    assert status == 503 and body['error']['code'] == 'pool_exhausted'
    assert (await first)[0] == 200


async def test_the_request_id_travels_through_every_tier(chain, caplog):
    with caplog.at_level(logging.INFO, logger='sqlgate.access'):
        status, body, headers = await chain.query('customized', 'SELECT 1 FROM dual',
                                                  headers={'X-Request-Id': 'trace-me-0042'})
    assert status == 200 and body['request_id'] == 'trace-me-0042' == headers['X-Request-Id']
    lines = {line['service']: line for line in access_lines(caplog) if line['request_id'] == 'trace-me-0042'}
    assert set(lines) == {'gatekeeper', 'trusted', 'proxy'}
    assert len(access_lines(caplog)) == 3  # exactly one line per service
    assert lines['proxy']['node'] == body['node'] and lines['proxy']['kind'] == 'read'
    assert lines['gatekeeper']['node'] == body['node'] and lines['gatekeeper']['api_key'] == API_KEY_NAME
    assert lines['trusted']['statement'] == 'SELECT'
    for line in lines.values():
        assert line['status'] == 200 and line['route'] == 'customized' and line['duration_ms'] >= 0


async def test_healthz_and_metrics_of_every_tier(chain):
    for tier in ('gatekeeper', 'trusted'):
        status, report = await chain.health(tier)
        assert status == 200 and report == {'status': 'ok', 'service': tier}
    status, report = await chain.health('proxy')
    assert status == 200 and report['status'] == 'ok'
    assert {node['name']: node['role'] for node in report['nodes']} == {
        'manager': 'manager', 'worker1': 'worker', 'worker2': 'worker'}
    await chain.query('random', 'SELECT 1 FROM dual')
    metrics = await chain.metrics('proxy')
    for name in ('manager', 'worker1', 'worker2'):
        assert f'sqlgate_node_up{{node="{name}",role="{"manager" if name == "manager" else "worker"}"}} 1' in metrics
        assert f'sqlgate_node_latency_seconds{{node="{name}"}} ' in metrics
    assert 'sqlgate_pool_connections{node="manager",state="idle"}' in metrics
    assert 'sqlgate_http_requests_total{path="/random",status="200"} 1' in metrics
    trusted_metrics = await chain.metrics('trusted')
    assert 'sqlgate_validation_cache_entries' in trusted_metrics
