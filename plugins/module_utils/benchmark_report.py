# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark report: from the raw results of playbooks/benchmark.yml to results.json, report.md and charts.

Pure functions (summaries, checks, Markdown) plus ``write_charts`` and ``write_report`` at the edge. The
raw results are what the sysbench role collects on the bench host: one entry per phase,

- ``{"kind": "oltp", "id", "label", "engine", "storage_engine", "mysql_hosts", "parameters", "steps",
  "prepare", "run", "cleanup"}``, each step the return of the module cloudpatterns.mysql.sysbench;
- ``{"kind": "http", "route", "label", "tool", "target", "workload", "parameters", "runs"}``, each run the
  return of cloudpatterns.mysql.wrk (tool wrk) or cloudpatterns.mysql.sysbench (tool sysbench, the same
  statements straight to a SQL node) plus ``clients``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.service_cpu import ServiceCpuError, tier_cpu
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.sysbench import expected_writes_per_transaction

SCHEMA_VERSION = 2

# What the reference deployment published: sysbench oltp_read_write, 6 threads, 60 s, one table of
# 1,000,000 rows, run from a laptop across the internet against t2.micro instances (MySQL 8 standalone,
# MySQL NDB Cluster with 1 manager and 3 data nodes).
REFERENCE: dict[str, Any] = {
    "test": "oltp_read_write",
    "threads": 6,
    "time_s": 60,
    "table_size": 1_000_000,
    "client": "a laptop across the internet",
    "queries_per_sec": {"standalone": 3072.47, "cluster": 2941.76},
}

# The goals issue 5 set for the request path, checked against the figures.
CHAIN_GOALS = {"p50_overhead_ms": 3.0, "throughput_ratio": 0.40, "customized_vs_random": 0.10}

OLTP_ORDER = ("standalone", "cluster_one", "cluster_all")
ROUTE_ORDER = ("direct", "random", "customized", "database")
WORKLOAD_LABELS = {"pk": "primary-key reads", "mix": "read/write mix (8 reads, 2 updates)"}
PERCENTILES = (50, 95, 99)
# How far a run's writes per transaction may be from the workload's before the run is not like with like:
# fewer mean writes that found no row (ids the table does not have), more mean retries beyond the errors.
WRITES_TOLERANCE = 0.02


class ReportError(Exception):
    """The results cannot be turned into a report (wrong shape); the message says what is wrong."""


# --------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------


def histogram_percentile(histogram: Sequence[Mapping[str, Any]], percentile: float) -> float | None:
    """The value of the bucket where the cumulative count reaches ``percentile`` % (None when empty).

    sysbench's histogram has logarithmic buckets (about 1.5 % wide) and prints each non-empty one's
    value with its count; the percentile is read the way sysbench reads its own.
    """
    rows = sorted(((float(row["value_ms"]), int(row["count"])) for row in histogram), key=lambda row: row[0])
    total = sum(count for _, count in rows)
    if total <= 0:
        return None
    wanted = math.ceil(total * percentile / 100.0)
    seen = 0
    for value, count in rows:
        seen += count
        if seen >= wanted:
            return value
    return rows[-1][0]


def _rounded(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def writes_check(
    writes: int | None, transactions: int | None, ignored_errors: int | None, test: str | None, options: Any = None
) -> dict[str, Any]:
    """Whether a run's writes per transaction are the workload's, within WRITES_TOLERANCE.

    sysbench counts a write as one only when it changed a row, so a run whose UPDATEs and DELETEs miss
    (ids stepped by Galera's AUTO_INCREMENT, a table of another size) shows fewer. Statements of a
    transaction rolled back after an ignored error are counted too, so the upper bound allows the
    workload's writes for each such error. Returns {expected, measured, low, high, ok, reason}; ok is None
    when the test's writes are unknown (the reason says why) or nothing ran.
    """
    expected, why = expected_writes_per_transaction(test, options if isinstance(options, Mapping) else None)
    check: dict[str, Any] = {"expected": expected, "measured": None, "low": None, "high": None, "ok": None}
    if not transactions or writes is None:
        return check | {"reason": "no transactions"}
    check["measured"] = round(writes / transactions, 4)
    if expected is None:
        return check | {"reason": f"not checked: {why}"}
    retried = (ignored_errors or 0) / transactions
    check["low"] = round(expected * (1 - WRITES_TOLERANCE), 4)
    check["high"] = round(expected * (1 + retried) * (1 + WRITES_TOLERANCE), 4)
    check["ok"] = check["low"] <= check["measured"] <= check["high"]
    return check | {"reason": why}


def summarize_oltp(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one OLTP target that the report shows (the raw entry keeps the rest)."""
    run = entry.get("run") or {}
    parameters = entry.get("parameters") or {}
    latency = run.get("latency_ms") or {}
    histogram = run.get("histogram") or []
    queries = run.get("queries") or {}
    transactions = run.get("transactions") or {}
    total_tx = transactions.get("total") or 0
    summary = {
        "id": entry.get("id"),
        "label": entry.get("label"),
        "test": parameters.get("test"),
        "ignore_errors": [str(code) for code in parameters.get("ignore_errors") or []],
        "engine": entry.get("engine"),
        "storage_engine": entry.get("storage_engine"),
        "mysql_hosts": list(entry.get("mysql_hosts") or []),
        "nodes": list(entry.get("nodes") or []),
        "threads": run.get("threads"),
        "measured_time_s": run.get("measured_time_s"),
        "warmup_s": run.get("warmup_s"),
        "transactions": transactions.get("total"),
        "transactions_per_sec": transactions.get("per_sec"),
        "queries": {key: queries.get(key) for key in ("read", "write", "other", "total")},
        "queries_per_sec": queries.get("per_sec"),
        "statements_per_transaction": _rounded(queries.get("total", 0) / total_tx, 2) if total_tx else None,
        "writes_per_transaction": _rounded(queries.get("write", 0) / total_tx, 2) if total_tx else None,
        "writes_check": writes_check(
            queries.get("write"),
            total_tx,
            (run.get("ignored_errors") or {}).get("total"),
            parameters.get("test"),
            parameters,
        ),
        "ignored_errors": (run.get("ignored_errors") or {}).get("total"),
        "ignored_errors_per_sec": (run.get("ignored_errors") or {}).get("per_sec"),
        "reconnects": (run.get("reconnects") or {}).get("total"),
        "latency_ms": {
            "min": latency.get("min"),
            "avg": latency.get("avg"),
            "p50": histogram_percentile(histogram, 50),
            f"p{latency.get('percentile') or 95}_sysbench": latency.get("percentile_value"),
            "p95": histogram_percentile(histogram, 95),
            "p99": histogram_percentile(histogram, 99),
            "max": latency.get("max"),
        },
        "rows_prepared": (entry.get("prepare") or {}).get("rows_inserted"),
        # skip_if_prepared found the tables in place: nothing was inserted.
        "prepare_skipped": bool(entry.get("prepare")) and "rows_inserted" not in (entry.get("prepare") or {}),
        "sysbench_version": run.get("sysbench_version"),
        "intervals": [
            {
                "time_s": item.get("time_s"),
                "tps": item.get("tps"),
                "qps": item.get("qps"),
                "latency_ms": item.get("latency_ms"),
                "warmup": item.get("warmup", False),
            }
            for item in run.get("intervals") or []
        ],
    }
    return summary


def summarize_http_run(tool: str, run: Mapping[str, Any]) -> dict[str, Any]:
    """One concurrency level of a route, the same figures whichever tool measured it."""
    if tool == "wrk":
        latency = run.get("latency_ms") or {}
        socket_errors = run.get("socket_errors") or 0
        non_2xx = run.get("non_2xx")
        if non_2xx is None:
            non_2xx = (run.get("errors") or {}).get("status", 0)
        return {
            "clients": run.get("clients"),
            "requests": run.get("requests"),
            "ok_requests": run.get("ok_requests"),
            "duration_s": run.get("duration_s"),
            "requests_per_sec": _rounded(run.get("requests_per_sec"), 2),
            "ok_per_sec": _rounded((run.get("ok_requests") or 0) / run["duration_s"], 2)
            if run.get("duration_s")
            else None,
            "latency_ms": {f"p{p}": latency.get(f"p{p}") for p in PERCENTILES}
            | {"mean": latency.get("mean"), "max": latency.get("max")},
            "errors": non_2xx + socket_errors,
            "non_2xx": non_2xx,
            "socket_errors": socket_errors,
            "status_codes": run.get("status_codes"),
        }
    if tool == "sysbench":
        histogram = run.get("histogram") or []
        transactions = run.get("transactions") or {}
        latency = run.get("latency_ms") or {}
        errors = (run.get("ignored_errors") or {}).get("total", 0) + (run.get("reconnects") or {}).get("total", 0)
        return {
            "clients": run.get("clients", run.get("threads")),
            "requests": transactions.get("total"),
            "ok_requests": transactions.get("total"),
            "duration_s": run.get("measured_time_s"),
            "requests_per_sec": transactions.get("per_sec"),
            "ok_per_sec": transactions.get("per_sec"),
            "latency_ms": {f"p{p}": histogram_percentile(histogram, p) for p in PERCENTILES}
            | {"mean": latency.get("avg"), "max": latency.get("max")},
            "errors": errors,
            "non_2xx": None,
            "socket_errors": None,
            "status_codes": None,
            "queries": run.get("queries"),
        }
    raise ReportError(f"unknown load tool {tool!r}; expected wrk or sysbench")


def run_tier_cpu(tiers: Sequence[str], run: Mapping[str, Any]) -> dict[str, Any]:
    """Per tier, the CPU its hosts' units used during one level and per request wrk counted.

    ``run["cpu"]`` holds the samples of the module cloudpatterns.mysql.service_cpu taken right before and
    right after the level, ``{before: [{tier, host, units, clock_ticks}], after: [...]}``. A tier whose samples
    cannot be paired gets ``{"error": sentence}``.
    """
    samples = run.get("cpu") or {}
    figures: dict[str, Any] = {}
    for tier in tiers:
        before = [sample for sample in samples.get("before") or [] if sample.get("tier") == tier]
        after = [sample for sample in samples.get("after") or [] if sample.get("tier") == tier]
        if not before:
            figures[tier] = {"error": "no CPU sample before the level"}
            continue
        ticks = int(before[0].get("clock_ticks") or 100)
        try:
            figures[tier] = tier_cpu(before, after, run.get("requests"), ticks)
        except ServiceCpuError as error:
            figures[tier] = {"error": str(error)}
    return figures


def summarize_http(entry: Mapping[str, Any]) -> dict[str, Any]:
    tiers = [str(tier.get("name")) for tier in entry.get("cpu_tiers") or []]
    runs = []
    for run in entry.get("runs") or []:
        summary = summarize_http_run(entry.get("tool", ""), run)
        if tiers:
            summary["cpu"] = run_tier_cpu(tiers, run)
        runs.append(summary)
    return {
        "route": entry.get("route"),
        "label": entry.get("label"),
        "workload": entry.get("workload"),
        "tool": entry.get("tool"),
        "target": entry.get("target"),
        "cpu_tiers": tiers,
        "runs": sorted(runs, key=lambda run: run["clients"] or 0),
    }


def _order(value: str | None, order: Sequence[str]) -> int:
    return order.index(value) if value in order else len(order)


def build_model(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summaries of every phase, in report order."""
    oltp, http = [], []
    for index, entry in enumerate(results):
        if not isinstance(entry, Mapping) or entry.get("kind") not in ("oltp", "http"):
            raise ReportError(f"result {index} is not a phase result with kind oltp or http: {str(entry)[:120]}")
        (oltp if entry["kind"] == "oltp" else http).append(entry)
    return {
        "oltp": sorted((summarize_oltp(entry) for entry in oltp), key=lambda s: _order(s["id"], OLTP_ORDER)),
        "http": sorted(
            (summarize_http(entry) for entry in http),
            key=lambda s: (s["workload"] != "pk", _order(s["route"], ROUTE_ORDER)),
        ),
    }


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def _phase_key(phase: Mapping[str, Any]) -> tuple[str, str, str]:
    if phase.get("kind") == "oltp":
        return ("oltp", str(phase.get("id")), "")
    return ("http", str(phase.get("route")), str(phase.get("workload")))


def check_results(
    results: Sequence[Mapping[str, Any]], plan: Sequence[Mapping[str, Any]], model: Mapping[str, Any]
) -> list[str]:
    """Sentences for everything that is inconsistent; empty when the figures hold together."""
    problems: list[str] = []
    measured = Counter(_phase_key(entry) for entry in results)
    for key in dict.fromkeys(_phase_key(phase) for phase in plan):
        if not measured[key]:
            problems.append(f"planned phase {' '.join(filter(None, key))} has no result")
    for key, count in measured.items():
        if count > 1:
            problems.append(f"phase {' '.join(filter(None, key))} has {count} results")
    for target in model["oltp"]:
        name = target["label"] or target["id"]
        queries = target["queries"]
        if None in queries.values():
            problems.append(f"{name}: no query counts")
            continue
        if queries["read"] + queries["write"] + queries["other"] != queries["total"]:
            problems.append(
                f"{name}: queries read {queries['read']} + write {queries['write']} + other {queries['other']}"
                f" != total {queries['total']}"
            )
        for label, value in (
            ("read queries", queries["read"]),
            ("write queries", queries["write"]),
            ("other queries", queries["other"]),
            ("transactions", target["transactions"]),
            ("transactions per second", target["transactions_per_sec"]),
            ("queries per second", target["queries_per_sec"]),
        ):
            if not value or value <= 0:
                problems.append(f"{name}: {label} is {value}, expected a positive figure")
        writes = target["writes_check"]
        if writes["ok"] is False:
            problems.append(
                f"{name}: {writes['measured']:.2f} writes per transaction, outside {writes['low']:.2f}.."
                f"{writes['high']:.2f} around the {writes['expected']:g} of {writes['reason']} "
                f"({WRITES_TOLERANCE:.0%}, plus the writes of retried transactions): its UPDATEs and DELETEs missed "
                "rows, so it did not do the work the other targets did. Tables prepared with AUTO_INCREMENT on "
                "Galera, or of another table_size? Prepare with auto_inc: false and the run's table_size."
            )
        latency = target["latency_ms"]
        ordered = [latency[key] for key in ("min", "p50", "p95", "p99", "max") if latency.get(key) is not None]
        if ordered != sorted(ordered):
            problems.append(f"{name}: latencies are not ordered min <= p50 <= p95 <= p99 <= max: {ordered}")
    for route in model["http"]:
        name = f"{route['label'] or route['route']} ({route['workload']})"
        if not route["runs"]:
            problems.append(f"{name}: no run")
        for run in route["runs"]:
            where = f"{name} at {run['clients']} clients"
            if (
                not run["requests"]
                or run["requests"] <= 0
                or not run["requests_per_sec"]
                or run["requests_per_sec"] <= 0
            ):
                problems.append(f"{where}: no request completed")
                continue
            if not run["ok_requests"] or run["ok_requests"] <= 0:
                problems.append(f"{where}: no request succeeded")
            for tier, cpu in (run.get("cpu") or {}).items():
                if "error" in cpu:
                    problems.append(f"{where}: no CPU per request for {tier}: {cpu['error']}")
                elif cpu["pids_changed"]:
                    problems.append(
                        f"{where}: a process of {tier} started or exited during the level, so its CPU time is "
                        "incomplete (did the service restart?)"
                    )
            percentiles = [run["latency_ms"].get(f"p{p}") for p in PERCENTILES]
            if None in percentiles or any(value <= 0 for value in percentiles):
                problems.append(f"{where}: latency percentiles missing or not positive: {percentiles}")
            elif percentiles != sorted(percentiles):
                problems.append(f"{where}: latency percentiles not ordered p50 <= p95 <= p99: {percentiles}")
    return problems


# --------------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------------


def _run_at(model: Mapping[str, Any], route: str, workload: str, clients: int) -> Mapping[str, Any] | None:
    for entry in model["http"]:
        if entry["route"] == route and entry["workload"] == workload:
            for run in entry["runs"]:
                if run["clients"] == clients:
                    return run
    return None


def chain_goals(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 5's goals for the request path, from the primary-key reads: what was aimed at and reached.

    The chain is /direct (gatekeeper -> trusted host -> proxy -> the manager); "direct" is the same
    statement from the bench host to the manager with sysbench.
    """
    levels = sorted({run["clients"] for entry in model["http"] for run in entry["runs"] if run["clients"]})
    if not levels:
        return []
    low, high = levels[0], levels[-1]
    goals: list[dict[str, Any]] = []
    chain_low, direct_low = _run_at(model, "direct", "pk", low), _run_at(model, "database", "pk", low)
    if chain_low and direct_low and chain_low["latency_ms"]["p50"] and direct_low["latency_ms"]["p50"]:
        chain_p50, direct_p50 = chain_low["latency_ms"]["p50"], direct_low["latency_ms"]["p50"]
        added = chain_p50 - direct_p50
        goals.append(
            {
                "goal": f"the chain adds at most {CHAIN_GOALS['p50_overhead_ms']:g} ms at p50 with {low} client(s)",
                "measured": f"{added:.2f} ms ({chain_p50:.2f} vs {direct_p50:.2f})",
                "met": added <= CHAIN_GOALS["p50_overhead_ms"],
            }
        )
    chain_high, direct_high = _run_at(model, "direct", "pk", high), _run_at(model, "database", "pk", high)
    if chain_high and direct_high and direct_high["requests_per_sec"]:
        chain_rate, direct_rate = chain_high["ok_per_sec"] or 0, direct_high["requests_per_sec"]
        ratio = chain_rate / direct_rate
        goals.append(
            {
                "goal": f"chain throughput at least {CHAIN_GOALS['throughput_ratio']:.0%} of direct at {high} clients",
                "measured": f"{ratio:.0%} ({chain_rate:.0f} vs {direct_rate:.0f} requests/s)",
                "met": ratio >= CHAIN_GOALS["throughput_ratio"],
            }
        )
    for clients in (low, high):
        random, customized = _run_at(model, "random", "pk", clients), _run_at(model, "customized", "pk", clients)
        if random and customized and random["latency_ms"]["p50"] and customized["latency_ms"]["p50"]:
            fastest, random_p50 = customized["latency_ms"]["p50"], random["latency_ms"]["p50"]
            difference = fastest / random_p50 - 1
            within = CHAIN_GOALS["customized_vs_random"]
            goals.append(
                {
                    "goal": f"/customized p50 within {within:.0%} of /random at {clients} client(s)",
                    "measured": f"{difference:+.0%} ({fastest:.2f} vs {random_p50:.2f} ms)",
                    "met": difference <= within,
                }
            )
    return goals


def reference_comparison(model: Mapping[str, Any]) -> dict[str, Any]:
    """Our OLTP figures beside the reference's, and what the reference's own figures imply."""
    ours = {target["id"]: target for target in model["oltp"]}
    standalone = ours.get("standalone")
    cluster = ours.get("cluster_one")
    statements = next((t["statements_per_transaction"] for t in model["oltp"] if t["statements_per_transaction"]), 20.0)
    ref = REFERENCE["queries_per_sec"]
    per_thread_tx = ref["standalone"] / statements / REFERENCE["threads"]
    comparison: dict[str, Any] = {
        "reference": REFERENCE,
        "reference_cluster_to_standalone": round(ref["cluster"] / ref["standalone"], 3),
        "reference_ms_per_transaction": round(1000.0 / per_thread_tx, 1),
        "reference_ms_per_statement": round(1000.0 / per_thread_tx / statements, 2),
        "statements_per_transaction": statements,
        "standalone_queries_per_sec": standalone["queries_per_sec"] if standalone else None,
        "cluster_queries_per_sec": cluster["queries_per_sec"] if cluster else None,
        "cluster_all_queries_per_sec": ours["cluster_all"]["queries_per_sec"] if "cluster_all" in ours else None,
    }
    if standalone and cluster and standalone["queries_per_sec"]:
        comparison["cluster_to_standalone"] = round(cluster["queries_per_sec"] / standalone["queries_per_sec"], 3)
    return comparison


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(float(numerator) / float(denominator), 4)


def throughput_ratios(model: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Requests/s of each gatekeeper route over the database's, and /customized over /random, per level.

    ``chain_to_database``: per workload, route and concurrency, the route's requests/s divided by the
    direct-to-the-database route's at the same concurrency. ``customized_to_random``: per workload and
    concurrency, /customized's requests/s divided by /random's. Levels measured on one side only are left out.
    """
    chain: list[dict[str, Any]] = []
    customized: list[dict[str, Any]] = []
    for workload in ("pk", "mix"):
        for entry in model["http"]:
            if entry["workload"] != workload or entry["tool"] != "wrk":
                continue
            for run in entry["runs"]:
                database = _run_at(model, "database", workload, run["clients"])
                if database is None:
                    continue
                chain.append(
                    {
                        "workload": workload,
                        "route": entry["route"],
                        "clients": run["clients"],
                        "requests_per_sec": run["requests_per_sec"],
                        "database_requests_per_sec": database["requests_per_sec"],
                        "ratio": _ratio(run["requests_per_sec"], database["requests_per_sec"]),
                    }
                )
        levels = sorted({run["clients"] for entry in model["http"] for run in entry["runs"] if run["clients"]})
        for clients in levels:
            random = _run_at(model, "random", workload, clients)
            custom = _run_at(model, "customized", workload, clients)
            if random and custom:
                customized.append(
                    {
                        "workload": workload,
                        "clients": clients,
                        "customized_requests_per_sec": custom["requests_per_sec"],
                        "random_requests_per_sec": random["requests_per_sec"],
                        "ratio": _ratio(custom["requests_per_sec"], random["requests_per_sec"]),
                        "customized_p50_ms": custom["latency_ms"]["p50"],
                        "random_p50_ms": random["latency_ms"]["p50"],
                    }
                )
    return {"chain_to_database": chain, "customized_to_random": customized}


def cpu_per_request_table(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flat rows of CPU per request: per workload, route, level and tier (what results.json and the report show)."""
    rows = []
    for entry in model["http"]:
        for run in entry["runs"]:
            for tier, cpu in (run.get("cpu") or {}).items():
                rows.append(
                    {
                        "workload": entry["workload"],
                        "route": entry["route"],
                        "clients": run["clients"],
                        "tier": tier,
                        "cpu_seconds": cpu.get("cpu_seconds"),
                        "requests": cpu.get("requests"),
                        "cpu_ms_per_request": cpu.get("cpu_ms_per_request"),
                        "resolution_ms_per_request": cpu.get("resolution_ms_per_request"),
                        "error": cpu.get("error"),
                    }
                )
    return rows


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{float(value):,.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _images(charts: Sequence[str], *names: tuple[str, str]) -> list[str]:
    lines: list[str] = []
    for name, title in names:
        if name in charts:
            lines += [f"![{title}]({name})", ""]
    return lines


def _oltp_section(model: Mapping[str, Any], charts: Sequence[str]) -> list[str]:
    targets = model["oltp"]
    if not targets:
        return ["No OLTP target was measured.", ""]
    header = ["", *[f"**{t['label']}**" for t in targets]]

    def row(label: str, key: Any, digits: int = 2) -> list[str]:
        values = [key(t) if callable(key) else t.get(key) for t in targets]
        return [label, *[_num(v, digits) for v in values]]

    rows = [
        ["servers", *[", ".join(t["nodes"] or t["mysql_hosts"]) for t in targets]],
        ["engine", *[f"{t['engine'] or '-'} ({t['storage_engine'] or '-'})" for t in targets]],
        row("threads", "threads"),
        row("measured time (s)", "measured_time_s"),
        ["**queries performed**", *["" for _ in targets]],
        *[row(kind, lambda t, kind=kind: t["queries"][kind]) for kind in ("read", "write", "other", "total")],
        row("statements per transaction", "statements_per_transaction"),
        row("writes per transaction", "writes_per_transaction"),
        [
            f"the workload's, within {WRITES_TOLERANCE:.0%}",
            *[_writes_verdict(t["writes_check"]) for t in targets],
        ],
        row("**transactions/s**", "transactions_per_sec"),
        row("**queries/s**", "queries_per_sec"),
        row("ignored errors (conflicts, deadlocks)", "ignored_errors"),
        row("reconnects", "reconnects"),
        ["**latency (ms)**", *["" for _ in targets]],
        *[row(stat, lambda t, stat=stat: t["latency_ms"][stat]) for stat in ("min", "avg", "p50", "p95", "p99", "max")],
    ]
    lines = _table(header, rows)
    lines += [
        "p50, p95 and p99 are read from sysbench's latency histogram (buckets about 1.5 % wide); sysbench's own "
        "95th percentile is in results.json. Ignored errors are the errors sysbench rolled back and retried "
        f"({_ignored_errors_list(targets)}): deadlocks, and on a multi-writer Galera cluster certification "
        "conflicts. Every target's tables were prepared with explicit ids 1..table_size (sysbench --auto_inc=off): "
        "Galera steps AUTO_INCREMENT ids by the cluster size, and most ids the run draws would then find no row. "
        "sysbench counts a write that changed no row as other, so writes per transaction say whether a run did the "
        "workload's work (4 for oltp_read_write: an index update, a non-index update, a delete and an insert); a run "
        f"more than {WRITES_TOLERANCE:.0%} away (allowing for the writes of retried transactions) fails the "
        "consistency check.",
        "",
    ]
    return lines + _images(
        charts,
        ("oltp_throughput.png", "OLTP throughput"),
        ("oltp_latency.png", "OLTP latency"),
        ("oltp_timeline.png", "OLTP throughput over time"),
    )


def _writes_verdict(check: Mapping[str, Any]) -> str:
    if check.get("ok") is None:
        return f"not checked ({check.get('reason', '-')})"
    return f"{check['expected']:g}: {'yes' if check['ok'] else '**no**'}"


def _ignored_errors_list(targets: Sequence[Mapping[str, Any]]) -> str:
    lists = {", ".join(t.get("ignore_errors") or []) for t in targets}
    lists.discard("")
    return "MySQL errors " + "; ".join(sorted(lists)) if lists else "sysbench's default: MySQL errors 1213, 1020, 1205"


def _http_section(model: Mapping[str, Any], charts: Sequence[str]) -> list[str]:
    if not model["http"]:
        return ["No route was loaded.", ""]
    lines: list[str] = []
    for workload in ("pk", "mix"):
        entries = [e for e in model["http"] if e["workload"] == workload]
        if not entries:
            continue
        lines += [f"### {WORKLOAD_LABELS[workload].capitalize()}", ""]
        rows = []
        for entry in entries:
            for run in entry["runs"]:
                rows.append(
                    [
                        entry["label"],
                        run["clients"],
                        _num(run["requests_per_sec"], 1),
                        _num(run["latency_ms"]["p50"]),
                        _num(run["latency_ms"]["p95"]),
                        _num(run["latency_ms"]["p99"]),
                        _num(run["errors"]),
                        _num(run["requests"]),
                    ]
                )
        lines += _table(["route", "clients", "requests/s", "p50 ms", "p95 ms", "p99 ms", "errors", "requests"], rows)
    lines += [
        "Errors are non-2xx responses plus socket errors (wrk), or retried errors and reconnects (sysbench). "
        "Latency is per request, from the bench host: wrk's on the HTTP routes, sysbench's histogram on the "
        "database.",
        "",
    ]
    return lines + _images(charts, ("http_throughput.png", "HTTP throughput"), ("http_latency.png", "HTTP latency"))


def _goals_section(model: Mapping[str, Any]) -> list[str]:
    goals = chain_goals(model)
    if not goals:
        return []
    lines = ["## The request path against its goals (issue 5)", ""]
    lines += _table(
        ["goal", "measured", "met"],
        [[g["goal"], g["measured"], "yes" if g["met"] else "**no**"] for g in goals],
    )
    lines += [
        'The chain is /direct, whose reads go to the manager: the same statement on the same server as "direct '
        'to the database", so the difference is the request path (three HTTP hops, JSON, validation, the '
        "proxy's pool) plus the load generator sharing the machine with it.",
        "",
    ]
    return lines


def _ratios_section(report: Mapping[str, Any]) -> list[str]:
    ratios = report.get("ratios") or throughput_ratios(report["model"])
    lines: list[str] = []
    if ratios["chain_to_database"]:
        lines += ["## Throughput through the chain against the database alone", ""]
        lines += _table(
            ["workload", "route", "clients", "requests/s", "database requests/s", "route / database"],
            [
                [
                    WORKLOAD_LABELS[row["workload"]],
                    f"/{row['route']}",
                    row["clients"],
                    _num(row["requests_per_sec"], 1),
                    _num(row["database_requests_per_sec"], 1),
                    _percent(row["ratio"]),
                ]
                for row in ratios["chain_to_database"]
            ],
        )
        lines += [
            "Each gatekeeper route's requests/s divided by the same statements' straight to the manager with "
            "sysbench, at the same number of concurrent clients: what share of the database's throughput is left "
            "after the request path.",
            "",
        ]
    if ratios["customized_to_random"]:
        lines += ["## /customized against /random", ""]
        lines += _table(
            ["workload", "clients", "/customized requests/s", "/random requests/s", "ratio", "p50 ms (c / r)"],
            [
                [
                    WORKLOAD_LABELS[row["workload"]],
                    row["clients"],
                    _num(row["customized_requests_per_sec"], 1),
                    _num(row["random_requests_per_sec"], 1),
                    _percent(row["ratio"]),
                    f"{_num(row['customized_p50_ms'])} / {_num(row['random_p50_ms'])}",
                ]
                for row in ratios["customized_to_random"]
            ],
        )
    return lines


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _cpu_section(model: Mapping[str, Any]) -> list[str]:
    entries = [entry for entry in model["http"] if entry.get("cpu_tiers")]
    if not entries:
        return []
    tiers = list(dict.fromkeys(tier for entry in entries for tier in entry["cpu_tiers"]))
    lines = ["## CPU per request of each tier", ""]
    rows = []
    worst = 0.0
    for entry in entries:
        for run in entry["runs"]:
            cpu = run.get("cpu") or {}
            cells = []
            total: float | None = 0.0
            for tier in tiers:
                figure = cpu.get(tier) or {}
                value = figure.get("cpu_ms_per_request")
                cells.append(_num(value, 3) if value is not None else "-")
                total = None if value is None or total is None else total + value
                worst = max(worst, figure.get("resolution_ms_per_request") or 0.0)
            rows.append(
                [WORKLOAD_LABELS[entry["workload"]], entry["label"], run["clients"], _num(run["requests"]), *cells]
                + [_num(total, 3) if total is not None else "-"]
            )
    lines += _table(["workload", "route", "clients", "requests", *[f"{t} ms" for t in tiers], "chain ms"], rows)
    lines += [
        "CPU time (user + system) of every process of each tier's systemd unit on every host of the tier, read from "
        "/proc/<pid>/stat right before and right after each level, divided by the requests wrk counted in the level "
        "(results.json: model.http[].runs[].cpu, and cpu_per_request). The warm-up is not counted; the sampling "
        "itself happens outside the levels. The kernel counts CPU time in clock ticks of 10 ms per process, so each "
        f"figure is exact to within about {worst:.3f} ms per request here (one tick per process and level over the "
        "level's requests). In the local lab every tier shares the same cores with wrk and the databases.",
        "",
    ]
    return lines


def _reference_section(model: Mapping[str, Any], environment: Mapping[str, Any]) -> list[str]:
    comparison = reference_comparison(model)
    ref = REFERENCE
    lines = ["## Compared with the reference", ""]
    rows = [
        [
            "standalone, queries/s",
            _num(ref["queries_per_sec"]["standalone"]),
            _num(comparison["standalone_queries_per_sec"]),
        ],
        [
            "cluster through one SQL node, queries/s",
            _num(ref["queries_per_sec"]["cluster"]),
            _num(comparison["cluster_queries_per_sec"]),
        ],
        ["cluster over all SQL nodes, queries/s", "-", _num(comparison["cluster_all_queries_per_sec"])],
        [
            "cluster / standalone",
            _num(comparison["reference_cluster_to_standalone"], 3),
            _num(comparison.get("cluster_to_standalone"), 3),
        ],
    ]
    params = (environment.get("profile") or {}).get("oltp") or {}
    lines += _table(["", "reference", "this run"], rows)
    lines += [
        f"The reference ran oltp_read_write with {ref['threads']} threads for {ref['time_s']} s on "
        f"{ref['table_size']:,} rows, from {ref['client']}. This run: {params.get('threads', '-')} threads, "
        f"{params.get('time', '-')} s after a {params.get('warmup_time', '-')} s warm-up, "
        f"{params.get('tables', '-')} table(s) of {_num(params.get('table_size'))} rows, "
        f"rand-type {params.get('rand_type', '-')}, from the bench host inside the deployment.",
        "",
        "Why the figures differ:",
        "",
        f"- **The network.** {ref['queries_per_sec']['standalone']} queries/s over {ref['threads']} threads is "
        f"{comparison['reference_ms_per_transaction']} ms per transaction of "
        f"{comparison['statements_per_transaction']:g} statements, about "
        f"{comparison['reference_ms_per_statement']} ms per statement, each a round trip from the laptop. "
        "The reference's two figures differ by "
        f"{(1 - comparison['reference_cluster_to_standalone']):.1%}: both mostly measured the trip, not the servers. "
        "Here the client sits in the deployment's network, so each statement costs what the server needs.",
        "- **The hardware.** The reference used t2.micro instances (1 vCPU, burstable). "
        + _hardware_sentence(environment),
        "- **The engine.** The reference's cluster was MySQL NDB Cluster; this run's is "
        f"{environment.get('cluster_engine', '-')}. Galera certifies every write set on every node at commit; NDB "
        "sends every row operation to the data nodes over the network, which makes it slower than InnoDB per "
        "statement on small machines.",
        "- **The distribution and the data.** sysbench's default rand-type (special) concentrates the load on a few "
        "rows; the profile sets it explicitly. A table much smaller than the buffer pool is read from memory.",
        "",
    ]
    return lines


def _hardware_sentence(environment: Mapping[str, Any]) -> str:
    if environment.get("target") == "docker":
        controller = environment.get("controller") or {}
        return (
            f"In the local lab every server, the proxy chain and the load generator are containers sharing one "
            f"machine's {controller.get('vcpus', '?')} CPU(s) and {_num(controller.get('memtotal_mb'))} MB: the "
            "cluster's extra nodes compete for the same cores instead of adding any, and the load generator takes "
            "its share too, so these figures compare designs, not hardware."
        )
    sizes = sorted({node.get("instance_type") or node.get("size") or "?" for node in environment.get("nodes") or []})
    return f"This run's instances: {', '.join(sizes)}."


def _isolation_section(environment: Mapping[str, Any]) -> list[str]:
    servers = environment.get("servers") or {}

    def level(name: str) -> str:
        variables = servers.get(name) or {}
        return variables.get("transaction_isolation") or variables.get("tx_isolation") or "-"

    cluster = servers.get("cluster") or {}
    lines = [
        "## Isolation levels: the engines do not run the same transactions",
        "",
        f"- **InnoDB (standalone)**: REPEATABLE READ by default (measured: {level('standalone')}). Conflicting "
        "writers wait for row locks; a deadlock aborts one of them (error 1213).",
        f"- **Galera**: each node runs InnoDB at its own level (measured: {level('cluster')}), but a transaction is "
        "certified against the write sets of the other nodes only at COMMIT: the first committer wins and the "
        "loser gets a deadlock error (1213) even though it never waited for a lock. Spreading writes over all "
        "nodes turns row-lock waits into such aborts, which sysbench counts as ignored errors and retries. "
        f"wsrep_sync_wait is {cluster.get('wsrep_sync_wait', '-')}: with 1, every read first waits until the "
        "node has applied all earlier commits (causal reads), which costs latency.",
        "- **NDB**: tables in ndbcluster support READ COMMITTED only, whatever transaction_isolation says; "
        "reads never see uncommitted rows but may see rows committed after the transaction began, and row locks "
        "are held in the data nodes.",
        "",
        "So equal queries/s do not mean equal guarantees: REPEATABLE READ on one server, optimistic certification on "
        "Galera, READ COMMITTED on NDB.",
        "",
    ]
    return lines


def _environment_section(environment: Mapping[str, Any]) -> list[str]:
    lines = ["## Environment", ""]
    versions = environment.get("versions") or {}
    servers = environment.get("servers") or {}
    rows = [
        ["target", environment.get("target", "-")],
        ["project", environment.get("project", "-")],
        ["cluster engine", environment.get("cluster_engine", "-")],
        ["profile", (environment.get("profile") or {}).get("name", "-")],
        ["started (UTC)", environment.get("started", "-")],
        ["finished (UTC)", environment.get("finished", "-")],
        ["sysbench", versions.get("sysbench", "-")],
        ["wrk", versions.get("wrk", "-")],
        ["ansible-core", versions.get("ansible", "-")],
    ]
    for name, variables in servers.items():
        rows.append([f"{name} server", f"{variables.get('version', '-')} ({variables.get('version_comment', '-')})"])
    lines += _table(["", ""], rows)
    lab = " (runs every container of the local lab)" if environment.get("target") == "docker" else ""
    bench = environment.get("bench_host") or {}
    machines = [
        ("controller" + lab, environment.get("controller") or {}),
        (f"bench host {bench.get('name', '')}".strip(), bench),
    ]
    machines = [(name, facts) for name, facts in machines if facts]
    if machines:
        lines += _table(
            ["machine", "vCPUs", "nproc", "memory (MB)", "load average before (1/5/15 min)", "after"],
            [
                [
                    name,
                    _num(facts.get("vcpus")),
                    _num(facts.get("nproc")),
                    _num(facts.get("memtotal_mb")),
                    _loadavg(facts.get("loadavg_before") or facts.get("loadavg")),
                    _loadavg(facts.get("loadavg_after")),
                ]
                for name, facts in machines
            ],
        )
        lines += [
            "vCPUs are the processors the kernel shows (ansible_processor_vcpus), nproc those this process may run on "
            "(ansible_processor_nproc). The load average before is read right before the first phase, after it "
            "right after the last: a load above the number of cores before the run means other work shared them.",
            "",
        ]
    nodes = environment.get("nodes") or []
    if nodes:
        if environment.get("target") == "docker":
            lines += ["The local lab runs every node as a container on one machine; it ignores the sizes.", ""]
        lines += _table(
            ["node", "tier", "roles", "size", "instance type", "deployed"],
            [
                [
                    n.get("name"),
                    n.get("tier"),
                    ", ".join(n.get("roles") or []),
                    n.get("size", "-"),
                    n.get("instance_type") or "-",
                    "yes" if n.get("deployed") else "no",
                ]
                for n in nodes
            ],
        )
    profile = environment.get("profile") or {}
    if profile:
        lines += ["Parameters:", "", "```json", json.dumps(profile, indent=2, sort_keys=True), "```", ""]
    return lines


def _loadavg(load: Any) -> str:
    if not isinstance(load, Mapping) or not load:
        return "-"
    return " / ".join(_num(load.get(key)) for key in ("1m", "5m", "15m"))


def render_markdown(report: Mapping[str, Any]) -> str:
    """report.md: the results, the comparisons and the environment."""
    model = report["model"]
    charts = report.get("charts") or []
    environment = report.get("environment") or {}
    profile = (environment.get("profile") or {}).get("name", "?")
    lines = [
        f"# Benchmark report {report['timestamp']}",
        "",
        f"Profile **{profile}**, target **{environment.get('target', '?')}**, cluster engine "
        f"**{environment.get('cluster_engine', '?')}**; every load ran from the bench host inside the deployment.",
        "",
    ]
    for skipped in report.get("skipped") or []:
        lines.append(f"- Skipped: {skipped}")
    if report.get("skipped"):
        lines.append("")
    problems = report.get("problems") or []
    lines += [
        "Consistency: "
        + (
            "all checks passed (queries = read + write + other, writes per transaction the workload's, "
            "figures positive, every phase present, percentiles ordered)."
            if not problems
            else f"**{len(problems)} problem(s)**:"
        ),
        "",
    ]
    lines += [f"- {problem}" for problem in problems] + ([""] if problems else [])
    lines += ["## sysbench oltp_read_write: standalone and cluster side by side", ""] + _oltp_section(model, charts)
    lines += ["## HTTP load through the patterns, and direct to the database", ""] + _http_section(model, charts)
    lines += _goals_section(model)
    lines += _ratios_section(report)
    lines += _cpu_section(model)
    lines += _reference_section(model, environment)
    lines += _isolation_section(environment)
    lines += _environment_section(environment)
    lines += [
        "## Files",
        "",
        "- `results.json`: every figure (intervals, histograms, status codes), the plan and the environment.",
        *[f"- `{name}`" for name in charts],
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Charts (matplotlib) and files
# --------------------------------------------------------------------------------------------------

_ROUTE_COLOURS = {"direct": "#1f77b4", "random": "#ff7f0e", "customized": "#2ca02c", "database": "#7f7f7f"}
_TARGET_COLOURS = {"standalone": "#4c72b0", "cluster_one": "#dd8452", "cluster_all": "#55a868"}


def _levels_axis(axis: Any, levels: Sequence[int]) -> None:
    """A log2 x axis labelled with the concurrency levels themselves."""
    axis.set_xscale("log", base=2)
    axis.set_xticks(list(levels), [str(level) for level in levels])
    axis.minorticks_off()
    axis.set_xlabel("concurrent clients")


def write_charts(model: Mapping[str, Any], directory: str) -> list[str]:
    """PNG charts of throughput and latency percentiles; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    written: list[str] = []

    def save(figure: Any, name: str) -> None:
        figure.tight_layout()
        figure.savefig(os.path.join(directory, name), dpi=110)
        pyplot.close(figure)
        written.append(name)

    targets = [t for t in model["oltp"] if t["queries_per_sec"]]
    if targets:
        labels = [t["label"].replace(" (", "\n(") for t in targets]
        figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
        for axis, key, title in (
            (axes[0], "transactions_per_sec", "transactions/s"),
            (axes[1], "queries_per_sec", "queries/s"),
        ):
            bars = axis.bar(labels, [t[key] for t in targets], color=[_TARGET_COLOURS.get(t["id"]) for t in targets])
            axis.bar_label(bars, fmt="%.0f")
            axis.set_title(f"oltp_read_write {title}")
            axis.tick_params(axis="x", labelsize=8)
        save(figure, "oltp_throughput.png")

        figure, axis = pyplot.subplots(figsize=(10, 4))
        keys = ["min", "p50", "avg", "p95", "p99", "max"]
        width = 0.8 / len(targets)
        for index, target in enumerate(targets):
            values = [target["latency_ms"].get(key) or 0 for key in keys]
            positions = [k + index * width for k in range(len(keys))]
            axis.bar(positions, values, width, label=target["label"], color=_TARGET_COLOURS.get(target["id"]))
        axis.set_xticks([k + width * (len(targets) - 1) / 2 for k in range(len(keys))], keys)
        axis.set_ylabel("ms per transaction")
        axis.set_yscale("log")
        axis.set_title("oltp_read_write latency")
        axis.legend(fontsize=8)
        save(figure, "oltp_latency.png")

        figure, axis = pyplot.subplots(figsize=(10, 4))
        for target in targets:
            points = [i for i in target["intervals"] if i["time_s"] is not None]
            axis.plot(
                [i["time_s"] for i in points],
                [i["tps"] for i in points],
                label=target["label"],
                color=_TARGET_COLOURS.get(target["id"]),
            )
        if any(t.get("warmup_s") for t in targets):
            axis.axvspan(0, max(t.get("warmup_s") or 0 for t in targets), color="#dddddd", label="warm-up")
        axis.set_xlabel("seconds")
        axis.set_ylabel("transactions/s")
        axis.set_title("oltp_read_write over time (interval reports)")
        axis.legend(fontsize=8)
        save(figure, "oltp_timeline.png")

    workloads = [w for w in ("pk", "mix") if any(e["workload"] == w for e in model["http"])]
    levels = sorted({run["clients"] for entry in model["http"] for run in entry["runs"] if run["clients"]})
    if workloads:
        figure, axes = pyplot.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), squeeze=False)
        for axis, workload in zip(axes[0], workloads, strict=True):
            for entry in (e for e in model["http"] if e["workload"] == workload):
                runs = entry["runs"]
                axis.plot(
                    [r["clients"] for r in runs],
                    [r["ok_per_sec"] or 0 for r in runs],
                    marker="o",
                    label=entry["label"],
                    color=_ROUTE_COLOURS.get(entry["route"]),
                )
            _levels_axis(axis, levels)
            axis.set_ylabel("successful requests/s")
            axis.set_title(WORKLOAD_LABELS[workload])
            axis.legend(fontsize=7)
        save(figure, "http_throughput.png")

        figure, axes = pyplot.subplots(len(workloads), 3, figsize=(13, 3.6 * len(workloads)), squeeze=False)
        for row, workload in enumerate(workloads):
            for column, percentile in enumerate(PERCENTILES):
                axis = axes[row][column]
                for entry in (e for e in model["http"] if e["workload"] == workload):
                    runs = entry["runs"]
                    axis.plot(
                        [r["clients"] for r in runs],
                        [r["latency_ms"][f"p{percentile}"] or 0 for r in runs],
                        marker="o",
                        label=entry["label"],
                        color=_ROUTE_COLOURS.get(entry["route"]),
                    )
                _levels_axis(axis, levels)
                axis.set_yscale("log")
                axis.set_ylabel("ms")
                axis.set_title(f"p{percentile}, {WORKLOAD_LABELS[workload]}", fontsize=9)
                if column == 0:
                    axis.legend(fontsize=7)
        save(figure, "http_latency.png")
    return written


def report_timestamp(now: datetime | None = None) -> str:
    """The directory name of a report: UTC, sortable, no characters that need quoting."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def assemble(
    results: Sequence[Mapping[str, Any]],
    plan: Sequence[Mapping[str, Any]],
    environment: Mapping[str, Any],
    skipped: Sequence[str],
    timestamp: str,
) -> dict[str, Any]:
    """Everything results.json holds: summaries, checks, comparisons, the raw results and the environment."""
    model = build_model(results)
    return {
        "schema": SCHEMA_VERSION,
        "timestamp": timestamp,
        "environment": dict(environment),
        "plan": list(plan),
        "skipped": list(skipped),
        "problems": check_results(results, plan, model),
        "model": model,
        "chain_goals": chain_goals(model),
        "ratios": throughput_ratios(model),
        "cpu_per_request": cpu_per_request_table(model),
        "reference_comparison": reference_comparison(model),
        "raw": list(results),
    }


def write_report(report: dict[str, Any], root: str, charts: bool = True) -> dict[str, Any]:
    """Write <root>/<timestamp>/ with results.json, report.md and the charts; returns paths."""
    directory = os.path.join(root, report["timestamp"])
    os.makedirs(directory, exist_ok=False)
    report["charts"] = write_charts(report["model"], directory) if charts else []
    with open(os.path.join(directory, "results.json"), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    with open(os.path.join(directory, "report.md"), "w") as handle:
        handle.write(render_markdown(report))
    files = ["results.json", "report.md", *report["charts"]]
    return {"directory": directory, "files": [os.path.join(directory, name) for name in files]}
