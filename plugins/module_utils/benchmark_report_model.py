# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark report's data model: from the raw results of playbooks/benchmark.yml to the figures.

Pure functions: summaries, consistency checks, comparisons, ratios and CPU per request. ``benchmark_report``
writes the files; ``benchmark_report_markdown`` and ``benchmark_report_charts`` draw report.md and the charts.
The raw results are what the sysbench role collects on the bench host: one entry per phase,

- ``{"kind": "oltp", "id", "label", "engine", "storage_engine", "mysql_hosts", "parameters", "steps",
  "prepare", "run", "cleanup"}``, each step the return of the module cloudpatterns.mysql.sysbench;
- ``{"kind": "http", "route", "label", "tool", "target", "workload", "parameters", "cpu_tiers", "runs"}``, each
  run the return of cloudpatterns.mysql.wrk (tool wrk) or cloudpatterns.mysql.sysbench (tool sysbench, the same
  statements straight to a SQL node) plus ``clients``, and for wrk ``cpu``: the samples of
  cloudpatterns.mysql.service_cpu of each tier in ``cpu_tiers``, right before and right after the level.
"""

from __future__ import annotations

import math
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

# Issue 11's goals: p50 with one client, throughput against the database's, /customized against /random, and
# CPU per request of each tier.
CHAIN_GOALS = {"p50_ms": 1.3, "throughput_ratio": 0.10, "customized_vs_random": 0.05, "tier_cpu_ms": 0.15}

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
                "Galera, or of another table_size? Prepare with auto_inc: false and the run's table_size"
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
    """Issue 11's goals for the request path, from the primary-key reads: what was aimed at and reached.

    The chain is /direct (gatekeeper -> trusted host -> proxy -> the manager); "the database" is the same
    statement from the bench host to the manager with sysbench. A tier's requests/s per core is one over its
    CPU seconds per request: what that tier alone would serve on one core, saturated, the others idle.
    """
    levels = sorted({run["clients"] for entry in model["http"] for run in entry["runs"] if run["clients"]})
    if not levels:
        return []
    low, high = levels[0], levels[-1]
    goals: list[dict[str, Any]] = []
    chain_low = _run_at(model, "direct", "pk", low)
    if chain_low and chain_low["latency_ms"]["p50"]:
        p50 = chain_low["latency_ms"]["p50"]
        goals.append({"goal": f"p50 through the chain at most {CHAIN_GOALS['p50_ms']:g} ms with {low} client(s)",
                      "measured": f"{p50:.2f} ms", "met": p50 <= CHAIN_GOALS["p50_ms"]})
    database = _run_at(model, "database", "pk", high)
    for route in ("direct", "random"):
        run = _run_at(model, route, "pk", high)
        if run and database and database["requests_per_sec"]:
            rate, direct_rate = run["ok_per_sec"] or 0, database["requests_per_sec"]
            ratio = rate / direct_rate
            goals.append({
                "goal": f"/{route} at least {CHAIN_GOALS['throughput_ratio']:.2f} x the database's requests/s at "
                        f"{high} clients",
                "measured": f"{ratio:.3f} x ({rate:.0f} vs {direct_rate:.0f} requests/s)",
                "met": ratio >= CHAIN_GOALS["throughput_ratio"],
            })
    random, customized = _run_at(model, "random", "pk", high), _run_at(model, "customized", "pk", high)
    if random and customized and random["ok_per_sec"]:
        ratio = (customized["ok_per_sec"] or 0) / random["ok_per_sec"]
        within = CHAIN_GOALS["customized_vs_random"]
        goals.append({"goal": f"/customized within {within:.0%} of /random's requests/s at {high} clients",
                      "measured": f"{ratio - 1:+.1%} ({customized['ok_per_sec']:.0f} vs {random['ok_per_sec']:.0f})",
                      "met": ratio >= 1 - within})
    worst: dict[str, tuple[float, str]] = {}
    for entry in model["http"]:
        if entry["workload"] != "pk":
            continue
        for run in entry["runs"]:
            if run["clients"] != high:
                continue
            for tier, cpu in (run.get("cpu") or {}).items():
                value = cpu.get("cpu_ms_per_request")
                if value is not None and value > worst.get(tier, (-1.0, ""))[0]:
                    worst[tier] = (value, entry["route"])
    for tier, (value, route) in worst.items():
        per_core = f", {1000 / value:,.0f} requests/s per core" if value > 0 else ""
        goals.append({"goal": f"{tier}: at most {CHAIN_GOALS['tier_cpu_ms']:g} ms of CPU per request ({high} clients)",
                      "measured": f"{value:.3f} ms on /{route}{per_core}", "met": value <= CHAIN_GOALS["tier_cpu_ms"]})
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
