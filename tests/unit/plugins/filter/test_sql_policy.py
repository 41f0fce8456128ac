# Copyright: cloudpatterns.mysql contributors
# Apache License 2.0 (see LICENSE)
"""The SQL policy filters: one policy, resolved against the database, turned into grants and configs."""

from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloudpatterns.mysql.plugins.filter.sql_policy import (
    sql_policy_accounts,
    sql_policy_grants,
    sql_policy_proxy,
    sql_policy_scopes,
    sql_policy_trusted,
    sql_policy_users,
)

# A slice of sakila as information_schema describes it.
COLUMNS = [
    {"table": table, "column": column, "type": kind}
    for table, kind, columns in (
        ("actor", "BASE TABLE", ["actor_id", "first_name", "last_name", "last_update"]),
        ("language", "BASE TABLE", ["language_id", "name", "last_update"]),
        ("film", "BASE TABLE", ["film_id", "title", "language_id", "last_update"]),
        ("staff", "BASE TABLE", ["staff_id", "first_name", "picture", "password", "last_update"]),
        ("staff_list", "VIEW", ["ID", "name"]),
    )
    for column in columns
]
# Keys that a foreign key follows with ON UPDATE CASCADE.
CASCADES = [{"table": "language", "column": "language_id"}, {"table": "actor", "column": "actor_id"}]
POLICY = {
    "database": "sakila",
    "defaults": {
        "read": ["base_tables", "views"], "write": ["base_tables"],
        "hidden_columns": ["staff.password", "staff.picture"],
        "statements": ["SELECT", "INSERT", "UPDATE", "DELETE"], "allowed_functions": [],
        "max_affected_rows": 100, "max_result_bytes": 4194304, "max_result_rows": 10000, "select_limit_cap": 1000,
        "statement_timeout": 5, "sql_safe_updates": False,
    },
    "scopes": {"default": {}, "readonly": {"write": [], "statements": ["select"]}},
}


def resolved():
    return sql_policy_scopes(POLICY, COLUMNS)


def test_scopes_take_the_defaults_and_the_databases_own_table_names():
    scopes = resolved()
    assert scopes["default"]["read"] == ["actor", "film", "language", "staff", "staff_list"]
    assert scopes["default"]["write"] == ["actor", "film", "language", "staff"]  # views are never written
    assert scopes["readonly"]["write"] == [] and scopes["readonly"]["statements"] == ["SELECT"]
    assert scopes["default"]["hidden_columns"] == ["staff.password", "staff.picture"]
    assert scopes["readonly"]["max_affected_rows"] == 100


def test_the_read_user_never_sees_a_hidden_column():
    grants = sql_policy_grants(resolved()["default"], COLUMNS, CASCADES, "sakila")
    read = dict(item.rsplit(":", 1) for item in grants["read"].split("/"))
    assert read["sakila.staff"] == "SELECT (`staff_id`, `first_name`, `last_update`)"
    assert read["sakila.actor"] == "SELECT" and read["sakila.staff_list"] == "SELECT"
    assert all("INSERT" not in privs and "UPDATE" not in privs for privs in read.values())


def test_the_write_user_cannot_update_a_key_that_cascades():
    grants = sql_policy_grants(resolved()["default"], COLUMNS, CASCADES, "sakila")
    write = dict(item.rsplit(":", 1) for item in grants["write"].split("/"))
    assert write["sakila.language"] == "SELECT,INSERT,UPDATE (`name`, `last_update`),DELETE"
    assert write["sakila.film"] == "SELECT,INSERT,UPDATE,DELETE"  # film_id cascades nowhere in this slice
    assert write["sakila.staff"] == (
        "SELECT (`staff_id`, `first_name`, `last_update`),INSERT (`staff_id`, `first_name`, `last_update`),"
        "UPDATE (`staff_id`, `first_name`, `last_update`),DELETE"
    )
    assert write["sakila.staff_list"] == "SELECT"  # a view: read only, even for the write user


def test_a_scope_that_only_reads_gets_no_write_user():
    scopes = resolved()
    assert sql_policy_grants(scopes["readonly"], COLUMNS, CASCADES, "sakila")["write"] == ""
    accounts = sql_policy_accounts(scopes, COLUMNS, CASCADES, "sakila", "sqlgate_probe", "language")
    assert [account["user"] for account in accounts] == ["sg_default_r", "sg_default_w", "sg_readonly_r",
                                                          "sqlgate_probe"]
    assert accounts[-1]["priv"] == "sakila.language:SELECT"
    assert sql_policy_users(POLICY, "sqlgate_probe") == [account["user"] for account in accounts]


def test_statements_limit_the_write_privileges():
    policy = copy.deepcopy(POLICY)
    policy["scopes"] = {"inserter": {"statements": ["SELECT", "INSERT"], "write": ["actor"]}}
    grants = sql_policy_grants(sql_policy_scopes(policy, COLUMNS)["inserter"], COLUMNS, CASCADES, "sakila")
    write = dict(item.rsplit(":", 1) for item in grants["write"].split("/"))
    assert write["sakila.actor"] == "SELECT,INSERT" and write["sakila.film"] == "SELECT"


def test_the_services_configs_follow_the_same_scopes():
    scopes = resolved()
    trusted = sql_policy_trusted(scopes, "sakila", "mariadb")
    assert trusted["readonly"]["allowed_statements"] == ["SELECT"] and trusted["readonly"]["write_tables"] == []
    assert trusted["default"]["hidden_columns"] == ["staff.password", "staff.picture"]
    proxy = sql_policy_proxy(scopes, "/etc/sqlgate")
    assert proxy["default"]["write_user"] == "sg_default_w"
    assert proxy["default"]["write_password_file"] == "/etc/sqlgate/sg_default_w.password"
    assert "write_user" not in proxy["readonly"] and proxy["readonly"]["read_user"] == "sg_readonly_r"


def test_preflight_checks_the_form_without_the_database():
    scopes = sql_policy_scopes(POLICY, None)
    assert scopes["default"]["read"] == ["base_tables", "views"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p["scopes"]["default"].update(reed=["actor"]), "scopes.default.reed is not a policy key"),
    (lambda p: p["scopes"]["default"].update(max_affected_rows="10"), "scopes.default.max_affected_rows must be"),
    (lambda p: p["scopes"]["default"].update(max_result_bytes=0), "scopes.default.max_result_bytes must be positive"),
    (lambda p: p["scopes"]["default"].update(sql_safe_updates="yes"), "sql_safe_updates must be true or false"),
    (lambda p: p["scopes"]["default"].update(statements=["INSERT"]), "must include SELECT"),
    (lambda p: p["scopes"]["default"].update(statements=["SELECT", "DROP"]), "must include SELECT"),
    (lambda p: p["scopes"]["default"].update(read=["actor"]), "every table in write must be readable"),
    (lambda p: p["scopes"]["default"].update(write=["secrets"]), "the database has no table or view 'secrets'"),
    (lambda p: p["scopes"]["default"].update(write=[]), "statements allow writes but write names no base table"),
    (lambda p: p["scopes"]["default"].update(hidden_columns=["staff.pin"]), "no column 'staff.pin'"),
    (lambda p: p["scopes"].update({"Bad-Name": {}}), "scopes.Bad-Name: a scope name"),
    (lambda p: p["defaults"].pop("select_limit_cap"), "select_limit_cap is not set"),
    (lambda p: p.update(scopes={}), "at least one scope"),
    (lambda p: p.update(database="sakila; DROP"), "database must name"),
])
def test_a_wrong_policy_fails_with_the_key_to_fix(change, message):
    policy = copy.deepcopy(POLICY)
    change(policy)
    with pytest.raises(AnsibleFilterError, match="sql_policy: ") as caught:
        sql_policy_scopes(policy, COLUMNS)
    assert message in str(caught.value)


def test_an_empty_database_is_refused():
    with pytest.raises(AnsibleFilterError, match="load it before"):
        sql_policy_scopes(POLICY, [])


def test_column_level_items_come_first_so_community_mysql_keeps_them_apart():
    # community.mysql 3.16 appends a column-level item's privileges to the plain item parsed just before it.
    grants = sql_policy_grants(resolved()["default"], COLUMNS, CASCADES, "sakila")
    for priv in (grants["read"], grants["write"]):
        items = priv.split("/")
        with_columns = [index for index, item in enumerate(items) if "(" in item]
        assert with_columns == list(range(len(with_columns))), items


def test_a_table_whose_deletes_reach_other_rows_gets_no_delete():
    # payment.rental_id is ON DELETE SET NULL (ON UPDATE CASCADE): deleting a rental changes payments.
    cascades = [*CASCADES, {"table": "film", "column": "film_id", "on_update": "CASCADE", "on_delete": "SET NULL"},
                {"table": "actor", "column": "actor_id", "on_update": "RESTRICT", "on_delete": "RESTRICT"}]
    grants = sql_policy_grants(resolved()["default"], COLUMNS, cascades, "sakila")
    write = dict(item.rsplit(":", 1) for item in grants["write"].split("/"))
    assert write["sakila.film"] == "SELECT,INSERT,UPDATE (`title`, `language_id`, `last_update`)"
    # A rule-less row (the old form) means ON UPDATE CASCADE; RESTRICT rules take nothing away.
    assert write["sakila.language"] == "SELECT,INSERT,UPDATE (`name`, `last_update`),DELETE"
    assert write["sakila.actor"] == "SELECT,INSERT,UPDATE (`first_name`, `last_name`, `last_update`),DELETE"
