# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The wrk module: documentation against the argument spec, and main() with wrk's captured outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ansible_collections.cloudpatterns.mysql.plugins.modules import wrk

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures" / "wrk"
SCRIPT = Path(__file__).parents[4] / "files" / "wrk" / "post_json.lua"
API_KEY = "k-0123456789"


def output(name: str, rc: int = 0) -> tuple[int, str, str]:
    return rc, (FIXTURES / name).read_text(), ""


def args(**overrides: Any) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:18081/direct", "script": str(SCRIPT), **overrides}


def test_return_documents_every_figure(run_module: Any) -> None:
    documented = set(yaml.safe_load(wrk.RETURN))
    result, _ = run_module(wrk.main, args(), [output("status_mixed_400.txt")])
    assert set(result) - {"changed", "failed", "msg"} <= documented


def test_run_returns_the_figures(run_module: Any) -> None:
    result, [call] = run_module(
        wrk.main,
        args(threads=2, connections=16, duration=5, api_key=API_KEY, env={"id_max": 599}),
        [output("pk_reads.txt")],
    )
    assert result["failed"] is False
    assert result["changed"] is True
    assert result["requests"] == 31833
    assert result["requests_per_sec"] == 6246.994
    assert result["latency_ms"]["p99"] == 9.439
    assert result["status_codes"] == {"200": 31833}
    assert result["connections"] == 16
    assert call.argv == [
        "/usr/bin/wrk",
        "--threads=2",
        "--connections=16",
        "--duration=5s",
        "--timeout=2s",
        f"--script={SCRIPT}",
        "http://127.0.0.1:18081/direct",
    ]
    # The key travels in the environment, never on the command line or in the result.
    assert call.environ_update == {"WRK_ID_MAX": "599", "WRK_API_KEY": API_KEY}
    assert API_KEY not in repr(result)


def test_http_errors_do_not_fail_the_task(run_module: Any) -> None:
    result, _ = run_module(wrk.main, args(), [output("status_401.txt")])
    assert result["failed"] is False
    assert result["non_2xx"] == 19134
    assert result["ok_requests"] == 0


def test_script_content_goes_to_a_private_file(run_module: Any) -> None:
    content = SCRIPT.read_text()
    result, [call] = run_module(
        wrk.main, {"url": "http://127.0.0.1:18081/direct", "script_content": content}, [output("pk_reads.txt")]
    )
    [path] = list(call.files)
    assert call.files[path] == (content, 0o600)
    assert f"--script={path}" in call.argv
    assert result["requests"] == 31833


def test_refused_connection_fails_with_wrk_words(run_module: Any) -> None:
    result, _ = run_module(wrk.main, args(), [output("connect_refused.txt", rc=1)])
    assert result["failed"] is True
    assert result["msg"] == "wrk failed: unable to connect to 127.0.0.1:18089 Connection refused"
    assert result["rc"] == 1


def test_missing_result_line_fails(run_module: Any) -> None:
    result, _ = run_module(wrk.main, args(), [output("no_marker_plain_get.txt")])
    assert result["failed"] is True
    assert "no 'CPM_WRK_RESULT' line" in result["msg"]


def test_no_completed_request_fails(run_module: Any) -> None:
    silent = (
        'CPM_WRK_RESULT {"bytes": 0, "duration_s": 2.0, "errors": {"connect": 4, "read": 0, "status": 0, '
        '"timeout": 0, "write": 0}, "latency_ms": null, "non_2xx": 0, "requests": 0, "requests_per_sec": 0, '
        '"status_codes": {}, "threads": 1}\n'
    )
    result, _ = run_module(wrk.main, args(), [(0, silent, "")])
    assert result["failed"] is True
    assert "no request got a response in 2.0 s" in result["msg"]
    assert result["socket_errors"] == 4


def test_check_mode_does_not_run(run_module: Any) -> None:
    result, calls = run_module(wrk.main, args(), [], check_mode=True)
    assert calls == []
    assert result["changed"] is True
    assert result["msg"] == "check mode: wrk not run"


def test_invalid_parameters(run_module: Any) -> None:
    result, calls = run_module(wrk.main, args(threads=8, connections=4), [])
    assert calls == []
    assert "connections (4) must be at least threads (8)" in result["msg"]


def test_script_and_script_content_exclude_each_other(run_module: Any) -> None:
    result, _ = run_module(wrk.main, args(script_content="-- lua"), [])
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]


def test_missing_script_file(run_module: Any) -> None:
    result, _ = run_module(wrk.main, args(script="/nonexistent/post_json.lua"), [])
    assert result["msg"] == "script /nonexistent/post_json.lua does not exist on the target host"


def test_missing_wrk(run_module: Any) -> None:
    result, _ = run_module(wrk.main, args(), [], missing=("wrk",))
    assert "install the package 'wrk'" in result["msg"]
