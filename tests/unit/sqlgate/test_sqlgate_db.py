# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Database session settings and the meaning of database errors (no database needed)."""

from __future__ import annotations

import pymysql
import pytest

from sqlgate.config import DatabaseConfig
from sqlgate.db import NodeFailure, StatementFailure, changed_rows, matched_rows, session_settings, translate

DB = DatabaseConfig('sakila', 'u', b'p', 'utf8mb4', 1.0, 2.0, 2.0, 5.0)


def test_mariadb_gets_max_statement_time_in_seconds():
    timeout, modes = session_settings('10.11.6-MariaDB-0+deb12u1', 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', 5.0)
    assert timeout == 'max_statement_time = 5.000'
    assert modes == 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'


def test_mysql_gets_max_execution_time_in_milliseconds():
    timeout, _ = session_settings('8.0.36', 'ONLY_FULL_GROUP_BY', 2.5)
    assert timeout == 'max_execution_time = 2500'


def test_modes_that_change_how_the_text_is_read_are_removed():
    _, modes = session_settings('8.0.36', 'REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI,'
                                'NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES', 1.0)
    assert modes == 'REAL_AS_FLOAT,STRICT_TRANS_TABLES'


@pytest.mark.parametrize('composite', ['ORACLE', 'MSSQL', 'DB2', 'POSTGRESQL', 'MAXDB', 'oracle'])
def test_composite_modes_that_bring_back_ansi_quotes_are_removed(composite):
    _, modes = session_settings('10.11.6-MariaDB', f'{composite},PIPES_AS_CONCAT,ANSI_QUOTES,STRICT_ALL_TABLES', 1.0)
    assert modes == 'STRICT_ALL_TABLES'


@pytest.mark.parametrize(('affected', 'info', 'matched'), [
    (3, b'Rows matched: 5  Changed: 3  Warnings: 0', 5),
    (0, b'Rows matched: 101  Changed: 0  Warnings: 0', 101),
    (4, b'Records: 2  Duplicates: 2  Warnings: 0', 2),
    (1, None, 1),
    (2, b'', 2),
    (7, 'Records: 7  Duplicates: 0  Warnings: 0', 7),
])
def test_matched_rows_prefers_what_the_server_says_it_matched(affected, info, matched):
    assert matched_rows(affected, info) == matched


def test_changed_rows_of_an_update_come_from_the_servers_info():
    assert changed_rows(5, b'Rows matched: 5  Changed: 3  Warnings: 0') == 3
    assert changed_rows(2, b'Records: 2  Duplicates: 0  Warnings: 0') == 2
    assert changed_rows(1, None) == 1


@pytest.mark.parametrize(('exc', 'timeout'), [
    (pymysql.err.OperationalError(2003, "Can't connect to MySQL server"), False),
    (pymysql.err.OperationalError(2013, 'Lost connection to MySQL server during query (timed out)'), True),
    (pymysql.err.OperationalError(2006, 'MySQL server has gone away'), False),
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
    (pymysql.err.ProgrammingError(1064, 'You have an error in your SQL syntax near x at line 1'), 400, 'sql_error'),
    (pymysql.err.ProgrammingError(1146, "Table 'sakila.x' doesn't exist"), 400, 'sql_error'),
    (pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'"), 400, 'constraint_violation'),
    (pymysql.err.IntegrityError(1452, 'Cannot add or update a child row'), 400, 'constraint_violation'),
    (pymysql.err.DataError(1406, 'Data too long'), 400, 'sql_error'),
    (pymysql.err.OperationalError(1142, "DROP command denied to user 'sg_default_r'@'10.0.3.10' for table `sakila`."
                                        "`staff`"), 403, 'database_denied'),
    (pymysql.err.OperationalError(1143, "SELECT command denied to user 'u'@'h' for column 'password' in table "
                                        "'staff'"), 403, 'database_denied'),
    (pymysql.err.OperationalError(1044, "Access denied for user 'u'@'h' to database 'mysql'"), 502,
     'database_login_failed'),
    (pymysql.err.OperationalError(1226, "User 'u' has exceeded the 'max_user_connections' resource"), 429,
     'user_limit'),
    (pymysql.err.OperationalError(1969, 'Query execution was interrupted (max_statement_time exceeded)'), 422,
     'statement_timeout'),
    (pymysql.err.OperationalError(3024, 'Query execution was interrupted, maximum statement execution time'), 422,
     'statement_timeout'),
    (pymysql.err.OperationalError(1205, 'Lock wait timeout exceeded'), 504, 'lock_wait_timeout'),
    (pymysql.err.OperationalError(1213, 'Deadlock found'), 503, 'write_conflict'),
])
def test_statement_errors_keep_the_node_and_the_session(exc, status, code):
    failure = translate(exc, DB)
    assert isinstance(failure, StatementFailure)
    assert (failure.status, failure.code) == (status, code)
    assert failure.keep_connection is (code != 'database_login_failed')
    # The server's words go to the log, never to the client: no user, no address, no server text.
    assert failure.detail.endswith(str(exc.args[1]))
    for private in ("'u'", 'sg_default_r', '10.0.3.10', 'command denied', 'You have an error', 'resource'):
        assert private not in failure.message


def test_a_denial_names_the_table_or_column_and_nothing_more():
    table = translate(pymysql.err.OperationalError(1142, "SELECT command denied to user 'sg_readonly_r'@'10.0.3.10' "
                                                         "for table `sakila`.`staff`"), DB)
    assert table.message == 'the database refused access to the table staff for this API key'
    column = translate(pymysql.err.OperationalError(
        1143, "SELECT command denied to user 'u'@'h' for column 'password' in table 'staff'"), DB)
    assert column.message == 'the database refused access to the column staff.password for this API key'


def test_login_refused_is_neither_the_nodes_fault_nor_a_detail_for_the_client():
    failure = translate(pymysql.err.OperationalError(1045, "Access denied for user 'sg_x'@'10.0.3.10'"), DB)
    assert isinstance(failure, StatementFailure) and failure.status == 502
    assert '10.0.3.10' not in failure.message and '10.0.3.10' in failure.detail


def test_other_exceptions_pass_through():
    error = KeyError('x')
    assert translate(error, DB) is error
