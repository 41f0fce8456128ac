# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Database session settings and the meaning of database errors (no database needed)."""

from __future__ import annotations

import pymysql
import pytest

from sqlgate.config import DatabaseConfig
from sqlgate.db import NodeFailure, StatementFailure, session_settings, translate

DB = DatabaseConfig('sakila', 'u', b'p', 'utf8mb4', 1.0, 2.0, 2.0, 5.0)


def test_mariadb_gets_max_statement_time_in_seconds():
    timeout, modes = session_settings('10.11.6-MariaDB-0+deb12u1', 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', 5.0)
    assert timeout == 'max_statement_time = 5.000'
    assert modes == 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'


def test_mysql_gets_max_execution_time_in_milliseconds():
    timeout, _ = session_settings('8.0.36', 'ONLY_FULL_GROUP_BY', 2.5)
    assert timeout == 'max_execution_time = 2500'


def test_quote_changing_modes_are_removed():
    _, modes = session_settings('8.0.36', 'REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI,'
                                'NO_BACKSLASH_ESCAPES', 1.0)
    assert modes == 'REAL_AS_FLOAT,PIPES_AS_CONCAT,IGNORE_SPACE'


@pytest.mark.parametrize(('exc', 'timeout'), [
    (pymysql.err.OperationalError(2003, "Can't connect to MySQL server"), False),
    (pymysql.err.OperationalError(2013, 'Lost connection to MySQL server during query (timed out)'), True),
    (pymysql.err.OperationalError(2006, 'MySQL server has gone away'), False),
    (pymysql.err.OperationalError(1045, 'Access denied for user'), False),
    (pymysql.err.OperationalError(1053, 'Server shutdown in progress'), False),
    (pymysql.err.OperationalError(1047, 'WSREP has not yet prepared node for application use'), False),
    (pymysql.err.InternalError(1927, 'Connection was killed'), False),
    (pymysql.err.InterfaceError(0, ''), False),
    (ConnectionResetError('reset'), False),
    (TimeoutError('timed out'), True),
])
def test_connection_level_errors_are_node_failures(exc, timeout):
    failure = translate(exc, DB)
    assert isinstance(failure, NodeFailure)
    assert failure.timeout is timeout


@pytest.mark.parametrize(('exc', 'status', 'code'), [
    (pymysql.err.ProgrammingError(1064, 'You have an error in your SQL syntax'), 400, 'sql_error'),
    (pymysql.err.ProgrammingError(1146, "Table 'sakila.x' doesn't exist"), 400, 'sql_error'),
    (pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'"), 400, 'constraint_violation'),
    (pymysql.err.IntegrityError(1452, 'Cannot add or update a child row'), 400, 'constraint_violation'),
    (pymysql.err.DataError(1406, 'Data too long'), 400, 'sql_error'),
    (pymysql.err.OperationalError(1142, 'DROP command denied to user'), 403, 'database_denied'),
    (pymysql.err.OperationalError(1969, 'Query execution was interrupted (max_statement_time exceeded)'), 504,
     'statement_timeout'),
    (pymysql.err.OperationalError(3024, 'Query execution was interrupted, maximum statement execution time'), 504,
     'statement_timeout'),
    (pymysql.err.OperationalError(1205, 'Lock wait timeout exceeded'), 504, 'lock_wait_timeout'),
    (pymysql.err.OperationalError(1213, 'Deadlock found'), 503, 'write_conflict'),
])
def test_statement_errors_keep_the_node_and_the_session(exc, status, code):
    failure = translate(exc, DB)
    assert isinstance(failure, StatementFailure)
    assert (failure.status, failure.code) == (status, code)
    assert failure.keep_connection


def test_other_exceptions_pass_through():
    error = KeyError('x')
    assert translate(error, DB) is error
