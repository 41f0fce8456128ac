# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The wrk result parser and command builder, on outputs captured from wrk 4.1.0 with files/wrk/post_json.lua."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.wrk import (
    MASK,
    WrkOutputError,
    WrkRunError,
    build_wrk_argv,
    mask_argv,
    parse_wrk_output,
    script_environment,
    validate_params,
)

FIXTURES = Path(__file__).parent / "fixtures" / "wrk"
RUNS_WITH_RESULT = [
    "pk_reads.txt",
    "read_write_mix.txt",
    "status_401.txt",
    "status_mixed_400.txt",
    "timeouts.txt",
    "server_stopped_midrun.txt",
    "no_status_counts.txt",
]


def parsed(name: str) -> dict[str, Any]:
    return parse_wrk_output((FIXTURES / name).read_text())


def params(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "url": "http://10.0.2.10:3000/random",
        "threads": 2,
        "connections": 16,
        "duration": 30,
        "timeout": 2,
        "script": "/opt/cpm-bench/post_json.lua",
        "script_content": None,
        "script_args": [],
        "env": {},
        "api_key": None,
        "executable": "wrk",
    }
    values.update(overrides)
    return values


def test_primary_key_reads_exact_figures() -> None:
    result = parsed("pk_reads.txt")
    assert result["requests"] == 31833
    assert result["duration_s"] == 5.096
    assert result["requests_per_sec"] == 6246.994
    assert result["bytes"] == 8335340
    assert result["threads"] == 2
    assert result["connections"] == 16
    assert result["url"] == "http://127.0.0.1:18081/direct"
    assert result["errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    assert result["latency_ms"] == {
        "min": 0.080,
        "mean": 2.736,
        "stdev": 6.339,
        "max": 215.746,
        "p50": 1.997,
        "p90": 5.019,
        "p95": 6.289,
        "p99": 9.439,
    }
    assert result["status_codes"] == {"200": 31833}
    assert result["non_2xx"] == 0
    assert result["ok_requests"] == 31833
    assert result["socket_errors"] == 0


def test_status_codes_counted_per_thread() -> None:
    # One request in three of requests_mixed_400.jsonl is malformed: the server answers 400.
    result = parsed("status_mixed_400.txt")
    assert result["status_codes"] == {"200": 14255, "400": 7127}
    assert result["non_2xx"] == result["errors"]["status"] == 7127
    assert result["ok_requests"] == 14255
    assert result["status_codes"]["400"] / result["requests"] == pytest.approx(1 / 3, abs=0.001)


def test_wrong_api_key() -> None:
    result = parsed("status_401.txt")
    assert result["status_codes"] == {"401": 19134}
    assert result["ok_requests"] == 0
    assert result["connections"] == 4


def test_every_request_timed_out() -> None:
    result = parsed("timeouts.txt")
    # wrk records no latency for requests past --timeout; the script reports null, not 2^64 µs.
    assert result["latency_ms"] is None
    assert result["errors"]["timeout"] == 8
    assert result["socket_errors"] == 8


def test_server_stopped_mid_run() -> None:
    result = parsed("server_stopped_midrun.txt")
    assert result["errors"]["write"] == 194620
    assert result["errors"]["read"] == 5
    assert result["socket_errors"] == 194625
    assert result["ok_requests"] == 10078


def test_without_status_counts() -> None:
    result = parsed("no_status_counts.txt")
    assert result["status_codes"] is None
    assert result["non_2xx"] is None
    assert result["ok_requests"] == result["requests"] == 19869


@pytest.mark.parametrize("name", RUNS_WITH_RESULT)
def test_every_captured_run_is_consistent(name: str) -> None:
    result = parsed(name)
    assert result["requests"] > 0
    assert result["requests_per_sec"] == pytest.approx(result["requests"] / result["duration_s"], rel=0.001)
    if result["status_codes"] is not None:
        assert sum(result["status_codes"].values()) == result["requests"]
    latency = result["latency_ms"]
    if latency is not None:
        ordered = [latency[key] for key in ("min", "p50", "p90", "p95", "p99", "max")]
        assert ordered == sorted(ordered)
        assert latency["min"] <= latency["mean"] <= latency["max"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("connect_refused.txt", "unable to connect to 127.0.0.1:18089 Connection refused"),
        ("invalid_url.txt", "invalid URL: notaurl"),
        ("script_error_missing_file.txt", "cannot read requests_file: /nonexistent.jsonl"),
    ],
)
def test_wrk_could_not_run(name: str, expected: str) -> None:
    with pytest.raises(WrkRunError) as caught:
        parsed(name)
    assert str(caught.value).startswith("wrk failed: ")
    assert expected in str(caught.value)


def test_run_without_the_script() -> None:
    with pytest.raises(WrkOutputError, match="no 'CPM_WRK_RESULT' line in the wrk output; run wrk with -s") as caught:
        parsed("no_marker_plain_get.txt")
    assert "Transfer/sec" in str(caught.value)


def test_truncated_result_line() -> None:
    with pytest.raises(WrkOutputError, match=r"line 9 is not valid JSON .*truncated output\?"):
        parsed("handmade_truncated_result.txt")


def test_result_line_without_errors() -> None:
    with pytest.raises(WrkOutputError, match="has no 'errors' object"):
        parsed("handmade_missing_errors.txt")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[]", "is not a JSON object"),
        ('{"requests": 1}', "has no number 'duration_s'"),
        (
            '{"requests": 1, "duration_s": 1, "bytes": 1, "requests_per_sec": 1, "threads": 1, '
            '"errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}, "latency_ms": {"min": 1}}',
            "has no 'latency_ms' object",
        ),
        (
            '{"requests": 1, "duration_s": 1, "bytes": 1, "requests_per_sec": 1, "threads": 1, '
            '"errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}, "latency_ms": null, '
            '"status_codes": {"200": "x"}}',
            "has a 'status_codes' that is not an object of counts",
        ),
    ],
)
def test_malformed_result_line(line: str, problem: str) -> None:
    with pytest.raises(WrkOutputError, match=problem):
        parse_wrk_output("CPM_WRK_RESULT " + line + "\n")


def test_two_result_lines() -> None:
    text = (FIXTURES / "pk_reads.txt").read_text()
    with pytest.raises(WrkOutputError, match="2 'CPM_WRK_RESULT' lines"):
        parse_wrk_output(text + text)


def test_empty_output() -> None:
    with pytest.raises(WrkOutputError, match="ended with: nothing"):
        parse_wrk_output("")


def test_argv() -> None:
    assert build_wrk_argv(params(), "/opt/cpm-bench/post_json.lua", "/usr/bin/wrk") == [
        "/usr/bin/wrk",
        "--threads=2",
        "--connections=16",
        "--duration=30s",
        "--timeout=2s",
        "--script=/opt/cpm-bench/post_json.lua",
        "http://10.0.2.10:3000/random",
    ]


def test_argv_with_script_args_and_masked_key() -> None:
    argv = build_wrk_argv(params(script_args=["requests_file=/opt/mix.jsonl", "api_key=k-123"]), "/s.lua")
    assert argv[-3:] == ["--", "requests_file=/opt/mix.jsonl", "api_key=k-123"]
    shown = mask_argv(argv)
    assert "k-123" not in shown
    assert shlex.split(shown)[-1] == f"api_key={MASK}"


def test_script_environment() -> None:
    environment = script_environment(params(env={"id_max": 599, "WRK_SEED": "7"}, api_key="k-123"))
    assert environment == {"WRK_ID_MAX": "599", "WRK_SEED": "7", "WRK_API_KEY": "k-123"}
    assert script_environment(params()) == {}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"url": "10.0.2.10:3000/random"}, "url must be an http:// or https:// URL"),
        ({"threads": 0}, "threads must be at least 1"),
        ({"duration": 0}, "duration must be at least 1"),
        ({"threads": 4, "connections": 2}, "connections (2) must be at least threads (4)"),
    ],
)
def test_validate_params(overrides: dict[str, Any], problem: str) -> None:
    assert any(problem in text for text in validate_params(params(**overrides)))


def test_valid_params() -> None:
    assert validate_params(params()) == []
