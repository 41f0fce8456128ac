"""Injection (issue 7, part 1): two corpora through the gatekeeper of the deployed lab, on every route.

* data/hostile.jsonl: every entry must be refused (a JSON error, 4xx; or the statement timeout where the entry
  says so) or harmless (a 200 that reads only what the key may read anyway, writes nothing, returns quickly and
  leaks nothing), and the entry's own expectation (refuse / harmless / safe = either, plus an exact status or
  code where given) must hold. CHECKSUM TABLE of every sakila table, on every SQL node, is identical before
  and after.
* data/legitimate.jsonl: every query is accepted on every route and returns exactly what the same statement
  returns when run as root with the mysql client on the manager, at test time. The expected rows are computed,
  not stored: they cannot drift from the data the lab loaded, and the comparison covers every column type the
  corpus touches (DECIMAL, DATETIME, TIME, YEAR, SET, NULL, text with quotes, backslashes and non-ASCII). A few
  entries also carry stored rows (`expect_rows`: sakila's documented counts and first rows) so that the root
  side is checked too.

One miss fails the test; the figures go to reports/reliability/injection.json.
"""

from __future__ import annotations

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
    "invalid_utf8", "json_confusion", "statement_policy",
}
LEGITIMATE_CATEGORIES = {"join", "aggregate", "subquery", "grouping", "ordering", "parameters"}
REFUSAL_STATUSES = {400, 403, 413}
HARMLESS_SECONDS = 3.0  # a harmless answer is a quick one: no SLEEP, no BENCHMARK got through
SLOW_SECONDS = 8.0  # an entry marked slow is stopped by the proxy's 5 s statement timeout


@pytest.fixture(scope="module")
def client(lab: Lab):
    gatekeeper = GatekeeperClient(lab)
    yield gatekeeper
    gatekeeper.close()


def judge(entry: dict[str, Any], answer: Answer, secrets: list[str]) -> list[str]:
    """What is wrong with this answer to a hostile entry (empty: refused or harmless as expected)."""
    problems = []
    text = answer.raw.decode("utf-8", errors="replace")
    problems += [f"leaks {what}" for what in leaks(text, secrets)]
    if not isinstance(answer.body, dict):
        return [*problems, f"status {answer.status} with a body that is not a JSON object: {text[:120]!r}"]
    expect = entry["expect"]
    if answer.status == 200:
        if expect == "refuse":
            problems.append("accepted, expected a refusal")
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
        if answer.elapsed > HARMLESS_SECONDS:
            problems.append(f"took {answer.elapsed:.1f} s: something made the server wait")
        return problems
    if set(answer.body) != {"error", "request_id"} or not answer.error_code or not answer.body["error"].get("message"):
        problems.append(f"status {answer.status} without a JSON error document: {text[:120]!r}")
    if expect == "harmless":
        problems.append(f"refused ({answer.status} {answer.error_code}), expected a harmless answer")
    if "status" in entry and answer.status != entry["status"]:
        problems.append(f"status {answer.status} {answer.error_code}, expected {entry['status']}")
    elif "status" not in entry and answer.status not in REFUSAL_STATUSES:
        problems.append(f"status {answer.status} {answer.error_code} is not a refusal")
    if "code" in entry and answer.error_code != entry["code"]:
        problems.append(f"code {answer.error_code}, expected {entry['code']}")
    if answer.elapsed > (SLOW_SECONDS if entry.get("slow") else HARMLESS_SECONDS):
        problems.append(f"took {answer.elapsed:.1f} s to be refused")
    return problems


def test_hostile_corpus_is_refused_or_harmless_and_changes_nothing(lab: Lab, client: GatekeeperClient) -> None:
    entries = load_corpus("hostile")
    assert len(entries) >= 300
    assert {entry["category"] for entry in entries} == HOSTILE_CATEGORIES
    deadline = Deadline(420, "the hostile corpus")
    secrets = secret_values(lab)
    sql_nodes = lab.with_role("sql_node")
    before = {node.name: checksums(node) for node in sql_nodes}
    assert len(set(map(str, before.values()))) == 1, f"the SQL nodes differ before the corpus: {before}"

    misses: list[str] = []
    outcomes: dict[str, Counter] = defaultdict(Counter)
    codes: Counter = Counter()
    refusal_latency: list[float] = []
    for entry in entries:
        data, content_type = request_body(entry)
        for route in ROUTES:
            deadline.check()
            answer = client.send(route, data, content_type)
            problems = judge(entry, answer, secrets)
            if problems:
                misses.append(f"{entry['id']} on /{route}: {'; '.join(problems)} <- {describe(entry)}")
            refused = answer.status != 200
            outcomes[entry["category"]]["refused" if refused else "harmless"] += 1
            if refused:
                codes[f"{answer.status} {answer.error_code}"] += 1
                if not entry.get("slow"):
                    refusal_latency.append(answer.elapsed)

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
        "refusals_by_status_and_code": dict(codes.most_common()),
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
    assert len(entries) >= 100
    assert LEGITIMATE_CATEGORIES <= {entry["category"] for entry in entries}
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
