"""Unit tests of sakila_sql on the official archive (../shared/sakila, never copied into the repository)."""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloudpatterns.mysql.plugins.filter.sakila import sakila_sql, split_statements

ARCHIVE = Path(os.environ.get("SAKILA_ARCHIVE", Path(__file__).resolve().parents[5] / "shared/sakila/sakila-db.tar.gz"))


def code(sql: str) -> str:
    """The SQL without its `--` comment lines."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


@pytest.fixture(scope="module")
def sakila() -> dict[str, str]:
    assert ARCHIVE.is_file(), f"the sakila archive is expected at {ARCHIVE} (set SAKILA_ARCHIVE)"
    sums = ARCHIVE.with_name("SHA256SUMS")
    if sums.is_file():
        expected = sums.read_text().split()[0]
        assert hashlib.sha256(ARCHIVE.read_bytes()).hexdigest() == expected
    with tarfile.open(ARCHIVE) as archive:
        read = lambda name: archive.extractfile(f"sakila-db/{name}").read().decode()  # noqa: E731
        return {"schema": read("sakila-schema.sql"), "data": read("sakila-data.sql")}


def test_mariadb_drops_only_the_srid_comment(sakila: dict[str, str]) -> None:
    result = sakila_sql(sakila["schema"], "mariadb")
    assert "SRID" not in code(result["schema"])
    assert result["schema"] == sakila["schema"].replace("/*!80003 SRID 0 */ ", "")
    assert result["local"] == ""


def test_mysql_is_unchanged(sakila: dict[str, str]) -> None:
    assert sakila_sql(sakila["schema"], "mysql")["schema"] == sakila["schema"]


def test_ndb_stores_every_table_in_the_data_nodes(sakila: dict[str, str]) -> None:
    schema = code(sakila_sql(sakila["schema"], "ndb", sakila["data"])["schema"])
    tables = re.findall(r"CREATE TABLE (\w+) \(.*?\n\)([^;]*);", schema, re.DOTALL)
    assert len(tables) == 16
    assert all("ENGINE=NDBCLUSTER" in options for _, options in tables), tables
    assert "ENGINE=InnoDB" not in schema


def test_ndb_removes_what_ndb_lacks(sakila: dict[str, str]) -> None:
    schema = code(sakila_sql(sakila["schema"], "ndb", sakila["data"])["schema"])
    assert "FULLTEXT" not in schema
    assert "SPATIAL" not in schema
    assert "ON UPDATE CASCADE" not in schema
    assert "ON DELETE RESTRICT" in schema
    assert "location GEOMETRY" in schema


def test_ndb_lists_every_object_sql_nodes_keep_for_themselves(sakila: dict[str, str]) -> None:
    result = sakila_sql(sakila["schema"], "ndb", sakila["data"])
    assert result["local_objects"] == {
        "trigger": ["ins_film", "upd_film", "del_film", "customer_create_date", "payment_date", "rental_date"],
        "view": [
            "customer_list",
            "film_list",
            "nicer_but_slower_film_list",
            "staff_list",
            "sales_by_store",
            "sales_by_film_category",
            "actor_info",
        ],
        "procedure": ["rewards_report", "film_in_stock", "film_not_in_stock"],
        "function": ["get_customer_balance", "inventory_held_by_customer", "inventory_in_stock"],
    }


def test_ndb_local_script_is_idempotent_and_keeps_delimiters(sakila: dict[str, str]) -> None:
    local = sakila_sql(sakila["schema"], "ndb", sakila["data"])["local"]
    assert local.startswith("USE sakila;\n")
    for name in ["ins_film", "rental_date", "actor_info", "rewards_report", "inventory_in_stock"]:
        assert re.search(rf"DROP \w+ IF EXISTS `{name}`;\n", local), name
    statements = split_statements(local)
    assert len(statements) == 1 + 2 * 19
    assert {s.delimiter for s in statements} == {";", ";;", "//", "$$"}


def test_split_statements_honours_delimiters() -> None:
    script = (
        "SET a=1;\n-- a comment\nDELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; END//\nDELIMITER ;\nSELECT 2;\n"
    )
    statements = split_statements(script)
    assert [(s.text.splitlines()[-1], s.delimiter) for s in statements] == [
        ("SET a=1", ";"),
        ("CREATE PROCEDURE p() BEGIN SELECT 1; END", "//"),
        ("SELECT 2", ";"),
    ]


def test_truncated_script_is_an_error() -> None:
    with pytest.raises(AnsibleFilterError, match="truncated"):
        split_statements("DELIMITER ;;\nCREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN\n")


def test_unknown_engine_and_wrong_file() -> None:
    with pytest.raises(AnsibleFilterError, match="unknown engine"):
        sakila_sql("CREATE TABLE actor (", "postgres")
    with pytest.raises(AnsibleFilterError, match="not sakila-schema.sql"):
        sakila_sql("SELECT 1;", "mariadb")
