# Copyright: cloudpatterns.mysql contributors
# Apache License 2.0 (see LICENSE)
"""Adapt the official sakila SQL files to the engine that will store them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: sakila_sql
short_description: Adapt sakila's schema to MariaDB, MySQL or MySQL NDB Cluster
version_added: 0.1.0
description:
  - Takes the text of C(sakila-schema.sql) (and of C(sakila-data.sql), which defines three triggers) and
    returns what to load for the given engine.
  - C(mariadb) drops the C(/*!80003 SRID 0 */) versioned comment, which MariaDB executes and rejects.
  - C(mysql) changes nothing.
  - C(ndb) stores every table in the data nodes (C(ENGINE=NDBCLUSTER)), removes what NDB lacks (the
    FULLTEXT index of C(film_text), the SPATIAL index of C(address.location), C(ON UPDATE CASCADE) towards
    a parent's primary key), and lists the objects each SQL node keeps for itself (views, triggers,
    procedures, functions) so they can be created on every SQL node, not only the one that loads.
options:
  _input:
    description: Text of sakila-schema.sql.
    type: str
    required: true
  engine:
    description: Engine that stores the tables.
    type: str
    choices: [mariadb, mysql, ndb]
    required: true
  data:
    description: Text of sakila-data.sql, whose triggers belong to the local objects.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Write the schema for a MariaDB server
  ansible.builtin.copy:
    content: >-
      {{ (lookup('ansible.builtin.file', 'sakila-schema.sql') | cloudpatterns.mysql.sakila_sql('mariadb')).schema }}
    dest: /var/lib/cloudpatterns/sakila/schema.sql
    mode: "0600"
"""

RETURN = r"""
_value:
  description: What to load.
  type: dict
  contains:
    schema:
      description: The schema to load once, on the node that loads the data.
      type: str
    local:
      description: >-
        For ndb, the views, triggers and routines, idempotent (DROP ... IF EXISTS first), to run on every
        other SQL node; empty for the other engines.
      type: str
    local_objects:
      description: Names of those objects by kind (view, trigger, procedure, function), to verify them.
      type: dict
"""

ENGINES = ("mariadb", "mysql", "ndb")
_SRID = re.compile(r"/\*!80003 SRID 0 \*/\s*")
_SPATIAL = re.compile(r"^\s*/\*!50705 SPATIAL KEY [^\n]*\*/\n", re.MULTILINE)
_FULLTEXT = re.compile(r",\s*FULLTEXT KEY [^\n]*\)(?=\n\))")
_ON_UPDATE_CASCADE = re.compile(r"\s+ON UPDATE CASCADE\b")
_INNODB = re.compile(r"ENGINE=InnoDB\b")
_CREATE_OBJECT = re.compile(
    r"^CREATE\s+(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?(VIEW|TRIGGER|PROCEDURE|FUNCTION)\s+`?(\w+)`?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    """One statement of a mysql client script, with the delimiter it was written under."""

    text: str
    delimiter: str

    @property
    def local_object(self) -> tuple[str, str] | None:
        """(kind, name) when the statement creates an object NDB does not share between SQL nodes."""
        match = _CREATE_OBJECT.match(_strip_comments(self.text))
        return (match.group(1).lower(), match.group(2)) if match else None


def _strip_comments(text: str) -> str:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip()


def split_statements(script: str) -> list[Statement]:
    """Split a mysql client script into statements, honouring DELIMITER lines."""
    statements: list[Statement] = []
    delimiter = ";"
    buffer: list[str] = []
    for line in script.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.upper().startswith("DELIMITER ") and not _strip_comments("".join(buffer)):
            delimiter = stripped.split(None, 1)[1]
            buffer = []
            continue
        buffer.append(line)
        if stripped.endswith(delimiter):
            text = "".join(buffer).rstrip()
            statements.append(Statement(text[: -len(delimiter)].rstrip(), delimiter))
            buffer = []
    if _strip_comments("".join(buffer)):
        raise AnsibleFilterError(
            f"sakila_sql: the script ends inside a statement (delimiter {delimiter!r}): is the file truncated?"
        )
    return statements


def _ndb_tables(schema: str) -> str:
    schema = _INNODB.sub("ENGINE=NDBCLUSTER", schema)
    schema = _SPATIAL.sub("", schema)
    schema = _ON_UPDATE_CASCADE.sub("", schema)
    fulltext_removed = _FULLTEXT.sub("", schema)
    if fulltext_removed == schema:
        raise AnsibleFilterError("sakila_sql: film_text's FULLTEXT index was not found; is this sakila 1.5?")
    # film_text is created under a default engine instead of an ENGINE clause.
    return fulltext_removed.replace(") DEFAULT CHARSET=utf8mb4;", ") ENGINE=NDBCLUSTER DEFAULT CHARSET=utf8mb4;")


def _drop_statement(kind: str, name: str) -> str:
    return f"DROP {kind.upper()} IF EXISTS `{name}`"


def _local_script(statements: list[Statement]) -> str:
    """Views, triggers and routines as an idempotent script for one SQL node."""
    lines = ["USE sakila;"]
    for statement in statements:
        kind, name = statement.local_object  # type: ignore[misc]
        lines.append(f"{_drop_statement(kind, name)};")
        if statement.delimiter == ";":
            lines.append(f"{statement.text};")
        else:
            lines.extend([f"DELIMITER {statement.delimiter}", f"{statement.text}{statement.delimiter}", "DELIMITER ;"])
    return "\n".join(lines) + "\n"


def sakila_sql(schema: str, engine: str, data: str = "") -> dict[str, Any]:
    """What to load for `engine`: see DOCUMENTATION."""
    if engine not in ENGINES:
        raise AnsibleFilterError(f"sakila_sql: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not isinstance(schema, str) or "CREATE TABLE actor" not in schema:
        raise AnsibleFilterError("sakila_sql: the input is not sakila-schema.sql (no CREATE TABLE actor found)")
    if engine == "mariadb":
        return {"schema": _SRID.sub("", schema), "local": "", "local_objects": {}}
    if engine == "mysql":
        return {"schema": schema, "local": "", "local_objects": {}}
    tables = _ndb_tables(schema)
    local = [s for s in split_statements(tables) + split_statements(data) if s.local_object]
    objects: dict[str, list[str]] = {}
    for statement in local:
        kind, name = statement.local_object  # type: ignore[misc]
        objects.setdefault(kind, []).append(name)
    return {"schema": tables, "local": _local_script(local), "local_objects": objects}


class FilterModule:
    """sakila filters."""

    def filters(self) -> dict[str, Any]:
        return {"sakila_sql": sakila_sql}
