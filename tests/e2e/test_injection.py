"""Injection (issue 7, part 1): two corpora through the gatekeeper of the deployed lab, on every route.

* data/hostile.jsonl: every entry is refused or harmless, as the entry itself says:
  - `expect: refuse` pins the `status` and `code` of the refusal, and only that answer counts. A refusal by the
    database (`DATABASE_CODES`: the statement reached the server, which refused it: no grant, too many rows, too
    large a result, the statement timeout, a syntax error or a constraint) counts only where the entry pins that
    very code and says `by: database`: a `400 sql_error` for a statement the validator should have refused is a
    miss, not a refusal;
  - `expect: harmless` is a 200 that reads only what the key may read anyway: no hidden column (staff.password,
    staff.picture), no row of another schema (a mysql.user row, a server variable, an identity function), writes
    no more than `write_rows`, returns at most `max_rows` (or exactly `rows`) rows, quickly;
  - `expect: safe` is either, and a refusal must still be the pinned one.
  Entries are sent with the API key the entry names (`key`: `readonly`; null sends none), else `default`.
  CHECKSUM TABLE of every sakila table, on every SQL node, is identical before and after.
* data/legitimate.jsonl: every query (a SELECT) is accepted on every route and returns exactly what the same
  statement returns when run as root with the mysql client on the manager, at test time. The expected rows are
  computed, not stored: they cannot drift from the data the lab loaded, and the comparison covers every column type
  the corpus touches (DECIMAL, DATETIME, TIME, YEAR, SET, NULL, text with quotes, backslashes and non-ASCII). A few
  entries also carry stored rows (`expect_rows`: sakila's documented counts and first rows) so that the root side
  is checked too.

The same corpora are checked offline against the validator itself (tests/unit/e2e_corpus): each pinned validator
code is the one it gives, each database-side entry and each legitimate query is accepted by it.

One miss fails the test; the figures go to reports/reliability/injection.json.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import pytest

from conftest import Lab
from reliability import (
    ROUTES,
    Answer,
    Deadline,
    GatekeeperClient,
    checksums,
    describe,
    inline_params,
    leaks,
    load_corpus,
    request_body,
    rows_match,
    run_as_root,
    secret_values,
    write_report,
)

HOSTILE_CATEGORIES = {
    "classic", "stacked", "comment", "encoding", "time_based", "union_system", "outfile", "very_long",
    "invalid_utf8", "json_confusion", "statement_policy", "tautology", "ambiguous_token", "alias_keyword",
    "identity_function", "stored_function", "hidden_column", "view_write", "readonly", "cascade", "blast_radius",
    "result_size", "executable_comment", "sql_mode", "variables", "naming", "credentials",
}
LEGITIMATE_CATEGORIES = {
    "join", "aggregate", "subquery", "grouping", "ordering", "parameters", "filtering", "functions", "window",
    "view", "naming", "json", "visible_columns",
}
# Every code a hostile entry may pin, with its status. Refused before the database: by the gatekeeper (body,
# credentials, rate) or by the trusted host's validator.
CODE_STATUS = {
    "query_too_long": 400, "unterminated_literal": 400, "empty_query": 400, "unbalanced_parentheses": 400,
    "too_deeply_nested": 400, "invalid_placeholders": 400, "placeholder_mismatch": 400, "unsupported_syntax": 400,
    "invalid_json": 400, "invalid_request": 400, "invalid_params": 400, "unsupported_content_type": 400,
    "payload_too_large": 413,
    "comment_not_allowed": 403, "multiple_statements": 403, "character_not_allowed": 403, "ambiguous_token": 403,
    "statement_not_allowed": 403, "into_file": 403, "into_not_allowed": 403, "procedure_not_allowed": 403,
    "function_not_allowed": 403, "table_not_allowed": 403, "table_not_writable": 403, "column_not_allowed": 403,
    "system_schema": 403, "schema_not_allowed": 403, "unknown_qualifier": 403, "unreadable_table_reference": 403,
    "missing_where": 403, "tautological_where": 403,
    "missing_credentials": 401, "invalid_credentials": 401, "rate_limited": 429, "too_many_concurrent": 429,
    # Refused by the database: the statement reached it.
    "database_denied": 403, "too_many_rows": 403, "result_too_large": 403, "statement_timeout": 422,
    "sql_error": 400, "constraint_violation": 400, "user_limit": 429,
}
DATABASE_CODES = {
    "database_denied", "too_many_rows", "result_too_large", "statement_timeout", "sql_error", "constraint_violation",
    "user_limit",
}
KEYS = {"default", "readonly", None}  # the API key an entry is sent with (None: no Authorization header)
HIDDEN_COLUMNS = {"password", "picture"}
HARMLESS_SECONDS = 3.0  # a harmless answer is a quick one: no SLEEP, no BENCHMARK got through
SLOW_SECONDS = 8.0  # an entry marked slow is stopped by the 5 s statement timeout

# A column of a harmless answer that only another schema, a server variable or an identity function has.
FOREIGN_COLUMNS = re.compile(
    r"^(@.*|authentication_string|password_expired|plugin|\w+_priv|grantee|privilege_type|is_grantable|"
    r"table_(schema|catalog|type)|schema_name|variable_(name|value)|"
    r"(database|schema|user|current_user|session_user|system_user|current_role|version|connection_id|uuid|"
    r"uuid_short|sys_guid)\s*(\(.*\))?)$",
    re.IGNORECASE,
)
# A value of a harmless answer that only another schema, a variable or an identity function holds: a database
# account (with its host, as USER() gives it), a schema name, a server path, a Galera address, a UUID. The server
# writes all of them in lower case (UNHEX('4d7973716c') is 'Mysql', a harmless answer).
FOREIGN_VALUES = re.compile(
    r"^((root|mariadb\.sys|mysql\.(sys|session|infoschema)|sg_\w+_[rw]|sqlgate_probe|sakila_app)(@.*)?|"
    r"information_schema|performance_schema|mysql|sys|localhost|gcomm://.*|/(etc|var|usr|run|tmp|proc)/.*|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


@pytest.fixture(scope="module")
def client(lab: Lab):
    gatekeeper = GatekeeperClient(lab)
    yield gatekeeper
    gatekeeper.close()


def corpus_problems(entries: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the hostile corpus itself: a refusal without its exact status and code, a database
    refusal not marked as one (or a validator code marked so), an unknown key."""
    problems = []
    for entry in entries:
        where = entry["id"]
        if entry["expect"] not in ("refuse", "harmless", "safe"):
            problems.append(f"{where}: expect {entry['expect']!r}")
        if entry.get("key", "default") not in KEYS:
            problems.append(f"{where}: unknown key {entry['key']!r}")
        if entry["expect"] == "harmless":
            if "code" in entry or "status" in entry:
                problems.append(f"{where}: a harmless entry pins no refusal")
            continue
        code = entry.get("code")
        if code not in CODE_STATUS:
            problems.append(f"{where}: expect {entry['expect']} must pin a known code, not {code!r}")
            continue
        if entry.get("status") != CODE_STATUS[code]:
            problems.append(f"{where}: {code} is status {CODE_STATUS[code]}, not {entry.get('status')}")
        if (code in DATABASE_CODES) != (entry.get("by") == "database"):
            problems.append(f"{where}: `by: database` goes with exactly the database's codes ({code})")
    return problems


def foreign_data(body: dict[str, Any]) -> list[str]:
    """Columns and values of a 200 that the key may not read: hidden columns, other schemas, server variables."""
    found = []
    columns = [str(column) for column in body.get("columns") or []]
    for column in columns:
        name = column.strip("`").rsplit(".", 1)[-1].lower()
        if name in HIDDEN_COLUMNS:
            found.append(f"returned the hidden column {column!r}")
        elif FOREIGN_COLUMNS.match(column.strip("`")):
            found.append(f"returned the column {column!r} of another schema, a variable or an identity function")
    for row in body.get("rows") or []:
        for cell in row:
            if isinstance(cell, str) and FOREIGN_VALUES.match(cell):
                found.append(f"returned {cell[:60]!r}, a value of another schema or of the server")
                return found
    return found


def judge(entry: dict[str, Any], answer: Answer, secrets: list[str]) -> list[str]:
    """What is wrong with this answer to a hostile entry (empty: refused or harmless as the entry expects)."""
    problems = []
    text = answer.raw.decode("utf-8", errors="replace")
    problems += [f"leaks {what}" for what in leaks(text, secrets)]
    if not isinstance(answer.body, dict):
        return [*problems, f"status {answer.status} with a body that is not a JSON object: {text[:120]!r}"]
    expect = entry["expect"]
    if answer.status == 200:
        if expect == "refuse":
            by = "the database" if entry.get("by") == "database" else "the validator"
            problems.append(f"accepted, expected {entry['status']} {entry['code']} from {by}")
        body = answer.body
        written = body.get("affected_rows", 0) if body.get("kind") == "write" else 0
        if written != entry.get("write_rows", 0):
            problems.append(f"wrote {written} rows")
        if "rows" in body:
            count = len(body["rows"])
            if "rows" in entry and count != entry["rows"]:
                problems.append(f"returned {count} rows, expected {entry['rows']}")
            if count > entry.get("max_rows", 1000):
                problems.append(f"returned {count} rows, at most {entry.get('max_rows', 1000)} expected")
        problems += foreign_data(body)
        if answer.elapsed > HARMLESS_SECONDS:
            problems.append(f"took {answer.elapsed:.1f} s: something made the server wait")
        return problems
    code = answer.error_code
    if set(answer.body) != {"error", "request_id"} or not code or not answer.body["error"].get("message"):
        problems.append(f"status {answer.status} without a JSON error document: {text[:120]!r}")
    if expect == "harmless":
        problems.append(f"refused ({answer.status} {code}), expected a harmless answer")
    elif (answer.status, code) != (entry["status"], entry["code"]):
        if code in DATABASE_CODES:
            problems.append(
                f"reached the database, which answered {answer.status} {code}; expected {entry['status']} "
                f"{entry['code']}" + (" from the validator" if entry["code"] not in DATABASE_CODES else ""))
        else:
            problems.append(f"refused with {answer.status} {code}, expected {entry['status']} {entry['code']}")
    if answer.elapsed > (SLOW_SECONDS if entry.get("slow") else HARMLESS_SECONDS):
        problems.append(f"took {answer.elapsed:.1f} s to be refused")
    return problems


def test_hostile_corpus_is_refused_or_harmless_and_changes_nothing(lab: Lab, client: GatekeeperClient) -> None:
    entries = load_corpus("hostile")
    assert len(entries) >= 600
    assert {entry["category"] for entry in entries} == HOSTILE_CATEGORIES
    assert corpus_problems(entries) == []
    deadline = Deadline(480, "the hostile corpus")
    secrets = secret_values(lab)
    sql_nodes = lab.with_role("sql_node")
    before = {node.name: checksums(node) for node in sql_nodes}
    assert len(set(map(str, before.values()))) == 1, f"the SQL nodes differ before the corpus: {before}"

    misses: list[str] = []
    outcomes: dict[str, Counter] = defaultdict(Counter)
    codes: Counter = Counter()
    where_refused: Counter = Counter()  # requests refused before / by the database
    entry_outcomes: Counter = Counter()  # entries, by where their answers came from
    refusal_latency: list[float] = []
    for entry in entries:
        data, content_type = request_body(entry)
        seen = set()
        for route in ROUTES:
            deadline.check()
            answer = client.send(route, data, content_type, key=entry.get("key", ""))
            problems = judge(entry, answer, secrets)
            if problems:
                misses.append(f"{entry['id']} on /{route}: {'; '.join(problems)} <- {describe(entry)}")
            refused = answer.status != 200
            outcomes[entry["category"]]["refused" if refused else "harmless"] += 1
            if refused:
                codes[f"{answer.status} {answer.error_code}"] += 1
                where = "by_database" if answer.error_code in DATABASE_CODES else "before_database"
                where_refused[where] += 1
                seen.add(where)
                if not entry.get("slow"):
                    refusal_latency.append(answer.elapsed)
            else:
                seen.add("harmless")
        entry_outcomes[seen.pop() if len(seen) == 1 else "mixed"] += 1

    after = {node.name: checksums(node) for node in sql_nodes}
    changed = {
        node: sorted(table for table in before[node] if before[node][table] != after[node].get(table))
        for node in before
    }
    figures = {
        "entries": len(entries),
        "requests": len(entries) * len(ROUTES),
        "routes": list(ROUTES),
        "by_category": {category: dict(counts) for category, counts in sorted(outcomes.items())},
        "by_key": dict(Counter(str(entry.get("key", "default")) for entry in entries)),
        "refusals_by_status_and_code": dict(codes.most_common()),
        "refusals_before_and_by_the_database": {
            "requests": {"before_database": where_refused["before_database"],
                         "by_database": where_refused["by_database"]},
            "entries": {"before_database": entry_outcomes["before_database"],
                        "by_database": entry_outcomes["by_database"], "harmless": entry_outcomes["harmless"],
                        "mixed": entry_outcomes["mixed"]},
        },
        "entries_by_expected_code": dict(Counter(
            f"{entry['status']} {entry['code']}" if entry["expect"] == "refuse" else entry["expect"]
            for entry in entries).most_common()),
        "refusal_latency_ms_p50_p99": [
            round(sorted(refusal_latency)[len(refusal_latency) // 2] * 1000, 1),
            round(sorted(refusal_latency)[int(len(refusal_latency) * 0.99)] * 1000, 1),
        ],
        "misses": misses,
        "checksums_tables": len(next(iter(before.values()))),
        "checksums_nodes": sorted(before),
        "checksums_changed": {node: tables for node, tables in changed.items() if tables},
        "rate_limited_and_retried": client.rate_limited,
        "seconds": round(deadline.elapsed, 1),
    }
    write_report(lab, "injection", "hostile", figures)
    assert misses == [], f"{len(misses)} hostile entries were neither refused nor harmless:\n" + "\n".join(misses)
    assert after == before, f"CHECKSUM TABLE changed: {figures['checksums_changed']}"


def test_legitimate_corpus_is_accepted_with_the_servers_own_results(lab: Lab, client: GatekeeperClient) -> None:
    entries = load_corpus("legitimate")
    assert len(entries) >= 180
    assert {entry["category"] for entry in entries} == LEGITIMATE_CATEGORIES
    deadline = Deadline(300, "the legitimate corpus")
    manager = lab.with_role("cluster_manager")[0]
    expected = run_as_root(manager, [inline_params(entry["query"], entry.get("params")) for entry in entries])

    misses: list[str] = []
    nodes: Counter = Counter()
    latency: list[float] = []
    for entry, truth in zip(entries, expected, strict=True):
        if "error" in truth:
            misses.append(f"{entry['id']}: the statement fails as root: {truth['error']}")
            continue
        if "expect_rows" in entry and truth["rows"] != entry["expect_rows"]:
            misses.append(f"{entry['id']}: root returns {truth['rows'][:3]}, sakila has {entry['expect_rows']}")
        for route in ROUTES:
            deadline.check()
            answer = client.query(route, entry["query"], entry.get("params"))
            where = f"{entry['id']} on /{route}"
            if answer.status != 200:
                misses.append(f"{where}: {answer.status} {answer.body} <- {describe(entry)}")
                continue
            latency.append(answer.elapsed)
            nodes[answer.body["node"]] += 1
            if answer.body.get("kind") != "read":
                misses.append(f"{where}: classified {answer.body.get('kind')}")
            if truth["rows"] and answer.body["columns"] != truth["columns"]:
                misses.append(f"{where}: columns {answer.body['columns']} != {truth['columns']}")
            if not rows_match(answer.body["rows"], truth["rows"], entry.get("ordered", False)):
                misses.append(
                    f"{where}: {len(answer.body['rows'])} rows differ from the server's {len(truth['rows'])}: "
                    f"first {answer.body['rows'][:2]} vs {truth['rows'][:2]}"
                )
    non_empty = sum(1 for truth in expected if truth.get("rows"))
    figures = {
        "entries": len(entries),
        "requests": len(entries) * len(ROUTES),
        "by_category": dict(Counter(entry["category"] for entry in entries)),
        "with_params": sum(1 for entry in entries if entry.get("params")),
        "ordered_comparisons": sum(1 for entry in entries if entry.get("ordered")),
        "non_empty_results": non_empty,
        "rows_compared": sum(len(truth.get("rows", [])) for truth in expected) * len(ROUTES),
        "served_by": dict(sorted(nodes.items())),
        "latency": {
            "p50_ms": round(sorted(latency)[len(latency) // 2] * 1000, 1) if latency else None,
            "max_ms": round(max(latency) * 1000, 1) if latency else None,
        },
        "misses": misses,
        "seconds": round(deadline.elapsed, 1),
    }
    write_report(lab, "injection", "legitimate", figures)
    assert non_empty >= 0.9 * len(entries), "most legitimate queries must return rows, or the comparison proves little"
    assert misses == [], f"{len(misses)} legitimate queries failed:\n" + "\n".join(misses)
