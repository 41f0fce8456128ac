# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Which function calls the validator lets through.

``BUILTIN_FUNCTIONS`` is an allow-list of the MySQL 8 and MariaDB 10.11 built-ins that ordinary
queries use: string, numeric, date and time, aggregate, window, JSON, spatial, control flow, cast
and hashing functions. A name outside it (a stored function such as ``get_customer_balance``, a
UDF, a typo) is refused unless the policy lists it in ``allowed_functions``.

``DENIED_FUNCTIONS`` and ``denied`` name what stays refused even if someone adds it to the
allow-list by mistake: functions that reveal who or what the server is (user, database, version,
connection, UUIDs that carry the server's MAC address or id, the session's last insert id or row
counts), sleep or burn CPU on purpose, read files, take server-wide locks, wait on replication, move
MariaDB sequences, run shell commands (lib_mysqludf_sys), or hash passwords the old way. A policy can
still re-enable one explicitly through ``allowed_functions`` (for example ``database``).
"""

from __future__ import annotations

import re

DENIED_FUNCTIONS = frozenset({
    # identity and server information
    'database', 'schema', 'user', 'current_user', 'session_user', 'system_user', 'current_role', 'version',
    'connection_id', 'uuid', 'uuid_short', 'sys_guid', 'last_insert_id', 'row_count', 'found_rows',
    'icu_version', 'roles_graphml', 'ps_current_thread_id', 'ps_thread_id', 'charset', 'collation', 'coercibility',
    # sleeping and burning CPU
    'benchmark', 'sleep',
    # files
    'load_file',
    # user-level locks
    'get_lock', 'release_lock', 'release_all_locks', 'is_free_lock', 'is_used_lock',
    # replication waits and positions
    'master_pos_wait', 'source_pos_wait', 'master_gtid_wait', 'wait_for_executed_gtid_set',
    'wait_until_sql_thread_after_gtids', 'gtid_subset', 'gtid_subtract', 'binlog_gtid_pos',
    'wsrep_last_written_gtid', 'wsrep_last_seen_gtid', 'wsrep_sync_wait_upto_gtid',
    # MariaDB sequences
    'nextval', 'lastval', 'setval',
    # lib_mysqludf_sys
    'sys_exec', 'sys_eval', 'sys_get', 'sys_set',
    # password hashing and obsolete encryption
    'password', 'old_password', 'encrypt', 'des_encrypt', 'des_decrypt', 'encode', 'decode',
    'validate_password_strength',
    # parse SQL text or fake column names
    'statement_digest', 'statement_digest_text', 'name_const',
})
# Families of names refused whatever their exact spelling: waits, locks, replication, Galera,
# performance_schema helpers and the data dictionary's internal functions.
_DENIED_PATTERN = re.compile(r'(^|_)wait($|_)|_lock|lock_|^master_|^source_|^wsrep_|^gtid_|^ps_|^internal_|^sys_')

BUILTIN_FUNCTIONS = frozenset({
    # MariaDB's ROWNUM() and the old name of ST_AsText
    'rownum', 'astext',
    # string
    'ascii', 'bin', 'bit_length', 'char', 'char_length', 'character_length', 'chr', 'concat', 'concat_ws', 'elt',
    'export_set', 'field', 'find_in_set', 'format', 'from_base64', 'hex', 'insert', 'instr', 'lcase', 'left',
    'length', 'lengthb', 'locate', 'lower', 'lpad', 'ltrim', 'make_set', 'mid', 'natural_sort_key', 'oct',
    'octet_length', 'ord', 'position', 'quote', 'regexp_instr', 'regexp_like', 'regexp_replace', 'regexp_substr',
    'repeat', 'replace', 'reverse', 'right', 'rpad', 'rtrim', 'sformat', 'soundex', 'space', 'strcmp', 'substr',
    'substring', 'substring_index', 'to_base64', 'to_char', 'trim', 'ucase', 'unhex', 'upper', 'weight_string',
    'charset', 'collation', 'coercibility', 'format_bytes',
    # numeric
    'abs', 'acos', 'asin', 'atan', 'atan2', 'bit_count', 'ceil', 'ceiling', 'conv', 'cos', 'cot', 'crc32', 'crc32c',
    'degrees', 'exp', 'floor', 'greatest', 'interval', 'least', 'ln', 'log', 'log10', 'log2', 'mod', 'pi', 'pow',
    'power', 'radians', 'rand', 'round', 'sign', 'sin', 'sqrt', 'tan', 'truncate',
    # date and time
    'adddate', 'addtime', 'add_months', 'convert_tz', 'curdate', 'current_date', 'current_time',
    'current_timestamp', 'curtime', 'date', 'date_add', 'date_format', 'date_sub', 'datediff', 'day', 'dayname',
    'dayofmonth', 'dayofweek', 'dayofyear', 'extract', 'from_days', 'from_unixtime', 'get_format', 'hour',
    'last_day', 'localtime', 'localtimestamp', 'makedate', 'maketime', 'microsecond', 'minute', 'month',
    'monthname', 'now', 'period_add', 'period_diff', 'quarter', 'sec_to_time', 'second', 'str_to_date', 'subdate',
    'subtime', 'sysdate', 'time', 'time_format', 'time_to_sec', 'timediff', 'timestamp', 'timestampadd',
    'timestampdiff', 'to_days', 'to_seconds', 'unix_timestamp', 'utc_date', 'utc_time', 'utc_timestamp', 'week',
    'weekday', 'weekofyear', 'year', 'yearweek',
    # aggregate
    'any_value', 'avg', 'bit_and', 'bit_or', 'bit_xor', 'count', 'group_concat', 'grouping', 'json_arrayagg',
    'json_objectagg', 'max', 'median', 'min', 'percentile_cont', 'percentile_disc', 'std', 'stddev', 'stddev_pop',
    'stddev_samp', 'sum', 'var_pop', 'var_samp', 'variance',
    # window
    'cume_dist', 'dense_rank', 'first_value', 'lag', 'last_value', 'lead', 'nth_value', 'ntile', 'percent_rank',
    'rank', 'row_number',
    # JSON
    'json_array', 'json_array_append', 'json_array_insert', 'json_array_intersect', 'json_compact', 'json_contains',
    'json_contains_path', 'json_depth', 'json_detailed', 'json_equals', 'json_exists', 'json_extract',
    'json_insert', 'json_keys', 'json_length', 'json_loose', 'json_merge', 'json_merge_patch',
    'json_merge_preserve', 'json_normalize', 'json_object', 'json_object_filter_keys', 'json_object_to_array',
    'json_overlaps', 'json_pretty', 'json_query', 'json_quote', 'json_remove', 'json_replace', 'json_schema_valid',
    'json_schema_validation_report', 'json_search', 'json_set', 'json_storage_free', 'json_storage_size',
    'json_type', 'json_unquote', 'json_valid', 'json_value',
    # control flow, comparison, cast
    'cast', 'coalesce', 'convert', 'if', 'ifnull', 'isnull', 'nullif', 'nvl', 'nvl2', 'decode_oracle',
    # hashing, compression, conversion
    'aes_decrypt', 'aes_encrypt', 'bin_to_uuid', 'compress', 'inet6_aton', 'inet6_ntoa', 'inet_aton', 'inet_ntoa',
    'is_ipv4', 'is_ipv4_compat', 'is_ipv4_mapped', 'is_ipv6', 'is_uuid', 'md5', 'random_bytes', 'sha', 'sha1',
    'sha2', 'uncompress', 'uncompressed_length', 'uuid_to_bin',
    # row constructors and INSERT helpers: DEFAULT(col), VALUES(col) in ON DUPLICATE KEY UPDATE
    'default', 'row', 'values',
    # full-text search: MATCH (cols) AGAINST (...)
    'match',
    # spatial (sakila's address.location is a GEOMETRY)
    'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon', 'geometrycollection',
    'mbrcontains', 'mbrcoveredby', 'mbrcovers', 'mbrdisjoint', 'mbrequals', 'mbrintersects', 'mbroverlaps',
    'mbrtouches', 'mbrwithin', 'st_area', 'st_asbinary', 'st_asgeojson', 'st_astext', 'st_aswkb', 'st_aswkt',
    'st_boundary', 'st_buffer', 'st_centroid', 'st_contains', 'st_convexhull', 'st_crosses', 'st_difference',
    'st_dimension', 'st_disjoint', 'st_distance', 'st_distance_sphere', 'st_endpoint', 'st_envelope', 'st_equals',
    'st_exteriorring', 'st_geometryn', 'st_geometrytype', 'st_geomfromgeojson', 'st_geomfromtext',
    'st_geomfromwkb', 'st_interiorringn', 'st_intersection', 'st_intersects', 'st_isclosed', 'st_isempty',
    'st_issimple', 'st_isvalid', 'st_latitude', 'st_length', 'st_longitude', 'st_makeenvelope', 'st_numgeometries',
    'st_numinteriorrings', 'st_numpoints', 'st_overlaps', 'st_pointfromtext', 'st_pointn', 'st_relate',
    'st_simplify', 'st_srid', 'st_startpoint', 'st_swapxy', 'st_symdifference', 'st_touches', 'st_transform',
    'st_union', 'st_validate', 'st_within', 'st_x', 'st_y',
})

# Words that MySQL (and MariaDB) read as a function call without parentheses. The first four are
# denied like their parenthesised form; the others are allowed built-ins.
NILADIC_FUNCTIONS = frozenset({
    'current_user', 'current_role', 'session_user', 'system_user',
    'current_date', 'current_time', 'current_timestamp', 'localtime', 'localtimestamp', 'utc_date', 'utc_time',
    'utc_timestamp',
})


def denied(name: str) -> bool:
    """Whether the lower-case function ``name`` stays refused unless the policy names it explicitly."""
    return name in DENIED_FUNCTIONS or _DENIED_PATTERN.search(name) is not None


def allowed(name: str, extra: frozenset[str]) -> bool:
    """Whether a call of the built-in or stored function ``name`` (lower case) may run; ``extra`` is the
    policy's ``allowed_functions``."""
    if name in extra:
        return True
    return name in BUILTIN_FUNCTIONS and not denied(name)
