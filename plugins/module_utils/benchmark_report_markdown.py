# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""report.md of the benchmark report, from the data model of ``benchmark_report_model``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.benchmark_report_model import (
    REFERENCE,
    WORKLOAD_LABELS,
    WRITES_TOLERANCE,
    chain_goals,
    reference_comparison,
    throughput_ratios,
)


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
    lines = ["## The request path against its goals (issue 11)", ""]
    lines += _table(
        ["goal", "measured", "met"],
        [[g["goal"], g["measured"], "yes" if g["met"] else "**no**"] for g in goals],
    )
    lines += [
        'The chain is /direct, whose reads go to the manager: the same statement on the same server as "direct '
        'to the database", so the difference is the request path (HTTP at the gatekeeper, the link between the '
        "tiers, JSON, validation, the proxy's pool) plus the load generator sharing the machine with it. A tier's "
        "requests/s per core is one over its CPU per request: what it alone would serve on one core.",
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
            "right after the last: a load above the number of cores before the run means other work shared them."
            + (
                " In the local lab the bench host is a container on the controller's kernel, so both show the same "
                "cores and load."
                if environment.get("target") == "docker"
                else ""
            ),
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
