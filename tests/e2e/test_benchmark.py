"""playbooks/benchmark.yml with the quick profile against the lab: the report is written and its figures hold together.

The playbook runs as a user runs it (ansible-playbook in a subprocess, the lab's inventory and variables); it adds
the bench host to the lab, which teardown.yml removes with the rest. It takes a few minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import LAB_VARS, ROOT, Lab

# The lab's inventory (its group_vars link to inventory/group_vars); another lab's with CLOUDPATTERNS_LAB_INVENTORY.
INVENTORY = Path(os.environ.get("CLOUDPATTERNS_LAB_INVENTORY", ROOT / "molecule/lab/inventory/fleet.yml"))
# The ansible-playbook of the Python running the tests (its virtualenv), else the one on the PATH.
ANSIBLE_PLAYBOOK = next(
    (str(path) for path in [Path(sys.executable).parent / "ansible-playbook"] if path.exists()),
    shutil.which("ansible-playbook") or "ansible-playbook",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS = {"oltp_throughput.png", "oltp_latency.png", "oltp_timeline.png", "http_throughput.png", "http_latency.png"}
OLTP_TARGETS = ["standalone", "cluster_one", "cluster_all"]
ROUTES = ["direct", "random", "customized", "database"]
WORKLOADS = ["pk", "mix"]


def run_playbook(*extra: str, inventory: Path = INVENTORY, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(ROOT / "playbooks/benchmark.yml"), "-e", f"@{LAB_VARS}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )


@pytest.fixture(scope="module")
def quick_run(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    reports = tmp_path_factory.mktemp("reports")
    result = run_playbook("-e", "benchmark_profile=quick", "-e", f"benchmark_report_root={reports}")
    assert result.returncode == 0, f"benchmark.yml failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    directories = list(reports.iterdir())
    assert len(directories) == 1, f"expected one report directory, found {directories}"
    return result, directories[0]


@pytest.fixture(scope="module")
def results(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    return json.loads((quick_run[1] / "results.json").read_text())


def test_the_report_files_exist(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    output, directory = quick_run
    assert {path.name for path in directory.iterdir()} == {"results.json", "report.md"} | CHARTS
    for chart in CHARTS:
        assert (directory / chart).read_bytes()[:8] == PNG_MAGIC, chart
    assert f"The report is in {directory}" in output.stdout.replace("\n        ", " ")


def test_progress_names_the_phase_and_the_time_left(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    stdout = quick_run[0].stdout
    assert "Phase 1/11, about " in stdout and "Phase 11/11, about " in stdout
    assert " left: oltp_read_write on the standalone server" in stdout


def test_every_phase_is_present(results: dict[str, Any]) -> None:
    assert results["environment"]["profile"]["name"] == "quick"
    assert results["skipped"] == [] and results["problems"] == []
    assert [target["id"] for target in results["model"]["oltp"]] == OLTP_TARGETS
    routes = {(entry["route"], entry["workload"]) for entry in results["model"]["http"]}
    assert routes == {(route, workload) for route in ROUTES for workload in WORKLOADS}
    levels = results["environment"]["profile"]["http"]["concurrency"]
    for entry in results["model"]["http"]:
        assert [run["clients"] for run in entry["runs"]] == levels, entry["route"]
    assert len(results["plan"]) == len(results["raw"]) == 11


def test_sysbench_figures_add_up_and_are_positive(results: dict[str, Any]) -> None:
    for entry in results["raw"]:
        runs = [entry["run"]] if entry["kind"] == "oltp" else entry["runs"] if entry["tool"] == "sysbench" else []
        for run in runs:
            queries = run["queries"]
            assert queries["read"] + queries["write"] + queries["other"] == queries["total"], entry
            assert queries["read"] > 0 and queries["total"] > 0 and queries["per_sec"] > 0, entry
            assert run["transactions"]["total"] > 0 and run["transactions"]["per_sec"] > 0, entry
            assert run["histogram"], entry
    for target in results["model"]["oltp"]:
        queries = target["queries"]
        assert min(queries.values()) > 0, target["id"]
        assert queries["read"] + queries["write"] + queries["other"] == queries["total"]
        latency = target["latency_ms"]
        assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    cluster_all = next(t for t in results["model"]["oltp"] if t["id"] == "cluster_all")
    assert len(cluster_all["mysql_hosts"]) == len(cluster_all["nodes"]) > 1


def test_http_figures_are_positive_and_ordered(results: dict[str, Any]) -> None:
    for entry in results["model"]["http"]:
        for run in entry["runs"]:
            where = f"{entry['route']} {entry['workload']} at {run['clients']}"
            assert run["requests"] > 0 and run["ok_requests"] > 0 and run["requests_per_sec"] > 0, where
            latency = run["latency_ms"]
            assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"], where
            # The bench key is not rate-limited, and every statement of the workload passes the policy.
            assert run["errors"] == 0, f"{where}: {run['status_codes']}"


def test_the_environment_is_recorded(results: dict[str, Any], lab: Lab) -> None:
    environment = results["environment"]
    assert environment["project"] == lab.project and environment["target"] == "docker"
    assert environment["cluster_engine"] == "galera"
    assert environment["versions"]["sysbench"].startswith("1.0.") and environment["versions"]["wrk"].startswith("4.")
    for server in ("standalone", "cluster"):
        assert "MariaDB" in environment["servers"][server]["version"]
    assert environment["servers"]["cluster"]["wsrep_on"] == "ON"
    assert {node["name"] for node in environment["nodes"] if node["deployed"]} == set(lab.nodes) | {"bench1"}


def test_the_markdown_report_reads_as_promised(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    text = (quick_run[1] / "report.md").read_text()
    for expected in (
        "| **standalone server** | **cluster, one SQL node** | **cluster, all SQL nodes** |",
        "### Primary-key reads",
        "| database (manager) | 16 |",
        "| standalone, queries/s | 3,072.47 |",
        "REPEATABLE READ",
        "READ COMMITTED only",
        "![HTTP latency](http_latency.png)",
        "all checks passed",
    ):
        assert expected in text, expected


def test_nothing_deployed_stops_with_a_clear_message(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.yml"
    inventory.write_text("plugin: cloudpatterns.mysql.fleet\nbackend: docker\nproject: cpm-e2e-nothing\n")
    (tmp_path / "group_vars").symlink_to(ROOT / "inventory/group_vars")
    result = run_playbook("-e", "topology_project=cpm-e2e-nothing", inventory=inventory, timeout=300)
    assert result.returncode != 0
    # Where the failed task's message goes (stdout or stderr) and how it is wrapped depends on the callback
    # settings the caller's environment selects (molecule's differ from ansible.cfg's).
    output = " ".join((result.stdout + result.stderr).split())
    assert "no standalone server is deployed" in output
    assert "Nothing to measure: deploy the standalone server" in output
    assert result.stdout.count("PLAY [") == 1, "nothing may run after the preflight play"
