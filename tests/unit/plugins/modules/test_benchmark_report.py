# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark report: its logic on results built from captured sysbench and wrk outputs, and the module."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.cloudpatterns.mysql.plugins.module_utils import benchmark_report as report
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.sysbench import parse_sysbench_output
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.wrk import parse_wrk_output
from ansible_collections.cloudpatterns.mysql.plugins.modules import benchmark_report

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS = ["oltp_throughput.png", "oltp_latency.png", "oltp_timeline.png", "http_throughput.png", "http_latency.png"]
LEVELS = [1, 4, 16]


# --------------------------------------------------------------------------------------------------
# Fixture results: what the sysbench role collects, made of the modules' parsers on captured outputs
# --------------------------------------------------------------------------------------------------


def sysbench(name: str, command: str = "run") -> dict[str, Any]:
    return parse_sysbench_output((FIXTURES / "sysbench" / name).read_text(), command)


def wrk(name: str) -> dict[str, Any]:
    return parse_wrk_output((FIXTURES / "wrk" / name).read_text())


def oltp(target: str, run_fixture: str, steps: list[str]) -> dict[str, Any]:
    return {
        "kind": "oltp",
        "id": target,
        "label": {"standalone": "standalone server", "cluster_one": "cluster, one SQL node"}.get(
            target, "cluster, all SQL nodes"
        ),
        "engine": "mariadb" if target == "standalone" else "galera",
        "storage_engine": "innodb",
        "mysql_hosts": ["10.0.0.2"] if target != "cluster_all" else ["10.0.0.3", "10.0.0.4"],
        "nodes": ["standalone"] if target == "standalone" else ["manager", "worker1"],
        "parameters": {"test": "oltp_read_write", "threads": 6, "time": 60},
        "steps": steps,
        "prepare": sysbench("prepare.txt", "prepare") if "prepare" in steps else None,
        "run": dict(sysbench(run_fixture), warmup_s=1),
        "cleanup": sysbench("cleanup.txt", "cleanup") if "cleanup" in steps else None,
    }


def http(route: str, workload: str) -> dict[str, Any]:
    if route == "database":
        runs = [dict(sysbench("run_histogram.txt"), clients=clients) for clients in LEVELS]
        return {
            "kind": "http",
            "route": route,
            "label": "database (manager)",
            "tool": "sysbench",
            "target": ["10.0.0.2"],
            "workload": workload,
            "parameters": {},
            "runs": runs,
        }
    fixture = "pk_reads.txt" if workload == "pk" else "read_write_mix.txt"
    runs = [dict(wrk(fixture), clients=clients, cpu=cpu_samples()) for clients in LEVELS]
    return {
        "kind": "http",
        "route": route,
        "label": f"/{route}",
        "tool": "wrk",
        "target": f"http://10.0.5.2:3000/{route}",
        "workload": workload,
        "parameters": {},
        "cpu_tiers": [{"name": name, "hosts": [host], "units": [unit]} for name, host, unit, _ in TIERS],
        "runs": runs,
    }


# Each tier's host and unit, and the CPU seconds it used during every level in these fixtures.
TIERS = [
    ("gatekeeper", "gatekeeper1", "sqlgate-gatekeeper.service", 12.1),
    ("trusted_host", "trusted", "sqlgate-trusted.service", 12.0),
    ("sql_proxy", "proxy", "sqlgate-proxy.service", 14.0),
]


def cpu_samples(pids_after: list[int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """What the role keeps of the service_cpu samples around one level."""

    def sample(tier: str, host: str, unit: str, seconds: float, pids: list[int]) -> dict[str, Any]:
        return {
            "tier": tier,
            "host": host,
            "units": {unit: {"cpu_seconds": seconds, "cpu_ticks": round(seconds * 100), "pids": pids}},
            "clock_ticks": 100,
            "sampled_at": 1796306615.1,
        }

    return {
        "before": [sample(tier, host, unit, 100.0, [7]) for tier, host, unit, _ in TIERS],
        "after": [sample(tier, host, unit, 100.0 + used, pids_after or [7]) for tier, host, unit, used in TIERS],
    }


def plan_of(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"kind": "oltp", "id": entry["id"]}
        if entry["kind"] == "oltp"
        else {"kind": "http", "route": entry["route"], "workload": entry["workload"]}
        for entry in results
    ]


@pytest.fixture
def results() -> list[dict[str, Any]]:
    entries = [
        oltp("standalone", "run_histogram.txt", ["prepare", "run", "cleanup"]),
        oltp("cluster_one", "run_warmup_histogram.txt", ["prepare", "run"]),
        oltp("cluster_all", "run_warmup_interleaved.txt", ["run", "cleanup"]),
    ]
    entries += [
        http(route, workload) for workload in ("pk", "mix") for route in ("direct", "random", "customized", "database")
    ]
    return entries


ENVIRONMENT = {
    "target": "docker",
    "project": "cpm-test",
    "cluster_engine": "galera",
    "profile": {"name": "quick", "oltp": {"threads": 4, "time": 5, "tables": 1, "table_size": 10000}},
    "versions": {"sysbench": "1.0.20", "wrk": "4.1.0", "ansible": "2.19.14"},
    "servers": {
        "standalone": {"version": "10.11.19-MariaDB-0+deb12u1", "transaction_isolation": "REPEATABLE-READ"},
        "cluster": {"version": "10.11.19-MariaDB-0+deb12u1", "tx_isolation": "REPEATABLE-READ", "wsrep_sync_wait": "1"},
    },
    "controller": {
        "vcpus": 2,
        "nproc": 2,
        "memtotal_mb": 24105,
        "loadavg_before": {"1m": 9.1, "5m": 8.46, "15m": 7.0},
        "loadavg_after": {"1m": 3.25, "5m": 5.5, "15m": 6.0},
    },
    "bench_host": {
        "name": "bench1",
        "vcpus": 2,
        "nproc": 2,
        "memtotal_mb": 24105,
        "loadavg_before": {"1m": 9.0, "5m": 8.4, "15m": 7.0},
        "loadavg_after": {"1m": 3.2, "5m": 5.4, "15m": 6.0},
    },
    "nodes": [
        {
            "name": "standalone",
            "tier": "standalone",
            "roles": ["mysql_standalone"],
            "size": "t2.micro",
            "instance_type": None,
            "deployed": True,
        }
    ],
}


def assembled(results: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    arguments = {"plan": plan_of(results), "environment": ENVIRONMENT, "skipped": [], "timestamp": "20260101T120000Z"}
    arguments.update(overrides)
    return report.assemble(results, **arguments)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def test_histogram_percentiles_are_read_like_sysbench() -> None:
    histogram = [{"value_ms": 1.0, "count": 50}, {"value_ms": 2.0, "count": 45}, {"value_ms": 9.5, "count": 5}]
    assert report.histogram_percentile(histogram, 50) == 1.0
    assert report.histogram_percentile(histogram, 51) == 2.0
    assert report.histogram_percentile(histogram, 95) == 2.0
    assert report.histogram_percentile(histogram, 99) == 9.5
    assert report.histogram_percentile(list(reversed(histogram)), 99) == 9.5
    assert report.histogram_percentile([], 50) is None


def test_the_histogram_agrees_with_sysbench_own_percentile(results: list[dict[str, Any]]) -> None:
    run = results[0]["run"]
    assert run["latency_ms"]["percentile"] == 95
    assert report.histogram_percentile(run["histogram"], 95) == pytest.approx(run["latency_ms"]["percentile_value"])


def test_an_oltp_summary_keeps_the_reference_figures(results: list[dict[str, Any]]) -> None:
    summary = report.summarize_oltp(results[0])
    assert summary["queries"] == {"read": 48076, "write": 13736, "other": 6868, "total": 68680}
    assert summary["queries_per_sec"] == 13696.42
    assert summary["transactions_per_sec"] == 684.82
    assert summary["statements_per_transaction"] == 20.0
    assert summary["writes_per_transaction"] == 4.0
    latency = summary["latency_ms"]
    assert latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert summary["rows_prepared"] == results[0]["prepare"]["rows_inserted"]
    assert summary["prepare_skipped"] is False


def test_wrk_and_sysbench_runs_become_the_same_figures(results: list[dict[str, Any]]) -> None:
    chain = report.summarize_http_run("wrk", results[3]["runs"][0])
    direct = report.summarize_http_run("sysbench", results[6]["runs"][0])
    assert set(chain) - {"queries"} == set(direct) - {"queries"}
    assert chain["requests"] == 31833 and chain["errors"] == 0 and chain["latency_ms"]["p99"] == 9.439
    assert direct["requests"] == 3434 and direct["requests_per_sec"] == 684.82
    assert direct["latency_ms"]["p50"] <= direct["latency_ms"]["p95"] <= direct["latency_ms"]["p99"]


def test_non_2xx_responses_count_as_errors() -> None:
    run = report.summarize_http_run("wrk", dict(wrk("status_mixed_400.txt"), clients=4))
    assert run["errors"] == 7127 and run["non_2xx"] == 7127
    assert run["ok_requests"] == 14255
    assert run["ok_per_sec"] == pytest.approx(14255 / 3.097, rel=1e-3)


def test_an_unknown_tool_is_a_clear_error() -> None:
    with pytest.raises(report.ReportError, match="unknown load tool 'ab'"):
        report.summarize_http_run("ab", {})


def test_the_model_is_in_report_order(results: list[dict[str, Any]]) -> None:
    model = report.build_model(list(reversed(results)))
    assert [t["id"] for t in model["oltp"]] == ["standalone", "cluster_one", "cluster_all"]
    assert [(e["workload"], e["route"]) for e in model["http"]][:4] == [
        ("pk", "direct"),
        ("pk", "random"),
        ("pk", "customized"),
        ("pk", "database"),
    ]
    assert [run["clients"] for run in model["http"][0]["runs"]] == LEVELS


def test_a_result_without_kind_is_rejected() -> None:
    with pytest.raises(report.ReportError, match="result 0 is not a phase result"):
        report.build_model([{"id": "standalone"}])


# --------------------------------------------------------------------------------------------------
# Consistency checks
# --------------------------------------------------------------------------------------------------


def test_consistent_results_pass_every_check(results: list[dict[str, Any]]) -> None:
    assert assembled(results)["problems"] == []


def test_queries_that_do_not_add_up_are_a_problem(results: list[dict[str, Any]]) -> None:
    results[1]["run"]["queries"]["other"] += 1
    problems = assembled(results)["problems"]
    assert problems == ["cluster, one SQL node: queries read 16422 + write 4692 + other 2349 != total 23462"]


def test_figures_that_are_not_positive_are_a_problem(results: list[dict[str, Any]]) -> None:
    results[0]["run"]["queries"].update(write=0, other=13736 + 6868)
    results[0]["run"]["transactions"]["per_sec"] = 0.0
    problems = assembled(results)["problems"]
    assert "standalone server: write queries is 0, expected a positive figure" in problems
    assert "standalone server: transactions per second is 0.0, expected a positive figure" in problems


def test_a_planned_phase_without_result_and_a_repeated_one_are_problems(results: list[dict[str, Any]]) -> None:
    plan = plan_of(results)
    problems = assembled(results[1:] + [results[3]], plan=plan)["problems"]
    assert "planned phase oltp standalone has no result" in problems
    assert "phase http direct pk has 2 results" in problems


def test_a_route_without_any_answer_is_a_problem(results: list[dict[str, Any]]) -> None:
    run = results[4]["runs"][2]
    run.update(requests=0, requests_per_sec=0.0, ok_requests=0, latency_ms=None)
    problems = assembled(results)["problems"]
    assert problems == ["/random (pk) at 16 clients: no request completed"]


def test_every_fixture_run_does_the_workloads_writes(results: list[dict[str, Any]]) -> None:
    for target in report.build_model(results)["oltp"]:
        check = target["writes_check"]
        assert check["expected"] == 4.0 and check["ok"] is True, (target["id"], check)


def test_writes_that_miss_their_rows_fail_the_check(results: list[dict[str, Any]]) -> None:
    # The lab's full run of 2026-11-24 on Galera: ids stepped by 4, 1.79 writes per transaction.
    queries = results[1]["run"]["queries"]
    missed = queries["write"] * 45 // 100
    queries.update(write=queries["write"] - missed, other=queries["other"] + missed)
    problems = assembled(results)["problems"]
    assert len(problems) == 1
    assert problems[0].startswith(
        "cluster, one SQL node: 2.20 writes per transaction, outside 3.92..4.08 around the 4 of oltp_read_write"
    )
    assert "auto_inc: false" in problems[0]


def test_a_shortfall_of_just_over_two_percent_fails_and_retries_allow_more(results: list[dict[str, Any]]) -> None:
    transactions = 1000
    assert report.writes_check(3921, transactions, 0, "oltp_read_write")["ok"] is True
    assert report.writes_check(3919, transactions, 0, "oltp_read_write")["ok"] is False
    assert report.writes_check(4081, transactions, 0, "oltp_read_write")["ok"] is False
    # 20 transactions rolled back after an ignored error each sent up to 4 writes that sysbench counted.
    assert report.writes_check(4150, transactions, 20, "oltp_read_write")["ok"] is True


def test_writes_of_unknown_workloads_are_not_checked_and_say_why() -> None:
    check = report.writes_check(10, 100, 0, "/opt/my_test.lua")
    assert check["ok"] is None and check["measured"] == 0.1
    assert check["reason"].startswith("not checked: the test '/opt/my_test.lua' is not one of the bundled tests")
    assert report.writes_check(0, 100, 0, "oltp_read_only")["ok"] is True


def test_the_report_module_fails_loudly_on_writes_that_missed(
    run_module: Any, results: list[dict[str, Any]], tmp_path: Path
) -> None:
    queries = results[2]["run"]["queries"]
    queries.update(write=queries["write"] // 2, other=queries["other"] + queries["write"] - queries["write"] // 2)
    result, _ = run_module(benchmark_report.main, module_args(results, tmp_path, fail_on_problems=True), [])
    assert result["failed"]
    assert result["msg"].startswith("the figures are inconsistent: cluster, all SQL nodes: 2.00 writes per transaction")
    assert "**1 problem(s)**" in (tmp_path / "20260101T120000Z" / "report.md").read_text()


def test_unordered_percentiles_are_a_problem(results: list[dict[str, Any]]) -> None:
    results[5]["runs"][0]["latency_ms"]["p95"] = 50.0
    problems = assembled(results)["problems"]
    assert len(problems) == 1 and "percentiles not ordered" in problems[0]


# --------------------------------------------------------------------------------------------------
# Comparisons and Markdown
# --------------------------------------------------------------------------------------------------


def test_chain_goals_are_issue_11s(results: list[dict[str, Any]]) -> None:
    goals = assembled(results)["chain_goals"]
    assert [goal["goal"] for goal in goals][:4] == [
        "p50 through the chain at most 1.3 ms with 1 client(s)",
        "/direct at least 0.10 x the database's requests/s at 16 clients",
        "/random at least 0.10 x the database's requests/s at 16 clients",
        "/customized within 5% of /random's requests/s at 16 clients",
    ]
    # The fixtures: wrk's p50 1.997 ms; 6247 requests/s against sysbench's 685 transactions/s.
    assert goals[0]["met"] is False and goals[0]["measured"] == "2.00 ms"
    assert goals[1]["met"] is True and goals[1]["measured"].startswith("9.1")
    tiers = {goal["goal"].split(":")[0]: goal for goal in goals[4:]}
    assert set(tiers) == {tier[0] for tier in TIERS}
    for goal in tiers.values():  # one over the CPU per request is the tier's requests/s per core
        value = float(goal["measured"].split(" ms")[0])
        per_core = float(goal["measured"].split(", ")[1].split(" requests/s")[0].replace(",", ""))
        assert per_core == pytest.approx(1000 / value, rel=0.01), goal
        assert goal["met"] is (value <= 0.15)


def test_cpu_per_request_of_each_tier_for_every_level(results: list[dict[str, Any]]) -> None:
    built = assembled(results)
    run = built["model"]["http"][0]["runs"][0]
    assert run["requests"] == 31833
    assert run["cpu"]["gatekeeper"]["cpu_seconds"] == 12.1
    assert run["cpu"]["gatekeeper"]["cpu_ms_per_request"] == round(12.1 * 1000 / 31833, 4)
    assert run["cpu"]["sql_proxy"]["cpu_ms_per_request"] == round(14.0 * 1000 / 31833, 4)
    # The database route goes through no tier.
    assert all("cpu" not in run for run in built["model"]["http"][3]["runs"])
    rows = built["cpu_per_request"]
    assert len(rows) == 2 * 3 * len(LEVELS) * len(TIERS)
    assert rows[0] == {
        "workload": "pk",
        "route": "direct",
        "clients": 1,
        "tier": "gatekeeper",
        "cpu_seconds": 12.1,
        "requests": 31833,
        "cpu_ms_per_request": 0.3801,
        "resolution_ms_per_request": round(10 / 31833, 4),
        "error": None,
    }
    text = report.render_markdown(dict(built, charts=[]))
    header = "| workload | route | clients | requests | gatekeeper ms | trusted_host ms | sql_proxy ms | chain ms |"
    assert header in text
    assert "| primary-key reads | /direct | 1 | 31,833 | 0.380 | 0.377 | 0.440 | 1.197 |" in text
    assert "exact to within about 0.000 ms per request" in text


def test_a_level_without_its_cpu_samples_or_with_a_restart_is_a_problem(results: list[dict[str, Any]]) -> None:
    level = results[3]["runs"][1]["cpu"]
    level["after"] = [sample for sample in level["after"] if sample["tier"] != "sql_proxy"]
    results[4]["runs"][0]["cpu"] = cpu_samples(pids_after=[7, 9])
    problems = assembled(results)["problems"]
    assert problems[0] == (
        "/direct (pk) at 4 clients: no CPU per request for sql_proxy: no sample after the level from proxy"
    )
    assert problems[1].startswith("/random (pk) at 1 clients: a process of gatekeeper started or exited")
    assert len(problems) == 1 + len(TIERS)


def test_throughput_ratios_of_the_chain_and_of_customized(results: list[dict[str, Any]]) -> None:
    results[5]["runs"][2]["requests_per_sec"] = 3123.5  # /customized, pk, 16 clients
    ratios = assembled(results)["ratios"]
    chain = ratios["chain_to_database"]
    assert len(chain) == 2 * 3 * len(LEVELS)
    assert chain[0] == {
        "workload": "pk",
        "route": "direct",
        "clients": 1,
        "requests_per_sec": 6246.99,
        "database_requests_per_sec": 684.82,
        "ratio": round(6246.99 / 684.82, 4),
    }
    custom = [row for row in ratios["customized_to_random"] if row["workload"] == "pk"]
    assert [row["clients"] for row in custom] == LEVELS
    assert custom[2]["ratio"] == 0.5 and custom[0]["ratio"] == 1.0
    text = report.render_markdown(dict(assembled(results), charts=[]))
    assert "| primary-key reads | /direct | 1 | 6,247.0 | 684.8 | 912.2% |" in text
    assert "| primary-key reads | 16 | 3,123.5 | 6,247.0 | 50.0% |" in text


def test_the_reference_comparison_shows_what_its_figures_imply(results: list[dict[str, Any]]) -> None:
    comparison = assembled(results)["reference_comparison"]
    assert comparison["reference_cluster_to_standalone"] == 0.957
    assert comparison["statements_per_transaction"] == 20.0
    # 3072.47 queries/s / 20 statements / 6 threads = 25.6 transactions/s per thread.
    assert comparison["reference_ms_per_transaction"] == 39.1
    assert comparison["reference_ms_per_statement"] == 1.95
    assert comparison["standalone_queries_per_sec"] == 13696.42
    assert comparison["cluster_to_standalone"] == round(7780.57 / 13696.42, 3)


def test_the_markdown_puts_standalone_and_cluster_side_by_side(results: list[dict[str, Any]]) -> None:
    built = assembled(results)
    built["charts"] = CHARTS
    text = report.render_markdown(built)
    assert "| | **standalone server** | **cluster, one SQL node** | **cluster, all SQL nodes** |" in text.replace(
        "|  |", "| |"
    )
    assert "| **queries/s** | 13,696.42 | 7,780.57 | 6,156.71 |" in text
    assert "| read | 48,076 | 16,422 | 12,937 |" in text
    assert "| the workload's, within 2% | 4: yes | 4: yes | 4: yes |" in text
    assert "| /direct | 16 | 6,247.0 | 2.00 | 6.29 | 9.44 | 0 | 31,833 |" in text
    assert "| database (manager) | 1 | 684.8 |" in text
    assert "### Primary-key reads" in text and "### Read/write mix (8 reads, 2 updates)" in text
    assert "| standalone, queries/s | 3,072.47 | 13,696.42 |" in text
    assert "| cluster through one SQL node, queries/s | 2,941.76 | 7,780.57 |" in text
    assert "39.1 ms per transaction of 20 statements" in text
    for isolation in ("REPEATABLE READ", "first committer wins", "READ COMMITTED only", "wsrep_sync_wait is 1"):
        assert isolation in text
    assert "2 CPU(s)" in text
    controller = "| controller (runs every container of the local lab) | 2 | 2 | 24,105 |"
    assert f"{controller} 9.10 / 8.46 / 7.00 | 3.25 / 5.50 / 6.00 |" in text
    assert "| bench host bench1 | 2 | 2 | 24,105 | 9.00 / 8.40 / 7.00 | 3.20 / 5.40 / 6.00 |" in text
    for chart in CHARTS:
        assert f"]({chart})" in text
    assert "all checks passed" in text


def test_the_markdown_lists_problems_skips_and_only_charts_that_exist(results: list[dict[str, Any]]) -> None:
    results[0]["run"]["queries"]["read"] += 5
    built = assembled(results[:1], plan=plan_of(results[:2]), skipped=["no gatekeeper is deployed"])
    built["charts"] = []
    text = report.render_markdown(built)
    assert "**2 problem(s)**" in text
    assert "- planned phase oltp cluster_one has no result" in text
    assert "- Skipped: no gatekeeper is deployed" in text
    assert "No route was loaded." in text
    assert "](oltp_throughput.png)" not in text


def test_an_aws_run_names_its_instance_types(results: list[dict[str, Any]]) -> None:
    environment = dict(ENVIRONMENT, target="aws", nodes=[{"name": "manager", "instance_type": "t3.small"}])
    text = report.render_markdown(dict(assembled(results, environment=environment), charts=[]))
    assert "This run's instances: t3.small." in text
    assert "ignores the sizes" not in text


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def test_the_report_directory_holds_json_markdown_and_charts(results: list[dict[str, Any]], tmp_path: Path) -> None:
    written = report.write_report(assembled(results), str(tmp_path))
    directory = tmp_path / "20260101T120000Z"
    assert written["directory"] == str(directory)
    assert sorted(Path(path).name for path in written["files"]) == sorted(["results.json", "report.md", *CHARTS])
    for chart in CHARTS:
        assert (directory / chart).read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((directory / "results.json").read_text())
    assert saved["environment"]["versions"]["wrk"] == "4.1.0"
    assert saved["raw"][0]["run"]["histogram"] == results[0]["run"]["histogram"]
    assert saved["problems"] == [] and saved["charts"] == CHARTS
    assert (directory / "report.md").read_text().startswith("# Benchmark report 20260101T120000Z")
    with pytest.raises(FileExistsError):
        report.write_report(assembled(results), str(tmp_path))


def test_only_oltp_results_draw_only_oltp_charts(results: list[dict[str, Any]], tmp_path: Path) -> None:
    written = report.write_report(assembled(results[:3]), str(tmp_path))
    assert sorted(Path(path).name for path in written["files"]) == sorted(["results.json", "report.md", *CHARTS[:3]])


def test_timestamps_are_utc_and_sortable() -> None:
    from datetime import datetime, timedelta, timezone

    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert report.report_timestamp(moment) == "20260102T010405Z"


# --------------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------------


def test_return_documents_the_report() -> None:
    assert set(yaml.safe_load(benchmark_report.RETURN)) == {"report_dir", "files", "problems", "summary"}


def module_args(results: list[dict[str, Any]], tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "dest": str(tmp_path),
        "results": results,
        "plan": plan_of(results),
        "context": ENVIRONMENT,
        "timestamp": "20260101T120000Z",
        **extra,
    }


def test_the_module_writes_the_report(run_module: Any, results: list[dict[str, Any]], tmp_path: Path) -> None:
    result, _ = run_module(benchmark_report.main, module_args(results, tmp_path / "reports"), [])
    assert result["changed"] is True and not result["failed"]
    assert result["report_dir"] == str(tmp_path / "reports" / "20260101T120000Z")
    assert len(result["files"]) == 7 and result["problems"] == []
    assert result["summary"]["oltp"]["standalone"]["queries_per_sec"] == 13696.42
    assert {(h["route"], h["workload"], h["clients"]) for h in result["summary"]["http"]} >= {("database", "mix", 16)}


def test_check_mode_writes_nothing(run_module: Any, results: list[dict[str, Any]], tmp_path: Path) -> None:
    result, _ = run_module(benchmark_report.main, module_args(results, tmp_path), [], check_mode=True)
    assert result["changed"] is False and result["files"] == []
    assert list(tmp_path.iterdir()) == []


def test_problems_fail_the_task_only_when_asked(run_module: Any, results: list[dict[str, Any]], tmp_path: Path) -> None:
    broken = copy.deepcopy(results)
    broken[0]["run"]["queries"]["total"] += 1
    result, _ = run_module(benchmark_report.main, module_args(broken, tmp_path), [])
    assert not result["failed"] and len(result["problems"]) == 1
    result, _ = run_module(
        benchmark_report.main, module_args(broken, tmp_path, timestamp="second", fail_on_problems=True), []
    )
    assert result["failed"] and result["msg"].startswith("the figures are inconsistent: standalone server: queries")
    assert (tmp_path / "second" / "report.md").exists()


def test_an_existing_report_is_never_overwritten(
    run_module: Any, results: list[dict[str, Any]], tmp_path: Path
) -> None:
    (tmp_path / "20260101T120000Z").mkdir()
    result, _ = run_module(benchmark_report.main, module_args(results, tmp_path), [])
    assert result["failed"] and "exists already" in result["msg"]


@pytest.mark.parametrize("timestamp", ["../escape", ".."])
def test_a_timestamp_is_a_plain_name(
    run_module: Any, results: list[dict[str, Any]], tmp_path: Path, timestamp: str
) -> None:
    result, _ = run_module(benchmark_report.main, module_args(results, tmp_path, timestamp=timestamp), [])
    assert result["failed"] and "plain directory name" in result["msg"]


def test_malformed_results_fail_with_a_sentence(run_module: Any, tmp_path: Path) -> None:
    args = dict(module_args([], tmp_path), results=[{"kind": "other"}])
    result, _ = run_module(benchmark_report.main, args, [])
    assert result["failed"] and result["msg"].startswith("cannot build the report: result 0 is not a phase result")
