# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""wrk (HTTP load) as data: build its command line and read the result line of post_json.lua.

``files/wrk/post_json.lua`` prints one line ``CPM_WRK_RESULT {json}`` at the end of a run; this
module finds it, checks its shape and adds a few derived figures. Pure functions, unit-tested on
outputs captured from wrk 4.1.0 (Debian 12's package).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

MARKER = "CPM_WRK_RESULT "
MASK = "********"
SOCKET_ERRORS = ("connect", "read", "write", "timeout")
LATENCY_KEYS = ("min", "mean", "stdev", "max", "p50", "p90", "p95", "p99")
# Script arguments whose value is a secret.
SECRET_ARGS = ("api_key",)

_HEADER_RUN = re.compile(r"^Running (\S+) test @ (\S+)$")
_HEADER_LOAD = re.compile(r"^(\d+) threads and (\d+) connections$")
# What wrk prints instead of results when it cannot start (wrk 4.1.0).
_FAILURES = (
    re.compile(r"^unable to connect to .*"),
    re.compile(r"^PANIC: .*"),
    re.compile(r"^invalid URL: .*"),
    re.compile(r"^number of connections must be >= threads$"),
    re.compile(r"^.*\.lua:\d+: .*"),
)


class WrkError(Exception):
    """Base class: wrk failed or its output cannot be read."""


class WrkOutputError(WrkError):
    """The result line is missing or malformed."""


class WrkRunError(WrkError):
    """wrk could not run (bad URL, refused connection, Lua error); ``messages`` are its words."""

    def __init__(self, messages: Sequence[str]):
        self.messages = list(messages)
        super().__init__("wrk failed: " + " | ".join(self.messages))


def _failure_messages(lines: Sequence[str]) -> list[str]:
    messages = []
    for line in lines:
        text = line.strip()
        if any(pattern.match(text) for pattern in _FAILURES) and text not in messages:
            messages.append(text)
    return messages


def _header(lines: Sequence[str]) -> dict[str, Any]:
    """url, duration, connections from wrk's own text (the Lua script cannot see connections)."""
    found: dict[str, Any] = {}
    for line in lines:
        run = _HEADER_RUN.match(line.strip())
        load = _HEADER_LOAD.match(line.strip())
        if run:
            found["url"] = run.group(2)
        elif load:
            found["connections"] = int(load.group(2))
    return found


def _result_line(lines: Sequence[str]) -> tuple[int, str]:
    found = [(number, line) for number, line in enumerate(lines, 1) if line.startswith(MARKER)]
    if not found:
        failures = _failure_messages(lines)
        if failures:
            raise WrkRunError(failures)
        tail = " / ".join(line.strip() for line in lines[-3:] if line.strip()) or "nothing"
        raise WrkOutputError(
            f"no '{MARKER.strip()}' line in the wrk output; run wrk with "
            f"-s files/wrk/post_json.lua (its done() prints it). The output ended with: {tail}"
        )
    if len(found) > 1:
        raise WrkOutputError(
            f"{len(found)} '{MARKER.strip()}' lines (lines {', '.join(str(n) for n, _ in found)}); expected one per run"
        )
    return found[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_shape(result: Any, number: int) -> None:
    def fail(problem: str) -> NoReturn:
        raise WrkOutputError(f"the {MARKER.strip()} line {number} {problem}")

    if not isinstance(result, dict):
        fail("is not a JSON object")
    for key in ("requests", "duration_s", "bytes", "requests_per_sec", "threads"):
        if not _is_number(result.get(key)):
            fail(f"has no number '{key}'")
    errors = result.get("errors")
    if not isinstance(errors, dict) or not all(_is_number(errors.get(key)) for key in (*SOCKET_ERRORS, "status")):
        fail("has no 'errors' object with connect, read, write, timeout and status counts")
    latency = result.get("latency_ms", "missing")
    if latency is not None and not (
        isinstance(latency, dict) and all(_is_number(latency.get(key)) for key in LATENCY_KEYS)
    ):
        fail(f"has no 'latency_ms' object with {', '.join(LATENCY_KEYS)} (or null)")
    codes = result.get("status_codes")
    if codes is not None and not (isinstance(codes, dict) and all(_is_number(count) for count in codes.values())):
        fail("has a 'status_codes' that is not an object of counts")


def _derive(result: dict[str, Any]) -> dict[str, Any]:
    """Figures a report needs that the line only implies."""
    errors = result["errors"]
    codes = result.get("status_codes")
    if codes is not None:
        result["non_2xx"] = sum(count for code, count in codes.items() if not code.startswith("2"))
    else:
        result["status_codes"] = None
        result["non_2xx"] = None
    # wrk's 'status' counts responses >= 400; with per-status counts, 1xx and 3xx count too.
    bad_responses = result["non_2xx"] if result["non_2xx"] is not None else errors["status"]
    result["ok_requests"] = result["requests"] - bad_responses
    result["socket_errors"] = sum(errors[key] for key in SOCKET_ERRORS)
    return result


def parse_wrk_output(text: str) -> dict[str, Any]:
    """The figures of one wrk run with post_json.lua; see the module's RETURN for the keys.

    Raises WrkRunError when wrk could not run, WrkOutputError when the result line is missing or
    malformed (for example cut off).
    """
    lines = text.splitlines()
    number, line = _result_line(lines)
    try:
        result = json.loads(line[len(MARKER) :])
    except ValueError as error:
        raise WrkOutputError(
            f"the {MARKER.strip()} line {number} is not valid JSON ({error}); truncated output?"
        ) from None
    _check_shape(result, number)
    result.update(_header(lines))
    return _derive(result)


def validate_params(params: Mapping[str, Any]) -> list[str]:
    """Cross-field checks, each as a sentence a user understands."""
    problems = []
    if not re.match(r"^https?://[^/\s]+", params.get("url") or ""):
        problems.append(f"url must be an http:// or https:// URL, got {params.get('url')!r}")
    for name in ("threads", "connections", "duration", "timeout"):
        if params[name] < 1:
            problems.append(f"{name} must be at least 1, got {params[name]}")
    if params["connections"] < params["threads"]:
        problems.append(
            f"connections ({params['connections']}) must be at least threads ({params['threads']}): "
            "each thread needs a connection"
        )
    return problems


def build_wrk_argv(params: Mapping[str, Any], script: str, executable: str = "wrk") -> list[str]:
    """The argv for one wrk run (durations in seconds)."""
    argv = [
        executable,
        f"--threads={params['threads']}",
        f"--connections={params['connections']}",
        f"--duration={params['duration']}s",
        f"--timeout={params['timeout']}s",
        f"--script={script}",
        params["url"],
    ]
    script_args = list(params.get("script_args") or [])
    if script_args:
        argv += ["--"] + script_args
    return argv


def mask_argv(argv: Sequence[str]) -> str:
    """The command line as a shell string, with the value of secret script arguments masked."""
    shown = [
        arg.split("=", 1)[0] + "=" + MASK if arg.split("=", 1)[0] in SECRET_ARGS and "=" in arg else arg for arg in argv
    ]
    return shlex.join(shown)


def script_environment(params: Mapping[str, Any]) -> dict[str, str]:
    """Environment for post_json.lua: ``env`` as WRK_<KEY> (keys given bare or prefixed), the key."""
    environment = {}
    for key, value in (params.get("env") or {}).items():
        name = key.upper() if key.upper().startswith("WRK_") else "WRK_" + key.upper()
        environment[name] = str(value)
    if params.get("api_key"):
        environment["WRK_API_KEY"] = params["api_key"]
    return environment
