# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The proxy's MySQL protocol on the event loop (sqlgate.wire) against a real MariaDB.

Every value must come out exactly as PyMySQL reads it (the same statement through both, compared); results
larger than the read buffer, values of every length encoding, the reset sent behind a statement, and a server
that stops answering.
"""

from __future__ import annotations

import time

import pymysql
import pytest

from sqlgate.convert import convert_rows
from sqlgate.db import Limits, NodeFailure, execute_read
from sqlgate_support import pooled, session

pytestmark = pytest.mark.asyncio(loop_scope='session')

LIMITS = Limits(max_rows=100_000, max_bytes=64 * 1024 * 1024, max_affected_rows=100, statement_timeout=5.0)


def through_pymysql(database, sql: str) -> tuple[list[str], list[list[object]]]:
    conn = database.connect(charset='utf8mb4')
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return [column[0] for column in cursor.description], convert_rows(cursor.fetchall())
    finally:
        conn.close()


@pytest.mark.parametrize('sql', [
    # Every length encoding of a value (1, 3 and 4 bytes of length), NULL, numbers, text, binary, time types.
    "SELECT 1 AS one, -2.5, CAST(2.99 AS DECIMAL(5,2)), NULL AS nothing, 'h\u00e9llo \U0001f600', _binary 'a\\0b', "
    "X'FF00', CAST('2006-02-15 04:34:33.123' AS DATETIME(3)), CAST('2006-02-15' AS DATE), "
    "CAST('-838:59:59' AS TIME), CAST('12:34:56.5' AS TIME(1)), JSON_OBJECT('a', 1), b'101', 1.5e300, "
    "REPEAT('x', 250), REPEAT('y', 300), REPEAT('z', 70000), 18446744073709551615, -9223372036854775808",
    'SELECT * FROM film ORDER BY film_id LIMIT 20',  # SET, ENUM, YEAR, DECIMAL, TEXT
    "SELECT ST_GeomFromText('POINT(1 2)') AS location, address_id FROM address ORDER BY address_id LIMIT 20",
    'SELECT * FROM payment ORDER BY payment_id',  # about 1.5 MB: reading pauses and resumes
    "SELECT REPEAT('w', 3000000), 1",  # one packet larger than the read buffer's threshold
    'SELECT customer_id FROM customer WHERE customer_id < 0',  # no rows
])
async def test_values_come_out_exactly_as_pymysql_reads_them(database, sql):
    conn, db = await session(database, max_packet=64 * 1024 * 1024)
    try:
        result = await pooled(execute_read, conn, sql, (), LIMITS, db)
    finally:
        conn.close()
    columns, rows = through_pymysql(database, sql)
    assert result.columns == columns
    assert result.rows == rows


async def test_many_statements_on_one_connection_each_reset(database):
    conn, db = await session(database, max_packet=64 * 1024 * 1024)
    try:
        for number in range(50):
            result = await pooled(execute_read, conn, f'SELECT @seen, @seen := {number}', (), LIMITS, db)
            assert result.rows == [[None, number]]  # the reset behind each statement forgot the last one's variable
    finally:
        conn.close()


async def test_a_statement_cannot_overtake_the_unread_reset(database):
    conn, db = await session(database, max_packet=64 * 1024 * 1024)
    try:
        await execute_read(conn, 'SELECT 1', (), LIMITS, db)
        with pytest.raises(pymysql.err.ProgrammingError):
            conn.query('SELECT 2')
    finally:
        conn.close()


async def test_a_server_that_stops_answering_fails_the_statement_at_its_deadline(database):
    conn, db = await session(database, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(NodeFailure) as caught:
        await execute_read(conn, 'SELECT SLEEP(2)', (), LIMITS, db)
    elapsed = time.monotonic() - started
    assert caught.value.timeout and 0.25 < elapsed < 1.0, elapsed
    assert not conn.open  # its answer may still come: the connection is never used again


async def test_a_ping_answers_and_a_closed_connection_says_so(database):
    conn, db = await session(database, max_packet=64 * 1024 * 1024)
    await conn.ping(1.0)
    conn.close()
    assert not conn.open
    with pytest.raises(pymysql.err.OperationalError):
        await conn.ping(1.0)
