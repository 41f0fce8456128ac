# Copyright: cloudpatterns.mysql contributors
# Apache License 2.0 (see LICENSE)
"""The SQL policy, described once in the inventory, turned into what enforces it twice.

The trusted host gets each scope's tables, hidden columns, statements and caps (it refuses early, with a
reason); the database gets one SELECT-only user and one write user per scope, with exactly those table-
and column-level grants (it refuses whatever the validator misjudged).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: sql_policy_scopes
short_description: Check the SQL policy and resolve each scope against the database's tables
version_added: 1.1.0
description:
  - C(sql_policy_scopes) checks the policy (C(sql_policy) in the inventory) and returns each scope with its
    defaults merged, its table groups (C(base_tables), C(views)) replaced by the database's own table names,
    and its hidden columns; it fails with a sentence naming the key to fix.
  - C(sql_policy_grants) turns one resolved scope into the privilege strings of its two database users
    (community.mysql.mysql_user's C(priv) format) - SELECT on what it reads minus hidden columns; INSERT,
    UPDATE and DELETE on what it writes, never UPDATE on a key column that another table's foreign key
    follows with ON UPDATE CASCADE (such an UPDATE rewrites rows behind the statement's back).
  - C(sql_policy_trusted) turns the resolved scopes into the trusted host's C(scopes) configuration.
options:
  _input:
    description: The policy, a dict with C(database), C(defaults) and C(scopes).
    type: dict
    required: true
  columns:
    description: The database's columns, rows of C(table), C(column), C(type) (BASE TABLE or VIEW).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Resolve the policy
  ansible.builtin.set_fact:
    scopes: "{{ sql_policy | cloudpatterns.mysql.sql_policy_scopes(columns) }}"
"""

RETURN = r"""
_value:
  description: Scope name to its resolved policy (read, write, hidden_columns, statements and the caps).
  type: dict
"""

GROUPS = ("base_tables", "views")
# Foreign-key rules that change other rows than the statement names.
PROPAGATING = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})
# What the policy is resolved against, read from information_schema with the database bound as %(db)s: the
# columns (with table or view), and the referenced keys of foreign keys that propagate updates or deletes.
SCHEMA_QUERIES = (
    "SELECT LOWER(c.TABLE_NAME) AS `table`, LOWER(c.COLUMN_NAME) AS `column`, t.TABLE_TYPE AS `type` "
    "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
    "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
    "WHERE c.TABLE_SCHEMA = %(db)s ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
    "SELECT DISTINCT LOWER(k.REFERENCED_TABLE_NAME) AS `table`, LOWER(k.REFERENCED_COLUMN_NAME) AS `column`, "
    "r.UPDATE_RULE AS on_update, r.DELETE_RULE AS on_delete "
    "FROM information_schema.REFERENTIAL_CONSTRAINTS r JOIN information_schema.KEY_COLUMN_USAGE k "
    "ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME "
    "AND k.TABLE_NAME = r.TABLE_NAME WHERE r.CONSTRAINT_SCHEMA = %(db)s AND k.REFERENCED_COLUMN_NAME IS NOT NULL "
    "AND (r.UPDATE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') "
    "OR r.DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT'))",
)
STATEMENTS = ("SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE")
SCOPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")
SCOPE_KEYS = {
    "read": list, "write": list, "hidden_columns": list, "statements": list, "allowed_functions": list,
    "max_affected_rows": int, "max_result_bytes": int, "max_result_rows": int, "select_limit_cap": int,
    "statement_timeout": (int, float), "sql_safe_updates": bool,
}


def _fail(message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"sql_policy: {message}")


def _tables(columns: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
    if columns is None:
        return None
    tables: dict[str, dict[str, Any]] = {}
    for row in columns:
        try:
            table, column, kind = str(row["table"]).lower(), str(row["column"]).lower(), str(row["type"])
        except (KeyError, TypeError) as exc:
            raise _fail(f"each column row needs table, column and type ({exc})") from None
        entry = tables.setdefault(table, {"view": kind.upper() == "VIEW", "columns": []})
        entry["columns"].append(column)
    if not tables:
        raise _fail("the database has no table: load it before applying the policy")
    return tables


def _expand(names: Sequence[Any], tables: Mapping[str, Mapping[str, Any]] | None, where: str) -> list[str]:
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name or not (name in GROUPS or IDENTIFIER.match(name)):
            raise _fail(f"{where}: expected table names or {', '.join(GROUPS)}, got {name!r}")
        if tables is None:
            out.append(name if name in GROUPS else name.lower())
        elif name == "base_tables":
            out += [table for table, info in tables.items() if not info["view"]]
        elif name == "views":
            out += [table for table, info in tables.items() if info["view"]]
        elif name.lower() in tables:
            out.append(name.lower())
        else:
            raise _fail(f"{where}: the database has no table or view {name!r}")
    return sorted(set(out))


def _checked(scope: Mapping[str, Any], where: str) -> dict[str, Any]:
    for key, value in scope.items():
        if key not in SCOPE_KEYS:
            raise _fail(f"{where}.{key} is not a policy key (known: {', '.join(sorted(SCOPE_KEYS))})")
        expected = SCOPE_KEYS[key]
        if expected is bool:
            if not isinstance(value, bool):
                raise _fail(f"{where}.{key} must be true or false, got {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, expected):
            raise _fail(f"{where}.{key} must be a {getattr(expected, '__name__', 'number')}, got {value!r}")
        if expected is int and value < (0 if key == "max_affected_rows" else 1):
            raise _fail(f"{where}.{key} must be positive, got {value}")
    return dict(scope)


def sql_policy_scopes(
    policy: Mapping[str, Any], columns: Sequence[Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Each scope, checked, with defaults merged and table groups resolved against the database.

    Without ``columns`` (preflight, before the database can be asked) names are checked for form only.
    """
    if not isinstance(policy, Mapping) or not isinstance(policy.get("scopes"), Mapping) or not policy["scopes"]:
        raise _fail("expected a dict with 'scopes' holding at least one scope")
    if not isinstance(policy.get("database"), str) or not IDENTIFIER.match(policy["database"]):
        raise _fail("database must name the one database the scopes may use, e.g. sakila")
    tables = _tables(columns)
    defaults = _checked(policy.get("defaults") or {}, "defaults")
    resolved = {}
    for name, scope in policy["scopes"].items():
        where = f"scopes.{name}"
        if not isinstance(name, str) or not SCOPE_NAME.match(name):
            raise _fail(f"{where}: a scope name is a lower-case letter then up to 19 lower-case letters, digits or _")
        merged = {**defaults, **_checked(scope or {}, where)}
        for key in SCOPE_KEYS:
            if key not in merged:
                raise _fail(f"{where}.{key} is not set, and defaults has no value for it")
        statements = [str(item).upper() for item in merged["statements"]]
        unknown = sorted(set(statements) - set(STATEMENTS))
        if unknown or "SELECT" not in statements:
            raise _fail(f"{where}.statements must include SELECT and only name {', '.join(STATEMENTS)}")
        read = _expand(merged["read"], tables, f"{where}.read")
        write = [table for table in _expand(merged["write"], tables, f"{where}.write")
                 if tables is None or not tables[table]["view"]]
        if set(statements) != {"SELECT"} and not write:
            raise _fail(f"{where}: statements allow writes but write names no base table")
        if tables is not None and not set(write) <= set(read):
            raise _fail(f"{where}: every table in write must be readable too (missing from read: "
                        f"{', '.join(sorted(set(write) - set(read)))})")
        hidden = []
        for item in merged["hidden_columns"]:
            table, _, column = str(item).lower().partition(".")
            if not (IDENTIFIER.match(table) and IDENTIFIER.match(column)):
                raise _fail(f"{where}.hidden_columns: expected table.column, got {item!r}")
            if tables is not None and (table not in tables or column not in tables[table]["columns"]):
                raise _fail(f"{where}.hidden_columns: the database has no column {item!r}")
            hidden.append(f"{table}.{column}")
        resolved[name] = {
            **{key: merged[key] for key in SCOPE_KEYS},
            "statements": sorted(set(statements)),
            "read": read,
            "write": write if set(statements) != {"SELECT"} else [],
            "hidden_columns": sorted(set(hidden)),
            "allowed_functions": sorted({str(item).lower() for item in merged["allowed_functions"]}),
        }
    return resolved


def _writes(scope: Mapping[str, Any]) -> bool:
    return bool(scope["write"]) and set(scope["statements"]) != {"SELECT"}


def sql_policy_users(policy: Mapping[str, Any], probe_user: str) -> list[str]:
    """Every database user the policy needs: sg_<scope>_r, sg_<scope>_w for scopes that write, the probe's."""
    users = []
    for name, scope in sql_policy_scopes(policy, None).items():
        users.append(f"sg_{name}_r")
        if _writes(scope):
            users.append(f"sg_{name}_w")
    return [*users, probe_user]


def sql_policy_accounts(
    scopes: Mapping[str, Mapping[str, Any]],
    columns: Sequence[Mapping[str, Any]],
    cascades: Sequence[Mapping[str, Any]],
    database: str,
    probe_user: str,
    probe_table: str,
) -> list[dict[str, str]]:
    """``[{user, priv}]`` for every account of the resolved scopes, and the probe user's."""
    accounts = []
    for name, scope in scopes.items():
        grants = sql_policy_grants(scope, columns, cascades, database)
        accounts.append({"user": f"sg_{name}_r", "priv": grants["read"]})
        if grants["write"]:
            accounts.append({"user": f"sg_{name}_w", "priv": grants["write"]})
    accounts.append({"user": probe_user, "priv": f"{database}.{probe_table}:SELECT"})
    return accounts


def _column_list(columns: Sequence[str]) -> str:
    return ", ".join(f"`{column}`" for column in columns)


def sql_policy_grants(
    scope: Mapping[str, Any],
    columns: Sequence[Mapping[str, Any]],
    cascades: Sequence[Mapping[str, Any]],
    database: str,
) -> dict[str, str]:
    """The priv strings of the scope's read user and write user ('' when the scope never writes).

    ``cascades``: the referenced key columns of foreign keys that change rows behind a statement's back, rows
    of ``table``, ``column`` and the keys' ``on_update`` and ``on_delete`` rules (a row without rules means ON
    UPDATE CASCADE). Such a key column gets no UPDATE, and a table whose deletes cascade or set children to
    NULL no DELETE: ``UPDATE language SET language_id = 9 ...`` would rewrite 1,000 films and report one row.
    """
    if not IDENTIFIER.match(database):
        raise _fail(f"database {database!r} is not a plain identifier")
    tables = _tables(columns)
    hidden: dict[str, set[str]] = {}
    for item in scope["hidden_columns"]:
        table, _, column = item.partition(".")
        hidden.setdefault(table, set()).add(column)
    cascaded: dict[str, set[str]] = {}
    undeletable: set[str] = set()
    for row in cascades:
        table = str(row["table"]).lower()
        if "on_update" not in row and "on_delete" not in row or str(row.get("on_update")).upper() in PROPAGATING:
            cascaded.setdefault(table, set()).add(str(row["column"]).lower())
        if str(row.get("on_delete")).upper() in PROPAGATING:
            undeletable.add(table)

    def visible(table: str) -> list[str]:
        return [column for column in tables[table]["columns"] if column not in hidden.get(table, set())]

    def select(table: str) -> str:
        return "SELECT" if table not in hidden else f"SELECT ({_column_list(visible(table))})"

    read = [f"{database}.{table}:{select(table)}" for table in scope["read"]]
    statements = set(scope["statements"])
    write = []
    for table in scope["read"]:
        privileges = [select(table)]
        if table in scope["write"]:
            if statements & {"INSERT", "REPLACE"}:
                privileges.append("INSERT" if table not in hidden else f"INSERT ({_column_list(visible(table))})")
            if "UPDATE" in statements:
                updatable = [column for column in visible(table) if column not in cascaded.get(table, set())]
                if updatable:
                    whole = table not in hidden and table not in cascaded
                    privileges.append("UPDATE" if whole else f"UPDATE ({_column_list(updatable)})")
            if statements & {"DELETE", "REPLACE"} and table not in undeletable:
                privileges.append("DELETE")
        write.append(f"{database}.{table}:{','.join(privileges)}")
    return {"read": _priv_string(read), "write": _priv_string(write) if _writes(scope) else ""}


def _priv_string(items: list[str]) -> str:
    """Items with column lists first: community.mysql's parser (3.16) appends the privileges of a column-level
    item to the list of the plain item before it, so ``a:SELECT/b:SELECT (x),UPDATE (x)`` would also give ``a``
    UPDATE. With every column-level item ahead of the plain ones, nothing leaks across tables."""
    return "/".join(sorted(items, key=lambda item: "(" not in item))


def sql_policy_trusted(scopes: Mapping[str, Mapping[str, Any]], database: str, flavor: str) -> dict[str, Any]:
    """The trusted host's ``scopes`` configuration."""
    return {
        name: {
            "database": database,
            "allowed_statements": scope["statements"],
            "read_tables": scope["read"],
            "write_tables": scope["write"],
            "hidden_columns": scope["hidden_columns"],
            "allowed_functions": scope["allowed_functions"],
            "select_limit_cap": scope["select_limit_cap"],
            "flavor": flavor,
        }
        for name, scope in scopes.items()
    }


def sql_policy_proxy(scopes: Mapping[str, Mapping[str, Any]], secrets_dir: str) -> dict[str, Any]:
    """The proxy's ``scopes`` configuration: each scope's users, their password files and the caps."""
    config = {}
    for name, scope in scopes.items():
        entry: dict[str, Any] = {
            "read_user": f"sg_{name}_r",
            "read_password_file": f"{secrets_dir}/sg_{name}_r.password",
            "max_affected_rows": scope["max_affected_rows"],
            "max_result_bytes": scope["max_result_bytes"],
            "max_result_rows": scope["max_result_rows"],
            "statement_timeout": scope["statement_timeout"],
            "sql_safe_updates": scope["sql_safe_updates"],
        }
        if _writes(scope):
            entry.update(write_user=f"sg_{name}_w", write_password_file=f"{secrets_dir}/sg_{name}_w.password")
        config[name] = entry
    return config


def sql_policy_schema_queries(database: str) -> list[str]:
    """The two information_schema queries the policy is resolved against (``%(db)s``: the database)."""
    if not IDENTIFIER.match(database):
        raise _fail(f"database {database!r} is not a plain identifier")
    return list(SCHEMA_QUERIES)


class FilterModule:
    """SQL policy filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "sql_policy_scopes": sql_policy_scopes,
            "sql_policy_grants": sql_policy_grants,
            "sql_policy_trusted": sql_policy_trusted,
            "sql_policy_proxy": sql_policy_proxy,
            "sql_policy_users": sql_policy_users,
            "sql_policy_schema_queries": sql_policy_schema_queries,
            "sql_policy_accounts": sql_policy_accounts,
        }
