# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The database as the boundary, against a real MariaDB holding the policy's users and grants.

The `database` fixture creates the users exactly as the sql_policy role does (the collection's filter, applied to
this server's own columns). Statements sent straight to the proxy skip the validator, so what is refused here is
refused by the server itself.
"""

from __future__ import annotations

import functools
import logging

import pytest

from sqlgate.db import Limits, StatementFailure, execute_read, execute_write
from sqlgate_support import READONLY_KEY, access_lines, pooled, session

pytestmark = pytest.mark.asyncio(loop_scope='session')


def read(conn, *args):
    return pooled(execute_read, conn, *args)


def write(conn, *args):
    return pooled(execute_write, conn, *args)


LIMITS = Limits(max_rows=10000, max_bytes=4 * 1024 * 1024, max_affected_rows=100, statement_timeout=2.0)


async def test_the_read_user_cannot_write_even_when_a_write_is_misjudged_as_a_read(database):
    conn, db = await session(database, 'sg_default_r')
    try:
        for sql in ('DELETE FROM actor WHERE actor_id = 1', "UPDATE actor SET first_name = 'X' WHERE actor_id = 1",
                    "INSERT INTO actor (first_name, last_name) VALUES ('A', 'B')"):
            with pytest.raises(StatementFailure) as caught:
                await read(conn, sql, (), LIMITS, db)
            assert (caught.value.status, caught.value.code) == (403, 'database_denied')
            assert 'sg_default_r' not in caught.value.message and 'sg_default_r' in caught.value.detail
    finally:
        conn.close()


async def test_hidden_columns_exist_for_no_scope_user(database):
    for user in ('sg_default_r', 'sg_default_w', 'sg_readonly_r'):
        conn, db = await session(database, user, write=user.endswith('_w'))
        try:
            for sql in ('SELECT password FROM staff', 'SELECT * FROM staff',
                        'SELECT staff_id FROM staff WHERE picture IS NULL'):
                with pytest.raises(StatementFailure) as caught:
                    await read(conn, sql, (), LIMITS, db)
                assert caught.value.code == 'database_denied', (user, sql)
            assert (await read(conn, 'SELECT staff_id, username FROM staff ORDER BY staff_id', (), LIMITS,
                                 db)).rows == [[1, 'Mike'], [2, 'Jon']]
        finally:
            conn.close()


async def test_a_cascading_key_cannot_be_updated_by_the_write_user(database):
    conn, db = await session(database, 'sg_default_w', write=True)
    try:
        with pytest.raises(StatementFailure) as caught:
            await write(conn, 'UPDATE language SET language_id = 9 WHERE language_id = 1', (), LIMITS, db)
        assert caught.value.code == 'database_denied' and 'language' in caught.value.message
        assert (await write(conn, "UPDATE language SET name = name WHERE language_id = 1", (), LIMITS,
                              db)).matched_rows == 1
    finally:
        conn.close()


@pytest.mark.parametrize('sql', [
    'UPDATE payment SET amount = amount + 1 WHERE payment_id <= %s',
    'DELETE FROM payment WHERE payment_id <= %s',
    'INSERT INTO film_text (film_id, title) SELECT film_id + 5000, title FROM film WHERE film_id <= %s',
    'INSERT INTO film_text (film_id, title) SELECT film_id, title FROM film WHERE film_id <= %s '
    'ON DUPLICATE KEY UPDATE title = VALUES(title)',
])
async def test_the_row_cap_rolls_back_what_matched_too_many_rows(database, sql):
    conn, db = await session(database, 'sg_default_w', write=True)
    checksum = "CHECKSUM TABLE payment, film_text, actor"
    try:
        before = (await read(conn, checksum, (), LIMITS, db)).rows
        with pytest.raises(StatementFailure) as caught:
            await write(conn, sql, (101,), LIMITS, db)
        assert (caught.value.status, caught.value.code) == (403, 'too_many_rows')
        assert '101 rows' in caught.value.message and 'at most 100' in caught.value.message
        assert (await read(conn, checksum, (), LIMITS, db)).rows == before
    finally:
        conn.close()


async def test_up_to_the_cap_a_write_commits_and_reports_matched_rows(database):
    conn, db = await session(database, 'sg_default_w', write=True)
    try:
        result = await write(conn, 'UPDATE payment SET amount = amount WHERE payment_id <= %s', (100,),
                                     LIMITS, db)
        assert (result.matched_rows, result.affected_rows) == (100, 0)  # CLIENT_FOUND_ROWS: matched counts, unchanged
        up = await write(conn, 'UPDATE payment SET amount = amount + 1, last_update = last_update '
                                   'WHERE payment_id <= %s', (99,), LIMITS, db)
        down = await write(conn, 'UPDATE payment SET amount = amount - 1, last_update = last_update '
                                     'WHERE payment_id <= %s', (99,), LIMITS, db)
        assert up.matched_rows == down.matched_rows == 99
    finally:
        conn.close()


async def test_a_reset_session_forgets_what_the_last_request_left(database):
    conn, db = await session(database, 'sg_default_w', write=True)
    try:
        assert (await read(conn, "SELECT @left_behind := 'secret'", (), LIMITS, db)).rows == [['secret']]
        await write(conn, "SET @left_behind = 'secret'", (), LIMITS, db)
        assert (await read(conn, 'SELECT @left_behind', (), LIMITS, db)).rows == [[None]]
        mode = (await read(conn, 'SELECT @@SESSION.sql_mode, @@SESSION.max_statement_time', (), LIMITS,
                                   db)).rows[0]
        assert 'ANSI_QUOTES' not in mode[0] and float(mode[1]) == 2.0  # the session is set up again after the reset
    finally:
        conn.close()


async def test_results_are_capped_in_bytes_while_they_stream(database):
    small = Limits(max_rows=10000, max_bytes=50_000, max_affected_rows=100, statement_timeout=2.0)
    conn, db = await session(database, 'sg_default_r', max_packet=60_000)
    with pytest.raises(StatementFailure) as caught:
        await read(conn, 'SELECT * FROM payment', (), small, db)
    assert caught.value.code == 'result_too_large' and not caught.value.keep_connection
    conn, db = await session(database, 'sg_default_r', max_packet=60_000)
    with pytest.raises(StatementFailure) as caught:  # one row larger than any packet the proxy reads
        await read(conn, "SELECT REPEAT('x', 100000)", (), small, db)
    assert caught.value.code == 'result_too_large'
    conn, db = await session(database, 'sg_default_r', max_packet=60_000)
    try:
        assert len((await read(conn, 'SELECT * FROM payment LIMIT 100', (), small, db)).rows) == 100
    finally:
        conn.close()


async def test_a_slow_write_is_stopped_and_is_the_callers_error(database):
    conn, db = await session(database, 'sg_default_w', write=True)
    try:
        with pytest.raises(StatementFailure) as caught:
            await write(conn, 'DELETE FROM film_text WHERE film_id = (SELECT SLEEP(3))', (), LIMITS, db)
        assert (caught.value.status, caught.value.code) == (422, 'statement_timeout')
    finally:
        conn.close()


async def test_through_the_chain_readonly_reads_and_the_cap_holds(chain, caplog):
    status, body, _ = await chain.query('random', 'SELECT first_name FROM actor WHERE actor_id = 1', key=READONLY_KEY)
    assert status == 200 and body['rows'] == [['PENELOPE']]
    status, body, _ = await chain.query('direct', 'DELETE FROM actor WHERE actor_id = 1', key=READONLY_KEY)
    assert (status, body['error']['code']) == (403, 'statement_not_allowed')
    status, body = await chain.proxy_query('direct', 'DELETE FROM actor WHERE actor_id = 1', scope='readonly')
    assert (status, body['error']['code']) == (403, 'statement_not_allowed')  # no write user for the scope at all
    status, body = await chain.proxy_query('direct', 'SELECT 1', scope='nosuchscope')
    assert (status, body['error']['code']) == (403, 'scope_unknown')
    with caplog.at_level(logging.INFO):
        status, body, headers = await chain.query('direct',
                                                  'UPDATE payment SET amount = amount WHERE payment_id <= 101')
    assert (status, body['error']['code']) == (403, 'too_many_rows')
    audit = [record.access for record in caplog.records
             if getattr(record, 'access', {}).get('audit') == 'write']
    assert audit and audit[-1]['outcome'] == 'too_many_rows' and audit[-1]['scope'] == 'default'
    assert audit[-1]['request_id'] == headers['X-Request-Id'] and audit[-1]['statement'].count('?') == 1
    assert access_lines(caplog, 'proxy')[-1]['error'] == 'too_many_rows'


async def test_a_fresh_pool_connection_per_scope_user(chain):
    proxy = chain.proxy_service
    pools = proxy.nodes['manager'].pools
    assert set(pools) == {('default', 'read'), ('default', 'write'), ('readonly', 'read')}
    connector = pools[('default', 'read')].connect
    assert isinstance(connector, functools.partial) and connector.args[0].args[2].user == 'sg_default_r'


async def test_a_statement_the_server_cannot_stop_in_time_is_the_callers_and_leaves_the_node_up(chain):
    # The validator refuses long generated strings; straight to the proxy, MariaDB's timer cannot interrupt this
    # search (its read outlives the 4 s socket timeout), yet the probes keep answering: 422, no retry, no eject.
    await chain.wait_probed()
    status, body = await chain.proxy_query(
        'direct', "SELECT INSTR(REPEAT('a', 300000), CONCAT(REPEAT('a', 150000), 'b'))")
    assert (status, body['error']['code']) == (422, 'statement_timeout'), body
    _, report = await chain.health()
    assert all(node['state'] == 'up' for node in report['nodes'])
    assert 'sqlgate_read_retries_total 0' in await chain.metrics()
