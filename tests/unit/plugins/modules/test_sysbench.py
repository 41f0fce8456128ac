# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The sysbench module: documentation against the argument spec, and main() with sysbench's captured outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.cloudpatterns.mysql.plugins.modules import sysbench

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures" / "sysbench"
PASSWORD = "s3cret-Pass"
CONNECTION = {"mysql_host": ["172.17.0.2"], "mysql_password": PASSWORD, "tables": 2, "table_size": 1000}


def output(name: str, rc: int = 0) -> tuple[int, str, str]:
    return rc, (FIXTURES / name).read_text(), ""


def assert_no_password(value: Any) -> None:
    assert PASSWORD not in repr(value)


# --------------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------------


def test_return_documents_every_figure_of_a_run(run_module: Any) -> None:
    documented = set(yaml.safe_load(sysbench.RETURN))
    result, _ = run_module(sysbench.main, CONNECTION, [output("run_warmup_histogram.txt")])
    returned = set(result) - {"changed", "failed", "msg", "stdout_lines"}
    assert returned <= documented, returned - documented


# --------------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------------


def test_run_returns_the_figures(run_module: Any) -> None:
    result, calls = run_module(sysbench.main, dict(CONNECTION, threads=6, time=5), [output("run_interval.txt")])
    assert result["failed"] is False
    assert result["changed"] is True
    assert result["command"] == "run"
    assert result["transactions"] == {"total": 3085, "per_sec": 615.85}
    assert result["queries"]["total"] == 61700
    assert result["latency_ms"]["percentile_value"] == 17.32
    assert len(result["intervals"]) == 5
    assert all(item["warmup"] is False for item in result["intervals"])
    assert result["warmup_s"] == 0
    assert result["mysql_hosts"] == ["172.17.0.2"]
    assert result["rc"] == 0
    assert result["sysbench_version"] == "1.0.20"
    [call] = calls
    assert call.argv[:2] == ["/usr/bin/sysbench", "oltp_read_write"]
    assert call.argv[-1] == "run"
    assert "--threads=6" in call.argv and "--time=5" in call.argv


def test_password_travels_in_a_private_config_file(run_module: Any) -> None:
    result, [call] = run_module(sysbench.main, CONNECTION, [output("run_interval.txt")])
    assert_no_password(call.argv)
    [config] = [arg.split("=", 1)[1] for arg in call.argv if arg.startswith("--config-file=")]
    assert call.argv.index(f"--config-file={config}") == 2
    assert call.files[config] == (f"mysql-password={PASSWORD}\n", 0o600)
    assert_no_password(result)
    assert "--mysql-password=********" in result["cmd"]


def test_password_with_whitespace_goes_on_the_command_line_but_not_in_the_result(run_module: Any) -> None:
    spaced = "two words"
    result, [call] = run_module(sysbench.main, dict(CONNECTION, mysql_password=spaced), [output("run_interval.txt")])
    assert f"--mysql-password={spaced}" in call.argv
    assert not any(arg.startswith("--config-file=") for arg in call.argv)
    assert spaced not in repr(result)


def test_warmup_flags_the_warmup_intervals(run_module: Any) -> None:
    result, [call] = run_module(
        sysbench.main, dict(CONNECTION, time=5, warmup_time=2), [output("run_warmup_checkpoint.txt")]
    )
    assert "--time=7" in call.argv and "--report-checkpoints=2" in call.argv
    assert [item["warmup"] for item in result["intervals"]] == [True, True] + [False] * 5
    assert result["measured_time_s"] == 5.0153
    assert result["checkpoints"][0]["time_s"] == 2


def test_failed_run_fails_with_sysbench_words_and_no_password(run_module: Any) -> None:
    result, _ = run_module(sysbench.main, CONNECTION, [output("fail_wrong_password.txt", rc=1)])
    assert result["failed"] is True
    assert "error 1045: Access denied" in result["msg"]
    assert result["rc"] == 1
    assert result["partial"] == {"intervals": []}
    assert_no_password(result)


def test_password_echoed_by_sysbench_is_masked(run_module: Any) -> None:
    echoed = (1, f"sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)\n\nFATAL: odd failure with {PASSWORD}\n", "")
    result, _ = run_module(sysbench.main, CONNECTION, [echoed])
    assert result["failed"] is True
    assert "odd failure with ********" in result["msg"]
    assert_no_password(result)


def test_forced_shutdown_fails_and_keeps_the_figures(run_module: Any) -> None:
    result, _ = run_module(sysbench.main, CONNECTION, [output("fail_forced_shutdown.txt", rc=2)])
    assert result["failed"] is True
    assert "forcing shutdown" in result["msg"]
    assert result["partial"]["transactions"]["total"] == 1505
    assert result["partial"]["intervals"][0]["warmup"] is False


def test_malformed_output_fails_with_the_line(run_module: Any) -> None:
    result, _ = run_module(sysbench.main, CONNECTION, [output("handmade_truncated_latency.txt")])
    assert result["failed"] is True
    assert "unreadable sysbench output" in result["msg"] and "line 35" in result["msg"]


def test_nonzero_exit_without_a_message_fails(run_module: Any) -> None:
    result, _ = run_module(sysbench.main, CONNECTION, [output("run_interval.txt", rc=3)])
    assert result["failed"] is True
    assert "sysbench exited with code 3" in result["msg"]


def test_check_mode_does_not_run(run_module: Any) -> None:
    result, calls = run_module(sysbench.main, CONNECTION, [], check_mode=True)
    assert calls == []
    assert result["changed"] is True
    assert result["msg"] == "check mode: sysbench run not run"
    assert result["cmd"].startswith("/usr/bin/sysbench oltp_read_write ")


def test_invalid_parameters_fail_before_running(run_module: Any) -> None:
    result, calls = run_module(sysbench.main, dict(CONNECTION, threads=0, percentile=120), [])
    assert calls == []
    assert result["failed"] is True
    assert "threads must be at least 1" in result["msg"] and "percentile must be within 0..100" in result["msg"]


def test_missing_sysbench(run_module: Any) -> None:
    result, _ = run_module(sysbench.main, CONNECTION, [], missing=("sysbench",))
    assert result["failed"] is True
    assert "install the package 'sysbench'" in result["msg"]


# --------------------------------------------------------------------------------------------------
# prepare and cleanup
# --------------------------------------------------------------------------------------------------


def test_prepare(run_module: Any) -> None:
    result, [call] = run_module(
        sysbench.main, dict(CONNECTION, command="prepare", threads=2), [output("prepare_parallel.txt")]
    )
    assert result["changed"] is True
    assert result["rows_inserted"] == 2000
    assert [table["name"] for table in result["tables"]] == ["sbtest1", "sbtest2"]
    assert call.argv[-1] == "prepare"
    assert "prepared_state" not in result


def test_skip_if_prepared_finds_the_tables_ready(run_module: Any) -> None:
    result, [check] = run_module(
        sysbench.main,
        dict(CONNECTION, command="prepare", skip_if_prepared=True),
        [output("state_prepared.txt")],
    )
    assert result["changed"] is False
    assert result["prepared_state"]["verdict"] == "prepared"
    assert check.argv[-1] == "state"
    [script] = [path for path in check.files if path.endswith(".lua")]
    assert "CPM_SYSBENCH_TABLE" in check.files[script][0]
    assert_no_password(check.argv)


def test_skip_if_prepared_prepares_absent_tables(run_module: Any) -> None:
    result, calls = run_module(
        sysbench.main,
        dict(CONNECTION, command="prepare", skip_if_prepared=True),
        [output("state_absent.txt"), output("prepare.txt")],
    )
    assert [call.argv[-1] for call in calls] == ["state", "prepare"]
    assert result["changed"] is True
    assert result["prepared_state"]["verdict"] == "absent"
    assert result["rows_inserted"] == 2000


def test_skip_if_prepared_in_check_mode_reads_but_does_not_prepare(run_module: Any) -> None:
    result, calls = run_module(
        sysbench.main,
        dict(CONNECTION, command="prepare", skip_if_prepared=True),
        [output("state_absent.txt")],
        check_mode=True,
    )
    assert [call.argv[-1] for call in calls] == ["state"]
    assert result["changed"] is True
    assert result["msg"] == "check mode: sysbench prepare not run"


@pytest.mark.parametrize(
    ("state", "overrides", "reason"),
    [
        ("handmade_state_stepped_ids.txt", {"auto_inc": False}, "expected ids 1..1000 but sbtest1 has ids 1..3997"),
        ("state_partial.txt", {"tables": 3}, "missing: sbtest3"),
        ("state_prepared.txt", {"table_size": 1000000}, "expected 1000000 rows"),
        ("state_prepared.txt", {"mysql_storage_engine": "ndbcluster"}, "expected engine ndbcluster"),
    ],
)
def test_skip_if_prepared_refuses_mismatched_tables(
    run_module: Any, state: str, overrides: dict[str, Any], reason: str
) -> None:
    result, calls = run_module(
        sysbench.main,
        dict(CONNECTION, command="prepare", skip_if_prepared=True, **overrides),
        [output(state)],
    )
    assert len(calls) == 1
    assert result["failed"] is True
    assert reason in result["msg"]
    assert "run command=cleanup first" in result["msg"]


def test_skip_if_prepared_check_that_cannot_connect(run_module: Any) -> None:
    result, _ = run_module(
        sysbench.main,
        dict(CONNECTION, command="prepare", skip_if_prepared=True),
        [output("state_fail_wrong_password.txt", rc=1)],
    )
    assert result["failed"] is True
    assert result["msg"].startswith("checking whether the tables are prepared: sysbench failed: ")
    assert "error 1045" in result["msg"]


def test_prepare_on_a_server_without_ndb(run_module: Any) -> None:
    result, [call] = run_module(
        sysbench.main,
        dict(CONNECTION, command="prepare", mysql_storage_engine="ndbcluster"),
        [output("fail_prepare_unknown_engine.txt", rc=1)],
    )
    assert "--mysql_storage_engine=ndbcluster" in call.argv
    assert result["failed"] is True
    assert "not an NDB Cluster SQL node" in result["msg"]


def test_cleanup(run_module: Any) -> None:
    result, [call] = run_module(sysbench.main, dict(CONNECTION, command="cleanup"), [output("cleanup.txt")])
    assert result["changed"] is True
    assert result["tables_dropped"] == ["sbtest1", "sbtest2"]
    assert call.argv[-2:] == ["--tables=2", "cleanup"]
