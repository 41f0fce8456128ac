# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The sysbench parser and command builder, on outputs captured from sysbench 1.0.20 (fixtures/sysbench)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.sysbench import (
    MASK,
    SysbenchOutputError,
    SysbenchRunError,
    build_state_argv,
    build_sysbench_argv,
    classify_prepared_state,
    expected_writes_per_transaction,
    hints_for,
    mark_warmup,
    mask_argv,
    parse_prepared_state,
    parse_sysbench_output,
    password_via_config_file,
    scrub,
    validate_params,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sysbench"
PASSWORD = "s3cret-Pass"
SUCCESSFUL_RUNS = sorted(path.name for path in FIXTURES.glob("run_*.txt"))


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def run(name: str) -> dict[str, Any]:
    return parse_sysbench_output(fixture(name), "run")


def params(**overrides: Any) -> dict[str, Any]:
    """The module's defaults, as AnsibleModule hands them over."""
    values: dict[str, Any] = {
        "test": "oltp_read_write",
        "command": "run",
        "mysql_host": ["10.0.1.10"],
        "mysql_port": 3306,
        "mysql_user": "sbtest",
        "mysql_password": PASSWORD,
        "mysql_db": "sbtest",
        "tables": 1,
        "table_size": 10000,
        "threads": 1,
        "time": 10,
        "warmup_time": 0,
        "report_interval": 1,
        "percentile": 95,
        "histogram": False,
        "rand_type": "special",
        "db_ps_mode": "auto",
        "mysql_storage_engine": None,
        "auto_inc": True,
        "ignore_errors": None,
        "forced_shutdown": 30,
        "skip_if_prepared": False,
        "extra_args": [],
        "executable": "sysbench",
    }
    values.update(overrides)
    return values


# --------------------------------------------------------------------------------------------------
# Successful runs: exact figures
# --------------------------------------------------------------------------------------------------


def test_run_with_intervals_exact_figures() -> None:
    result = run("run_interval.txt")
    assert result["sysbench_version"] == "1.0.20"
    assert result["threads"] == 6
    assert result["transactions"] == {"total": 3085, "per_sec": 615.85}
    assert result["queries"] == {"read": 43190, "write": 12340, "other": 6170, "total": 61700, "per_sec": 12316.90}
    assert result["ignored_errors"] == {"total": 0, "per_sec": 0.0}
    assert result["reconnects"] == {"total": 0, "per_sec": 0.0}
    assert result["general"] == {"total_time_s": 5.009, "total_events": 3085}
    assert result["latency_ms"] == {
        "min": 1.44,
        "avg": 9.73,
        "max": 49.18,
        "percentile": 95,
        "percentile_value": 17.32,
        "sum": 30022.63,
    }
    assert result["threads_fairness"] == {
        "events_avg": 514.1667,
        "events_stddev": 22.55,
        "execution_time_avg_s": 5.0038,
        "execution_time_stddev_s": 0.0,
    }
    assert result["measured_time_s"] == 5.009
    assert result["forced_shutdown_unfinished"] is None
    assert result["checkpoints"] == []
    assert result["histogram"] == []
    assert len(result["intervals"]) == 5
    assert result["intervals"][0] == {
        "time_s": 1,
        "threads": 6,
        "tps": 702.40,
        "qps": 14118.00,
        "reads_per_sec": 9889.59,
        "writes_per_sec": 2817.60,
        "other_per_sec": 1410.80,
        "latency_percentile": 95,
        "latency_ms": 14.73,
        "errors_per_sec": 0.0,
        "reconnects_per_sec": 0.0,
    }
    assert result["intervals"][-1]["time_s"] == 5
    assert result["intervals"][-1]["latency_ms"] == 20.37


def test_run_with_histogram() -> None:
    result = run("run_histogram.txt")
    histogram = result["histogram"]
    assert len(histogram) == 153
    assert histogram[0] == {"value_ms": 1.319, "count": 1}
    assert histogram[-1] == {"value_ms": 62.193, "count": 1}
    assert [row["value_ms"] for row in histogram] == sorted(row["value_ms"] for row in histogram)
    # Every event lands in one bucket.
    assert sum(row["count"] for row in histogram) == result["general"]["total_events"] == 3434
    assert result["latency_ms"]["max"] == 62.19
    assert result["intervals"] == []


def test_run_over_several_hosts() -> None:
    result = run("run_multi_host.txt")
    assert result["queries"] == {"read": 44548, "write": 12728, "other": 6364, "total": 63640, "per_sec": 12707.90}
    assert result["transactions"] == {"total": 3182, "per_sec": 635.40}
    assert result["latency_ms"]["percentile_value"] == 16.12


def test_run_with_ignored_errors() -> None:
    result = run("run_ignored_errors.txt")
    assert result["threads"] == 16
    assert result["ignored_errors"] == {"total": 66, "per_sec": 13.11}
    assert result["reconnects"] == {"total": 0, "per_sec": 0.0}
    assert sum(1 for item in result["intervals"] if item["errors_per_sec"] > 0) >= 1


def test_run_without_percentile() -> None:
    result = run("run_point_select_no_percentile.txt")
    assert result["latency_ms"]["percentile"] is None
    assert result["latency_ms"]["percentile_value"] is None
    assert result["latency_ms"]["sum"] == 11998.32
    assert result["queries"] == {"read": 36313, "write": 0, "other": 0, "total": 36313, "per_sec": 12094.72}


def test_run_at_a_fixed_rate_keeps_the_queue_figures() -> None:
    result = run("run_read_only_rate.txt")
    assert [(item["time_s"], item["queue_length"], item["concurrency"]) for item in result["intervals"]] == [
        (1, 0, 0),
        (2, 0, 0),
        (3, 0, 0),
    ]
    assert result["queries"]["write"] == 0


def test_warmup_checkpoint_is_reported_apart_from_the_measurement() -> None:
    result = run("run_warmup_checkpoint.txt")
    [warmup] = result["checkpoints"]
    assert warmup["time_s"] == 2
    assert warmup["transactions"] == {"total": 1059, "per_sec": 529.37}
    assert warmup["queries"]["total"] == 21493
    assert warmup["latency_ms"]["percentile"] == 99
    assert warmup["general"]["total_time_s"] == 2.0001
    # The final report covers the 5 s after the checkpoint; 'total time' spans all 7 s.
    assert result["transactions"] == {"total": 2819, "per_sec": 562.08}
    assert result["general"]["total_time_s"] == 7.0154
    assert result["measured_time_s"] == 5.0153
    assert result["transactions"]["total"] / result["measured_time_s"] == pytest.approx(562.08, abs=0.01)
    assert [item["time_s"] for item in result["intervals"]] == [1, 2, 3, 4, 5, 6, 7]


def test_interval_line_printed_inside_the_checkpoint_report() -> None:
    # Captured through the module: the interval thread wrote '[ 2s ] thds: ...' right after
    # 'SQL statistics:' of the checkpoint report.
    result = run("run_warmup_interleaved.txt")
    assert [item["time_s"] for item in result["intervals"]] == [1, 2, 3, 4, 5]
    assert result["intervals"][1]["tps"] == 363.88
    assert result["checkpoints"][0]["transactions"] == {"total": 702, "per_sec": 350.07}
    assert result["transactions"]["total"] == 926
    assert len(result["histogram"]) == 134


def test_histogram_after_warmup_covers_the_measured_period_only() -> None:
    result = run("run_warmup_histogram.txt")
    counted = sum(row["count"] for row in result["histogram"])
    assert counted == pytest.approx(result["general"]["total_events"], rel=0.01)
    assert counted < result["general"]["total_events"] + result["checkpoints"][0]["general"]["total_events"]


@pytest.mark.parametrize("name", SUCCESSFUL_RUNS)
def test_every_captured_run_is_consistent(name: str) -> None:
    result = run(name)
    queries = result["queries"]
    assert queries["read"] + queries["write"] + queries["other"] == queries["total"] > 0
    assert result["transactions"]["total"] == result["general"]["total_events"] > 0
    assert result["transactions"]["per_sec"] == pytest.approx(
        result["transactions"]["total"] / result["measured_time_s"], rel=0.01
    )
    assert queries["per_sec"] == pytest.approx(queries["total"] / result["measured_time_s"], rel=0.01)
    latency = result["latency_ms"]
    assert 0 < latency["min"] <= latency["avg"] <= latency["max"]
    if latency["percentile_value"] is not None:
        assert latency["min"] <= latency["percentile_value"] <= latency["max"]
    times = [item["time_s"] for item in result["intervals"]]
    assert times == sorted(set(times))
    for item in result["intervals"]:
        parts = item["reads_per_sec"] + item["writes_per_sec"] + item["other_per_sec"]
        assert item["qps"] == pytest.approx(parts, abs=0.05)


# --------------------------------------------------------------------------------------------------
# prepare and cleanup
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["prepare.txt", "prepare_parallel.txt"])
def test_prepare(name: str) -> None:
    result = parse_sysbench_output(fixture(name), "prepare")
    assert result == {
        "tables": [
            {"name": "sbtest1", "rows": 1000, "secondary_index": True},
            {"name": "sbtest2", "rows": 1000, "secondary_index": True},
        ],
        "rows_inserted": 2000,
        "sysbench_version": "1.0.20",
    }


def test_cleanup() -> None:
    result = parse_sysbench_output(fixture("cleanup.txt"), "cleanup")
    assert result == {"tables_dropped": ["sbtest1", "sbtest2"], "sysbench_version": "1.0.20"}


def test_run_output_is_not_prepare_output() -> None:
    with pytest.raises(SysbenchOutputError, match="no 'Creating table' line"):
        parse_sysbench_output(fixture("run_interval.txt"), "prepare")
    with pytest.raises(SysbenchOutputError, match="no 'Dropping table' line"):
        parse_sysbench_output(fixture("prepare.txt"), "cleanup")


# --------------------------------------------------------------------------------------------------
# Failed runs: sysbench's own words, a hint, and what was measured before
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "command", "expected", "hint"),
    [
        ("fail_wrong_password.txt", "run", "error 1045: Access denied for user 'sbtest'@'172.17.0.1'", None),
        ("fail_unreachable_host.txt", "run", "error 2002: Can't connect to server on '172.17.0.99'", None),
        ("fail_host_blocked.txt", "run", "error 1129: Host '172.17.0.1' is blocked", "flush-hosts"),
        ("fail_missing_tables.txt", "run", "Table 'sbtest.sbtest1' doesn't exist", "command=prepare first"),
        ("fail_invalid_option.txt", "run", "invalid option: --warmup-time=1", "warmup_time"),
        ("fail_unknown_test.txt", "run", "Cannot find benchmark 'oltp_read_wrte'", None),
        ("fail_server_restart_midrun.txt", "run", "error 2013 (Lost connection to server during query)", None),
        ("fail_forced_shutdown.txt", "run", "The --max-time limit has expired", "threads hung"),
        ("fail_prepare_tables_exist.txt", "prepare", "Table 'sbtest1' already exists", "skip_if_prepared"),
        ("fail_prepare_unknown_engine.txt", "prepare", "Unknown storage engine 'ndbcluster'", "NDB Cluster"),
        ("handmade_my_thread_init.txt", "run", "Error in my_thread_init", None),
    ],
)
def test_failed_runs_surface_sysbench_words(name: str, command: str, expected: str, hint: str | None) -> None:
    with pytest.raises(SysbenchRunError) as caught:
        parse_sysbench_output(fixture(name), command)
    error = caught.value
    assert any(expected in message for message in error.messages), error.messages
    assert str(error).startswith("sysbench failed: ")
    assert expected in str(error)
    if hint:
        assert any(hint in text for text in error.hints), error.hints
        assert "Hint: " in str(error)


def test_failure_messages_are_listed_once() -> None:
    with pytest.raises(SysbenchRunError) as caught:
        parse_sysbench_output(fixture("fail_wrong_password.txt"))
    # Six threads failed alike; each distinct message appears once, in order.
    assert caught.value.messages == [
        "unable to connect to MySQL server on host '172.17.0.2', port 3306, aborting...",
        "error 1045: Access denied for user 'sbtest'@'172.17.0.1' (using password: YES)",
        "`thread_init' function failed: /usr/share/sysbench/oltp_common.lua:349: connection creation failed",
        "Thread initialization failed!",
    ]
    assert caught.value.partial == {"intervals": []}


def test_forced_shutdown_keeps_the_figures_in_partial() -> None:
    with pytest.raises(SysbenchRunError) as caught:
        parse_sysbench_output(fixture("fail_forced_shutdown.txt"))
    partial = caught.value.partial
    assert partial["forced_shutdown_unfinished"] == 16
    assert partial["ignored_errors"] == {"total": 27, "per_sec": 2.70}
    assert partial["transactions"]["total"] == 1505
    assert len(partial["intervals"]) == 10


def test_run_that_died_keeps_its_intervals_in_partial() -> None:
    with pytest.raises(SysbenchRunError) as caught:
        parse_sysbench_output(fixture("fail_server_restart_midrun.txt"))
    assert [item["tps"] for item in caught.value.partial["intervals"]] == [650.62, 605.99]


def test_prepare_failure_keeps_the_tables_started_in_partial() -> None:
    with pytest.raises(SysbenchRunError) as caught:
        parse_sysbench_output(fixture("fail_prepare_tables_exist.txt"), "prepare")
    assert caught.value.partial["tables"] == [{"name": "sbtest1", "rows": 0, "secondary_index": False}]


# --------------------------------------------------------------------------------------------------
# Malformed and truncated output (hand-made fixtures): a clear error, with the line
# --------------------------------------------------------------------------------------------------


def test_truncated_in_the_latency_block() -> None:
    with pytest.raises(SysbenchOutputError) as caught:
        run("handmade_truncated_latency.txt")
    message = str(caught.value)
    assert "expected 'max: X', but the output ends after line 35 (truncated?)" in message
    assert caught.value.line_number == 35
    assert caught.value.line is not None and "avg:" in caught.value.line


def test_truncated_before_the_final_report() -> None:
    with pytest.raises(SysbenchOutputError, match=r"no final report \('SQL statistics:'\) found") as caught:
        run("handmade_truncated_intervals.txt")
    assert caught.value.line_number == 16


def test_malformed_interval_line() -> None:
    with pytest.raises(SysbenchOutputError, match=r"expected an interval report") as caught:
        run("handmade_malformed_interval.txt")
    assert caught.value.line_number == 15
    assert "108#8.96" in str(caught.value)


def test_queries_that_do_not_add_up() -> None:
    with pytest.raises(SysbenchOutputError, match="read \\+ write \\+ other do not add up to total"):
        run("handmade_inconsistent_queries.txt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the output is empty"),
        ("\n\n", "the output is empty"),
        ("bash: sysbench: command not found\n", "expected the 'sysbench <version>' banner"),
    ],
)
def test_not_sysbench_output(text: str, expected: str) -> None:
    with pytest.raises(SysbenchOutputError, match=expected):
        parse_sysbench_output(text)


def test_second_final_report_is_refused() -> None:
    text = fixture("run_interval.txt")
    summary = text[text.index("SQL statistics:") :]
    with pytest.raises(SysbenchOutputError, match="a second final report"):
        parse_sysbench_output(text + summary)


def test_unknown_command() -> None:
    with pytest.raises(ValueError, match="command must be one of prepare, run, cleanup"):
        parse_sysbench_output(fixture("run_interval.txt"), "benchmark")


# --------------------------------------------------------------------------------------------------
# The prepared-state check
# --------------------------------------------------------------------------------------------------


def test_prepared_state_fixtures() -> None:
    assert parse_prepared_state(fixture("state_prepared.txt")) == [
        {"name": "sbtest1", "engine": "innodb", "rows": 1000},
        {"name": "sbtest2", "engine": "innodb", "rows": 1000},
    ]
    assert parse_prepared_state(fixture("state_absent.txt"))[1] == {"name": "sbtest2", "engine": None, "rows": None}
    assert len(parse_prepared_state(fixture("state_partial.txt"))) == 3


def test_prepared_state_failure() -> None:
    with pytest.raises(SysbenchRunError, match="error 1045: Access denied"):
        parse_prepared_state(fixture("state_fail_wrong_password.txt"))


def test_prepared_state_without_marker() -> None:
    with pytest.raises(SysbenchOutputError, match="no 'CPM_SYSBENCH_TABLE' line"):
        parse_prepared_state("sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)\n")
    with pytest.raises(SysbenchOutputError, match="invalid JSON"):
        parse_prepared_state('CPM_SYSBENCH_TABLE {"name": "sbtest1", "eng\n')


def test_classify_prepared_state_ids() -> None:
    stepped = parse_prepared_state(fixture("handmade_state_stepped_ids.txt"))
    verdict, reason = classify_prepared_state(stepped, 1000, "innodb", explicit_ids=True)
    assert verdict == "mismatch"
    assert reason.startswith("expected ids 1..1000 but sbtest1 has ids 1..3997, sbtest2 has ids 1..3997")
    # With AUTO_INCREMENT wanted, stepped ids are what the server made: not a mismatch.
    assert classify_prepared_state(stepped, 1000, "innodb")[0] == "prepared"
    explicit = parse_prepared_state(fixture("handmade_state_explicit_ids.txt"))
    assert classify_prepared_state(explicit, 1000, "innodb", explicit_ids=True)[0] == "prepared"
    # Output of the script before it read the ids: nothing to compare.
    assert classify_prepared_state(parse_prepared_state(fixture("state_prepared.txt")), 1000, explicit_ids=True)[0] == (
        "prepared"
    )


@pytest.mark.parametrize(
    ("test", "options", "writes"),
    [
        ("oltp_read_write", None, 4.0),
        ("/usr/share/sysbench/oltp_read_write.lua", {}, 4.0),
        ("oltp_write_only", {"delete_inserts": 2}, 6.0),
        ("oltp_read_write", {"index_updates": 0, "non_index_updates": 3}, 5.0),
        ("oltp_read_only", {"index_updates": 5}, 0.0),
        ("oltp_point_select", None, 0.0),
        ("oltp_update_index", None, 1.0),
    ],
)
def test_expected_writes_per_transaction(test: str, options: dict[str, Any] | None, writes: float) -> None:
    assert expected_writes_per_transaction(test, options)[0] == writes


@pytest.mark.parametrize("test", ["oltp_delete", "/opt/cloudpatterns-bench/sakila_pk.lua", "", None])
def test_expected_writes_are_unknown_for_other_tests(test: str | None) -> None:
    writes, why = expected_writes_per_transaction(test)
    assert writes is None and "not one of the bundled tests" in why


@pytest.mark.parametrize(
    ("name", "table_size", "engine", "verdict", "reason"),
    [
        ("state_prepared.txt", 1000, None, "prepared", "all 2 tables exist with 1000 rows each"),
        ("state_prepared.txt", 1000, "InnoDB", "prepared", "all 2 tables exist"),
        ("state_absent.txt", 1000, None, "absent", "none of the 2 tables sbtest1..sbtest2 exists"),
        ("state_partial.txt", 1000, None, "mismatch", "missing: sbtest3"),
        ("state_prepared.txt", 5000, None, "mismatch", "expected 5000 rows but sbtest1 has 1000, sbtest2 has 1000"),
        ("state_prepared.txt", 1000, "ndbcluster", "mismatch", "expected engine ndbcluster but sbtest1 uses innodb"),
    ],
)
def test_classify_prepared_state(name: str, table_size: int, engine: str | None, verdict: str, reason: str) -> None:
    found, why = classify_prepared_state(parse_prepared_state(fixture(name)), table_size, engine)
    assert found == verdict
    assert reason in why


def test_mark_warmup() -> None:
    intervals = run("run_warmup_checkpoint.txt")["intervals"]
    marked = mark_warmup(intervals, 2)
    assert [item["warmup"] for item in marked] == [True, True, False, False, False, False, False]
    assert "warmup" not in intervals[0]


# --------------------------------------------------------------------------------------------------
# Building the command line
# --------------------------------------------------------------------------------------------------


def test_run_argv() -> None:
    assert build_sysbench_argv(params(), "/usr/bin/sysbench") == [
        "/usr/bin/sysbench",
        "oltp_read_write",
        "--db-driver=mysql",
        "--mysql-host=10.0.1.10",
        "--mysql-port=3306",
        "--mysql-user=sbtest",
        f"--mysql-password={PASSWORD}",
        "--mysql-db=sbtest",
        "--tables=1",
        "--table-size=10000",
        "--threads=1",
        "--time=10",
        "--report-interval=1",
        "--percentile=95",
        "--histogram=off",
        "--rand-type=special",
        "--db-ps-mode=auto",
        "--forced-shutdown=30",
        "run",
    ]


def test_run_argv_with_every_option() -> None:
    argv = build_sysbench_argv(
        params(
            test="oltp_read_only",
            mysql_host=["10.0.1.11", "10.0.1.12", "10.0.1.13"],
            mysql_port=3307,
            tables=10,
            table_size=1000000,
            threads=6,
            time=60,
            warmup_time=10,
            report_interval=5,
            percentile=99,
            histogram=True,
            rand_type="uniform",
            db_ps_mode="disable",
            forced_shutdown=0,
            mysql_storage_engine="ndbcluster",
            extra_args=["--mysql-ignore-errors=1213,1205", "--point_selects=5"],
        )
    )
    assert argv[1] == "oltp_read_only"
    assert "--mysql-host=10.0.1.11,10.0.1.12,10.0.1.13" in argv
    assert "--mysql-port=3307" in argv
    # sysbench 1.0.20 has no --warmup-time: the warm-up is a checkpoint, the run that much longer.
    assert "--time=70" in argv and "--report-checkpoints=10" in argv
    assert not any(arg.startswith("--warmup-time") for arg in argv)
    assert {"--report-interval=5", "--percentile=99", "--histogram=on", "--rand-type=uniform"} <= set(argv)
    assert {"--db-ps-mode=disable", "--forced-shutdown=off", "--tables=10", "--table-size=1000000"} <= set(argv)
    # The engine matters only when the tables are created.
    assert not any(arg.startswith("--mysql_storage_engine") for arg in argv)
    assert argv[-3:] == ["--mysql-ignore-errors=1213,1205", "--point_selects=5", "run"]


def test_prepare_argv() -> None:
    argv = build_sysbench_argv(
        params(command="prepare", tables=10, table_size=1000000, threads=6, mysql_storage_engine="ndbcluster")
    )
    assert argv[-5:] == [
        "--tables=10",
        "--table-size=1000000",
        "--threads=6",
        "--mysql_storage_engine=ndbcluster",
        "prepare",
    ]
    assert not any(arg.startswith(("--time", "--report-interval", "--rand-type")) for arg in argv)


def test_explicit_ids_and_ignored_errors() -> None:
    for command in ("prepare", "run"):
        argv = build_sysbench_argv(params(command=command, auto_inc=False, ignore_errors=["1213", "1062"]))
        assert "--auto_inc=off" in argv
        assert ("--mysql-ignore-errors=1213,1062" in argv) == (command == "run")
        assert argv[-1] == command
    cleanup = build_sysbench_argv(params(command="cleanup", auto_inc=False, ignore_errors=["1213"]))
    assert not any(arg.startswith(("--auto_inc", "--mysql-ignore-errors")) for arg in cleanup)
    # sysbench's defaults pass nothing, so Lua scripts without an auto_inc option keep working.
    default = build_sysbench_argv(params(auto_inc=True, ignore_errors=None))
    assert not any(arg.startswith(("--auto_inc", "--mysql-ignore-errors")) for arg in default)


def test_cleanup_argv() -> None:
    argv = build_sysbench_argv(params(command="cleanup", tables=10))
    assert argv[-2:] == ["--tables=10", "cleanup"]
    assert not any(arg.startswith(("--table-size", "--threads")) for arg in argv)


def test_argv_without_password() -> None:
    argv = build_sysbench_argv(params(mysql_password=None))
    assert not any("password" in arg for arg in argv)


def test_state_argv() -> None:
    argv = build_state_argv(params(tables=3), "/tmp/x/state.lua", "/usr/bin/sysbench")
    assert argv[:3] == ["/usr/bin/sysbench", "/tmp/x/state.lua", "--db-driver=mysql"]
    assert argv[-2:] == ["--tables=3", "state"]


def test_masked_command_line_never_shows_the_password() -> None:
    argv = build_sysbench_argv(params(mysql_host=["h1", "h2"]), "/usr/bin/sysbench")
    shown = mask_argv(argv)
    assert PASSWORD not in shown
    assert f"--mysql-password={MASK}" in shlex.split(shown)
    assert shlex.split(shown)[:2] == ["/usr/bin/sysbench", "oltp_read_write"]
    assert "--mysql-host=h1,h2" in shown


def test_masked_command_line_also_masks_extra_args() -> None:
    argv = build_sysbench_argv(params(mysql_password=None, extra_args=["--mysql-password=other secret"]))
    assert "other secret" not in mask_argv(argv)


def test_password_moves_to_the_config_file() -> None:
    argv = build_sysbench_argv(params())
    kept, config = password_via_config_file(argv)
    assert config == f"mysql-password={PASSWORD}\n"
    assert not any(PASSWORD in arg for arg in kept)
    assert len(kept) == len(argv) - 1


def test_password_with_whitespace_stays_on_the_command_line() -> None:
    # sysbench's config-file reader splits on whitespace: measured with a real server.
    argv = build_sysbench_argv(params(mysql_password="two words"))
    assert password_via_config_file(argv) == (argv, None)


def test_no_password_no_config_file() -> None:
    argv = build_sysbench_argv(params(mysql_password=None))
    assert password_via_config_file(argv) == (argv, None)


def test_scrub() -> None:
    assert scrub(f"denied for {PASSWORD}", [PASSWORD, None, ""]) == f"denied for {MASK}"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"mysql_host": []}, "mysql_host must list at least one host"),
        ({"mysql_host": ["a,b"]}, "without commas"),
        ({"mysql_host": [" "]}, "non-empty"),
        ({"threads": 0}, "threads must be at least 1, got 0"),
        ({"time": 0}, "time must be at least 1"),
        ({"table_size": 0}, "table_size must be at least 1"),
        ({"warmup_time": -1}, "warmup_time must be at least 0"),
        ({"forced_shutdown": -5}, "forced_shutdown must be at least 0"),
        ({"percentile": 101}, "percentile must be within 0..100"),
        (
            {"ignore_errors": ["1213", "deadlock"]},
            "ignore_errors must list MySQL error numbers (or 'all'), got deadlock",
        ),
        ({"extra_args": ["--threads=2", "run"]}, "extra_args must not contain the command (run)"),
    ],
)
def test_validate_params(overrides: dict[str, Any], problem: str) -> None:
    problems = validate_params(params(**overrides))
    assert any(problem in text for text in problems), problems


def test_valid_params() -> None:
    assert validate_params(params()) == []


def test_hints_for_unknown_failures() -> None:
    assert hints_for(["something nobody has seen"]) == []
