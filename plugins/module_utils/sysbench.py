# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""sysbench 1.0.20 as data: build its command line and parse what it prints.

Everything here is pure (text in, data out) so it is unit-tested on captured outputs without a
database. The module ``cloudpatterns.mysql.sysbench`` does the I/O.

Facts about sysbench 1.0.20 (Debian bookworm and Ubuntu 22.04 ship it) that shape this code:

- It has no ``--warmup-time`` (added after 1.0.20; passing it fails with ``invalid option``). A warm-up
  is ``--report-checkpoints=W`` with ``--time=T+W``: the checkpoint prints a full report for the first
  W seconds and resets every counter, so the final report covers only the measured T seconds.
- Everything, FATAL lines included, goes to stdout; only option errors go to stderr.
- After a server restart or a killed connection, worker threads can hang past ``--time`` even with
  ``--mysql-ignore-errors``; ``--forced-shutdown`` ends such a run (exit code 2), with a full report
  preceded by ``FATAL: The --max-time limit has expired``.
- ``--config-file`` splits values on whitespace, so a password with whitespace cannot travel that way.
- The bundled oltp_* scripts take ``--auto_inc=off``: prepare then inserts the ids 1..N itself instead of
  leaving them to AUTO_INCREMENT, which Galera's ``wsrep_auto_increment_control`` steps by the cluster size
  (ids 1, 5, 9, ... on four nodes, so three of four ids the run draws from 1..N find no row). The run's own
  INSERTs always name the id.
- ``--mysql-ignore-errors`` replaces the default list (1213,1020,1205) rather than adding to it.
- A write (INSERT, UPDATE, DELETE) that affects no row is counted as "other", not "write" (db_driver.c:
  ``rs->counter = (rs->nrows > 0) ? SB_CNT_WRITE : SB_CNT_OTHER``), so writes per transaction show how many
  writes found their row.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

COMMANDS = ("prepare", "run", "cleanup")
RAND_TYPES = ("uniform", "gaussian", "special", "pareto")
DB_PS_MODES = ("auto", "disable")
# sysbench 1.0.20's own --mysql-ignore-errors: deadlock, record changed, lock wait timeout.
DEFAULT_IGNORED_ERRORS = ("1213", "1020", "1205")
# Writes per transaction (event) of the bundled tests with their default options, from the Lua scripts in
# /usr/share/sysbench: oltp_read_write and oltp_write_only run index_updates (1) + non_index_updates (1) +
# delete_inserts (1 DELETE and 1 INSERT); oltp_read_only and oltp_point_select write nothing; the update
# tests one UPDATE each; oltp_insert one INSERT. oltp_delete is left out: it only deletes, so its rows run
# out and the share of deletes that find a row falls during the run.
WRITES_PER_TRANSACTION = {
    "oltp_read_write": 4,
    "oltp_write_only": 4,
    "oltp_read_only": 0,
    "oltp_point_select": 0,
    "oltp_update_index": 1,
    "oltp_update_non_index": 1,
    "oltp_insert": 1,
}
# The options that change those counts: writes per transaction = index_updates + non_index_updates
# + 2 x delete_inserts for oltp_read_write and oltp_write_only.
WRITE_OPTIONS = {"index_updates": 1, "non_index_updates": 1, "delete_inserts": 2}
MASK = "********"
PASSWORD_OPTIONS = ("--mysql-password", "--pgsql-password")
STATE_MARKER = "CPM_SYSBENCH_TABLE "

# A sysbench Lua script with one custom command, 'state': for each of the N oltp tables, whether it
# exists, its engine and its exact row count, one JSON line per table after STATE_MARKER.
# Read-only, so it also runs in check mode.
PREPARED_STATE_LUA = r"""
sysbench.cmdline.options = {
   tables = {"Number of tables", 1},
}

function cmd_state()
   local con = sysbench.sql.driver():connect()
   for i = 1, sysbench.opt.tables do
      local name = string.format("sbtest%d", i)
      local engine = con:query_row(string.format(
         "SELECT LOWER(engine) FROM information_schema.tables " ..
         "WHERE table_schema = DATABASE() AND table_name = '%s'", name))
      if engine == nil then
         print(string.format('CPM_SYSBENCH_TABLE {"name": "%s", "engine": null, "rows": null}', name))
      else
         local rows, min_id, max_id = con:query_row(string.format(
            "SELECT COUNT(*), MIN(id), MAX(id) FROM %s", name))
         print(string.format(
            'CPM_SYSBENCH_TABLE {"name": "%s", "engine": "%s", "rows": %s, "min_id": %s, "max_id": %s}',
            name, engine, rows, min_id or "null", max_id or "null"))
      end
   end
   con:disconnect()
end

sysbench.cmdline.commands = {
   state = {cmd_state},
}
"""

_NUM = r"(\d+(?:\.\d+)?)"
_BANNER = re.compile(r"^sysbench (\S+)")
_INTERVAL = re.compile(
    rf"^\[ (\d+)s \] thds: (\d+) tps: {_NUM} qps: {_NUM} \(r/w/o: {_NUM}/{_NUM}/{_NUM}\) "
    rf"lat \(ms,(\d+)%\): {_NUM} err/s:? {_NUM} reconn/s: {_NUM}$"
)
_QUEUE = re.compile(r"^\[ (\d+)s \] queue length: (\d+), concurrency: (\d+)$")
_CHECKPOINT = re.compile(r"^\[ (\d+)s \] Checkpoint report:$")
_THREADS = re.compile(r"^Number of threads: (\d+)$")
_HISTOGRAM_TITLE = "Latency histogram (values are in milliseconds)"
_HISTOGRAM_ROW = re.compile(rf"^\s*{_NUM} \|\**\s+(\d+)$")
_FORCED = re.compile(r"^Number of unfinished transactions on forced shutdown: (\d+)$")
_CREATING = re.compile(r"^Creating table '(\w+)'\.\.\.$")
_INSERTING = re.compile(r"^Inserting (\d+) records into '(\w+)'$")
_INDEXING = re.compile(r"^Creating a secondary index on '(\w+)'\.\.\.$")
_DROPPING = re.compile(r"^Dropping table '(\w+)'\.\.\.$")
# Failures that sysbench or the MySQL client library report without a FATAL prefix.
_FAILURE_PREFIXES = ("Error in my_thread_init", "invalid option:")


class SysbenchError(Exception):
    """Base class: sysbench failed or printed something this parser cannot read."""


class SysbenchOutputError(SysbenchError):
    """The output is malformed or truncated: it does not have the shape sysbench 1.0.20 prints."""

    def __init__(self, message: str, line_number: int | None = None, line: str | None = None):
        self.line_number = line_number
        self.line = line
        where = "" if line_number is None else f" (line {line_number}: {line!r})"
        super().__init__(f"unreadable sysbench output: {message}{where}")


# What to do about failures seen in the lab: (text in sysbench's message, advice).
_HINTS = (
    ("--warmup-time", "sysbench 1.0.20 has no --warmup-time; use the module's warmup_time instead"),
    (
        "error 1129",
        "the server blocks this client after too many failed connections: run "
        "'mariadb-admin flush-hosts' (FLUSH HOSTS) on it, or raise max_connect_errors",
    ),
    (
        "Unknown storage engine 'ndbcluster'",
        "this server is not an NDB Cluster SQL node; mysql_storage_engine=ndbcluster works only there",
    ),
    ("error 1146", "the tables are missing: run command=prepare first, with the same tables and table_size"),
    ("doesn't exist", "the tables are missing: run command=prepare first, with the same tables and table_size"),
    ("already exists", "the tables are already there: use skip_if_prepared=true, or command=cleanup first"),
    ("--max-time limit has expired", "threads hung past the end of the run (lost or killed connections?)"),
)


def hints_for(messages: Iterable[str]) -> list[str]:
    """Advice for known failures, each once."""
    hints: list[str] = []
    for message in messages:
        for needle, hint in _HINTS:
            if needle in message and hint not in hints:
                hints.append(hint)
    return hints


class SysbenchRunError(SysbenchError):
    """sysbench reported a failure; ``messages`` holds its own words, ``partial`` what was parsed."""

    def __init__(self, messages: Sequence[str], partial: Mapping[str, Any] | None = None):
        self.messages = list(messages)
        self.partial = dict(partial or {})
        self.hints = hints_for(self.messages)
        text = "sysbench failed: " + " | ".join(self.messages)
        if self.hints:
            text += ". Hint: " + "; ".join(self.hints)
        super().__init__(text)


# --------------------------------------------------------------------------------------------------
# Reading output
# --------------------------------------------------------------------------------------------------


class _Cursor:
    """Lines with a position; ``expect`` reads the next non-blank line or says what was missing.

    sysbench prints interval reports from their own thread, so one can land inside a checkpoint
    report (seen when the checkpoint falls on an interval boundary). The cursor sets such lines
    aside in ``strays`` instead of failing on them.
    """

    def __init__(self, lines: Sequence[str], start: int = 0):
        self.lines = lines
        self.index = start
        self.strays: list[str] = []

    def _skip_blank(self) -> None:
        while self.index < len(self.lines):
            line = self.lines[self.index].strip()
            if line and not (_INTERVAL.match(line) or _QUEUE.match(line)):
                return
            if line:
                self.strays.append(line)
            self.index += 1

    def peek(self) -> str | None:
        self._skip_blank()
        return self.lines[self.index].strip() if self.index < len(self.lines) else None

    def expect(self, pattern: re.Pattern[str] | str, what: str) -> re.Match[str]:
        self._skip_blank()
        if self.index >= len(self.lines):
            last = len(self.lines)
            raise SysbenchOutputError(
                f"expected {what}, but the output ends after line {last} (truncated?)",
                last or None,
                self.lines[-1] if self.lines else None,
            )
        line = self.lines[self.index]
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        match = regex.match(line.strip())
        if not match:
            raise SysbenchOutputError(f"expected {what}", self.index + 1, line)
        self.index += 1
        return match


def _count_and_rate(cursor: _Cursor, label: str) -> dict[str, Any]:
    match = cursor.expect(
        rf"^{re.escape(label)}:\s+(\d+)\s+\({_NUM} per sec\.\)$",
        f"'{label}: N (X per sec.)'",
    )
    return {"total": int(match.group(1)), "per_sec": float(match.group(2))}


def _int_field(cursor: _Cursor, label: str) -> int:
    return int(cursor.expect(rf"^{re.escape(label)}:\s+(\d+)$", f"'{label}: N'").group(1))


def _float_field(cursor: _Cursor, label: str, unit: str = "") -> float:
    match = cursor.expect(rf"^{re.escape(label)}:\s+{_NUM}{unit}$", f"'{label}: X{unit}'")
    return float(match.group(1))


def _avg_stddev(cursor: _Cursor, label: str) -> tuple[float, float]:
    match = cursor.expect(
        rf"^{re.escape(label)} \(avg/stddev\):\s+{_NUM}/{_NUM}$",
        f"'{label} (avg/stddev): A/S'",
    )
    return float(match.group(1)), float(match.group(2))


def _parse_queries(cursor: _Cursor) -> dict[str, Any]:
    cursor.expect(r"^queries performed:$", "'queries performed:'")
    queries = {kind: _int_field(cursor, kind) for kind in ("read", "write", "other", "total")}
    line_number = cursor.index
    if queries["read"] + queries["write"] + queries["other"] != queries["total"]:
        raise SysbenchOutputError(
            "queries read + write + other do not add up to total",
            line_number,
            cursor.lines[line_number - 1],
        )
    return queries


def _parse_latency(cursor: _Cursor) -> dict[str, Any]:
    cursor.expect(r"^Latency \(ms\):$", "'Latency (ms):'")
    latency: dict[str, Any] = {key: _float_field(cursor, key) for key in ("min", "avg", "max")}
    match = cursor.expect(
        rf"^(?:(\d+)th percentile:\s+{_NUM}|percentile stats:\s+disabled)$",
        "'NNth percentile: X' or 'percentile stats: disabled'",
    )
    latency["percentile"] = int(match.group(1)) if match.group(1) else None
    latency["percentile_value"] = float(match.group(2)) if match.group(2) else None
    latency["sum"] = _float_field(cursor, "sum")
    return latency


def _parse_summary(cursor: _Cursor) -> dict[str, Any]:
    """The report that starts at 'SQL statistics:' and ends with 'Threads fairness'."""
    cursor.expect(r"^SQL statistics:$", "'SQL statistics:'")
    queries = _parse_queries(cursor)
    transactions = _count_and_rate(cursor, "transactions")
    query_rate = _count_and_rate(cursor, "queries")
    if query_rate["total"] != queries["total"]:
        raise SysbenchOutputError(
            f"'queries: {query_rate['total']}' differs from 'total: {queries['total']}'",
            cursor.index,
            cursor.lines[cursor.index - 1],
        )
    queries["per_sec"] = query_rate["per_sec"]
    summary: dict[str, Any] = {
        "transactions": transactions,
        "queries": queries,
        "ignored_errors": _count_and_rate(cursor, "ignored errors"),
        "reconnects": _count_and_rate(cursor, "reconnects"),
        "forced_shutdown_unfinished": None,
    }
    next_line = cursor.peek() or ""
    if next_line.startswith("Number of unfinished transactions"):
        summary["forced_shutdown_unfinished"] = int(cursor.expect(_FORCED, "unfinished count").group(1))
    cursor.expect(r"^General statistics:$", "'General statistics:'")
    summary["general"] = {
        "total_time_s": _float_field(cursor, "total time", "s"),
        "total_events": _int_field(cursor, "total number of events"),
    }
    summary["latency_ms"] = _parse_latency(cursor)
    cursor.expect(r"^Threads fairness:$", "'Threads fairness:'")
    events_avg, events_stddev = _avg_stddev(cursor, "events")
    time_avg, time_stddev = _avg_stddev(cursor, "execution time")
    summary["threads_fairness"] = {
        "events_avg": events_avg,
        "events_stddev": events_stddev,
        "execution_time_avg_s": time_avg,
        "execution_time_stddev_s": time_stddev,
    }
    return summary


def _parse_interval(match: re.Match[str]) -> dict[str, Any]:
    groups = match.groups()
    return {
        "time_s": int(groups[0]),
        "threads": int(groups[1]),
        "tps": float(groups[2]),
        "qps": float(groups[3]),
        "reads_per_sec": float(groups[4]),
        "writes_per_sec": float(groups[5]),
        "other_per_sec": float(groups[6]),
        "latency_percentile": int(groups[7]),
        "latency_ms": float(groups[8]),
        "errors_per_sec": float(groups[9]),
        "reconnects_per_sec": float(groups[10]),
    }


def _parse_histogram(cursor: _Cursor) -> list[dict[str, Any]]:
    """Rows after the title, up to the first line that is not a row (a blank or ' ' line)."""
    cursor.expect(re.escape(_HISTOGRAM_TITLE), "the histogram title")
    cursor.expect(r"^value\s+-+ distribution -+\s+count$", "the histogram header")
    rows = []
    while cursor.index < len(cursor.lines):
        match = _HISTOGRAM_ROW.match(cursor.lines[cursor.index])
        if not match:
            break
        rows.append({"value_ms": float(match.group(1)), "count": int(match.group(2))})
        cursor.index += 1
    if not rows:
        line = cursor.lines[cursor.index] if cursor.index < len(cursor.lines) else None
        raise SysbenchOutputError("expected histogram rows 'VALUE |*** COUNT'", cursor.index + 1, line)
    return rows


def _failure_messages(lines: Iterable[str]) -> list[str]:
    """sysbench's own error text: FATAL lines and client-library errors, each once, in order."""
    messages: list[str] = []
    for raw in lines:
        line = raw.strip()
        if line.startswith("FATAL:"):
            message = line[len("FATAL:") :].strip()
        elif line.startswith(_FAILURE_PREFIXES):
            message = line
        else:
            continue
        if message not in messages:
            messages.append(message)
    return messages


def _banner(lines: Sequence[str]) -> str:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            match = _BANNER.match(line.strip())
            if not match:
                raise SysbenchOutputError(
                    "expected the 'sysbench <version>' banner as the first line",
                    number,
                    line,
                )
            return match.group(1)
    raise SysbenchOutputError("the output is empty")


def _parse_run(lines: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "threads": None,
        "intervals": [],
        "checkpoints": [],
        "histogram": [],
    }
    cursor = _Cursor(lines)
    summary: dict[str, Any] | None = None
    while cursor.index < len(lines):
        line = lines[cursor.index].strip()
        if line.startswith("[ "):
            _read_bracket_line(cursor, line, result)
        elif line == _HISTOGRAM_TITLE:
            result["histogram"] = _parse_histogram(cursor)
        elif line == "SQL statistics:":
            if summary is not None:
                raise SysbenchOutputError(
                    "a second final report (several runs in one output?)",
                    cursor.index + 1,
                    line,
                )
            summary = _parse_summary(cursor)
        else:
            match = _THREADS.match(line)
            if match:
                result["threads"] = int(match.group(1))
            cursor.index += 1
    if summary is None:
        raise SysbenchOutputError(
            "no final report ('SQL statistics:') found; the run was cut short or this is not sysbench run output",
            len(lines),
            lines[-1] if lines else None,
        )
    for line in cursor.strays:
        _record_interval(line, result["intervals"])
    result["intervals"].sort(key=lambda item: item["time_s"])
    result.update(summary)
    # Checkpoints reset the counters, so the final report's rates cover only the time after the
    # last one, while its 'total time' spans the whole run.
    warmup = sum(report["general"]["total_time_s"] for report in result["checkpoints"])
    result["measured_time_s"] = round(summary["general"]["total_time_s"] - warmup, 4)
    return result


def _record_interval(line: str, intervals: list[dict[str, Any]]) -> bool:
    """Add an interval report (or, with --rate, its queue line) to ``intervals``; False if neither."""
    interval = _INTERVAL.match(line)
    if interval:
        intervals.append(_parse_interval(interval))
        return True
    queue = _QUEUE.match(line)
    if queue:
        for item in reversed(intervals):
            if item["time_s"] == int(queue.group(1)):
                item["queue_length"] = int(queue.group(2))
                item["concurrency"] = int(queue.group(3))
                break
        return True
    return False


def _read_bracket_line(cursor: _Cursor, line: str, result: dict[str, Any]) -> None:
    if _record_interval(line, result["intervals"]):
        cursor.index += 1
        return
    checkpoint = _CHECKPOINT.match(line)
    if checkpoint:
        cursor.index += 1
        report = _parse_summary(cursor)
        report["time_s"] = int(checkpoint.group(1))
        result["checkpoints"].append(report)
        return
    raise SysbenchOutputError(
        "expected an interval report '[ Ns ] thds: N tps: X qps: X (r/w/o: X/X/X) "
        "lat (ms,P%): X err/s: X reconn/s: X' or '[ Ns ] Checkpoint report:'",
        cursor.index + 1,
        cursor.lines[cursor.index],
    )


def _salvage_intervals(lines: Sequence[str]) -> dict[str, Any]:
    """The interval reports of a run that died before its final report."""
    intervals = [_INTERVAL.match(line.strip()) for line in lines]
    return {"intervals": [_parse_interval(match) for match in intervals if match]}


def _parse_prepare(lines: Sequence[str]) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        created = _CREATING.match(line)
        inserted = _INSERTING.match(line)
        indexed = _INDEXING.match(line)
        if created:
            tables[created.group(1)] = {
                "name": created.group(1),
                "rows": 0,
                "secondary_index": False,
            }
        elif inserted or indexed:
            name = inserted.group(2) if inserted else indexed.group(1)  # type: ignore[union-attr]
            if name not in tables:
                raise SysbenchOutputError(f"'{name}' is filled before a 'Creating table' line", number, raw)
            if inserted:
                tables[name]["rows"] += int(inserted.group(1))
            else:
                tables[name]["secondary_index"] = True
    if not tables:
        raise SysbenchOutputError(
            "no 'Creating table' line found; this is not sysbench prepare output",
            len(lines),
            lines[-1] if lines else None,
        )
    ordered = sorted(tables.values(), key=lambda table: _table_number(table["name"]))
    return {"tables": ordered, "rows_inserted": sum(table["rows"] for table in ordered)}


def _parse_cleanup(lines: Sequence[str]) -> dict[str, Any]:
    dropped = [match.group(1) for match in (_DROPPING.match(line.strip()) for line in lines) if match]
    if not dropped:
        raise SysbenchOutputError(
            "no 'Dropping table' line found; this is not sysbench cleanup output",
            len(lines),
            lines[-1] if lines else None,
        )
    return {"tables_dropped": sorted(dropped, key=_table_number)}


def _table_number(name: str) -> tuple[int, str]:
    digits = re.search(r"(\d+)$", name)
    return (int(digits.group(1)) if digits else 0, name)


_PARSERS: dict[str, Callable[[Sequence[str]], dict[str, Any]]] = {
    "prepare": _parse_prepare,
    "run": _parse_run,
    "cleanup": _parse_cleanup,
}


def parse_sysbench_output(text: str, command: str = "run") -> dict[str, Any]:
    """Parse what ``sysbench <oltp test> <command>`` printed (stdout, then stderr).

    Returns the figures as a dict (see the module's RETURN for the keys). Raises SysbenchRunError
    when sysbench reported a failure (its messages, plus whatever could be parsed in ``partial``),
    SysbenchOutputError when the text does not have the shape sysbench 1.0.20 prints.
    """
    if command not in _PARSERS:
        raise ValueError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    lines = text.splitlines()
    failures = _failure_messages(lines)
    try:
        version = _banner(lines)
        parsed = _PARSERS[command](lines)
    except SysbenchOutputError:
        if failures:
            raise SysbenchRunError(failures, _salvage_intervals(lines)) from None
        raise
    parsed["sysbench_version"] = version
    if failures:
        raise SysbenchRunError(failures, parsed)
    return parsed


def parse_prepared_state(text: str) -> list[dict[str, Any]]:
    """Read the marker lines that PREPARED_STATE_LUA prints; fail with sysbench's words otherwise."""
    failures = _failure_messages(text.splitlines())
    if failures:
        raise SysbenchRunError(failures)
    states = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(STATE_MARKER):
            try:
                state = json.loads(line[len(STATE_MARKER) :])
            except ValueError:
                raise SysbenchOutputError("invalid JSON after the table-state marker", number, line) from None
            states.append(state)
    if not states:
        raise SysbenchOutputError(
            f"no '{STATE_MARKER.strip()}' line in the table-state check output",
            None,
            None,
        )
    return states


def classify_prepared_state(
    states: Sequence[Mapping[str, Any]], table_size: int, engine: str | None = None, explicit_ids: bool = False
) -> tuple[str, str]:
    """('prepared' | 'absent' | 'mismatch', a sentence saying why) for the tables found.

    With ``explicit_ids`` (prepare with --auto_inc=off) the ids must also be 1..table_size: a table
    prepared with AUTO_INCREMENT on Galera has the right row count but ids stepped by the cluster size.
    """
    present = [state for state in states if state.get("engine") is not None]
    if not present:
        return (
            "absent",
            f"none of the {len(states)} tables sbtest1..sbtest{len(states)} exists",
        )
    problems = []
    missing = [state["name"] for state in states if state.get("engine") is None]
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    wrong_rows = [f"{state['name']} has {state['rows']}" for state in present if state["rows"] != table_size]
    if wrong_rows:
        problems.append(f"expected {table_size} rows but {', '.join(wrong_rows)}")
    if engine:
        wrong_engine = [
            f"{state['name']} uses {state['engine']}"
            for state in present
            if str(state["engine"]).lower() != engine.lower()
        ]
        if wrong_engine:
            problems.append(f"expected engine {engine.lower()} but {', '.join(wrong_engine)}")
    if explicit_ids:
        stepped = [
            f"{state['name']} has ids {state['min_id']}..{state['max_id']}"
            for state in present
            if state.get("max_id") is not None and (int(state["min_id"]), int(state["max_id"])) != (1, table_size)
        ]
        if stepped:
            problems.append(
                f"expected ids 1..{table_size} but {', '.join(stepped)} (prepared with AUTO_INCREMENT, "
                "which Galera steps by the cluster size?)"
            )
    if problems:
        return "mismatch", "; ".join(problems)
    return "prepared", f"all {len(states)} tables exist with {table_size} rows each"


def expected_writes_per_transaction(
    test: str | None, options: Mapping[str, Any] | None = None
) -> tuple[float | None, str]:
    """(writes per transaction the test sends when every write finds its row, or None; why).

    From the test name for the bundled oltp_* tests (WRITES_PER_TRANSACTION), with the counts of
    index_updates, non_index_updates and delete_inserts in ``options`` when they are set. None, with the
    reason, for other tests and Lua scripts, whose writes this code cannot know.
    """
    name = (test or "").rsplit("/", 1)[-1].removesuffix(".lua")
    if name not in WRITES_PER_TRANSACTION:
        return None, (
            f"the test {test!r} is not one of the bundled tests whose writes per transaction are known "
            f"({', '.join(sorted(WRITES_PER_TRANSACTION))})"
        )
    options = options or {}
    if name in ("oltp_read_write", "oltp_write_only") and any(options.get(key) is not None for key in WRITE_OPTIONS):
        writes = sum(
            int(1 if options.get(key) is None else options[key]) * weight for key, weight in WRITE_OPTIONS.items()
        )
        return float(writes), f"{name} with index_updates, non_index_updates and delete_inserts as set"
    return float(WRITES_PER_TRANSACTION[name]), f"{name} with its default options"


def mark_warmup(intervals: Sequence[Mapping[str, Any]], warmup_s: int) -> list[dict[str, Any]]:
    """Flag the interval reports that fall in the warm-up (the first ``warmup_s`` seconds)."""
    return [dict(item, warmup=item["time_s"] <= warmup_s) for item in intervals]


# --------------------------------------------------------------------------------------------------
# Building the command line
# --------------------------------------------------------------------------------------------------


def validate_params(params: Mapping[str, Any]) -> list[str]:
    """Cross-field checks the argument spec cannot express, each as a sentence a user understands."""
    problems = []
    hosts = params.get("mysql_host") or []
    if not hosts or any(not host or not host.strip() or "," in host for host in hosts):
        problems.append("mysql_host must list at least one host, each a non-empty name without commas")
    minimums = {"tables": 1, "table_size": 1, "threads": 1, "time": 1, "mysql_port": 1}
    minimums.update(warmup_time=0, report_interval=0, forced_shutdown=0)
    for name, minimum in minimums.items():
        if params.get(name) is not None and params[name] < minimum:
            problems.append(f"{name} must be at least {minimum}, got {params[name]}")
    if not 0 <= params.get("percentile", 95) <= 100:
        problems.append(f"percentile must be within 0..100 (0 disables it), got {params['percentile']}")
    bad_codes = [code for code in params.get("ignore_errors") or [] if not (code.isdigit() or code == "all")]
    if bad_codes:
        problems.append(f"ignore_errors must list MySQL error numbers (or 'all'), got {', '.join(bad_codes)}")
    commands = [arg for arg in params.get("extra_args") or [] if arg in COMMANDS]
    if commands:
        problems.append(f"extra_args must not contain the command ({', '.join(commands)}); use command")
    return problems


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _connection_args(params: Mapping[str, Any]) -> list[str]:
    args = [
        "--db-driver=mysql",
        "--mysql-host=" + ",".join(params["mysql_host"]),
        f"--mysql-port={params['mysql_port']}",
        f"--mysql-user={params['mysql_user']}",
    ]
    if params.get("mysql_password"):
        args.append(f"--mysql-password={params['mysql_password']}")
    args.append(f"--mysql-db={params['mysql_db']}")
    return args


def _run_args(params: Mapping[str, Any]) -> list[str]:
    warmup = params.get("warmup_time") or 0
    args = [
        f"--threads={params['threads']}",
        f"--time={params['time'] + warmup}",
        f"--report-interval={params['report_interval']}",
        f"--percentile={params['percentile']}",
        f"--histogram={_on_off(params['histogram'])}",
        f"--rand-type={params['rand_type']}",
        f"--db-ps-mode={params['db_ps_mode']}",
    ]
    if warmup:
        args.append(f"--report-checkpoints={warmup}")
    forced = params.get("forced_shutdown")
    args.append(f"--forced-shutdown={forced if forced else 'off'}")
    return args


def build_sysbench_argv(params: Mapping[str, Any], executable: str = "sysbench") -> list[str]:
    """The argv for one sysbench call, from the module's parameters (password in clear)."""
    command = params["command"]
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {', '.join(COMMANDS)}, got {command!r}")
    argv = [executable, params["test"]] + _connection_args(params)
    argv.append(f"--tables={params['tables']}")
    if command in ("prepare", "run"):
        argv.append(f"--table-size={params['table_size']}")
    if command in ("prepare", "run") and params.get("auto_inc") is False:
        argv.append("--auto_inc=off")
    if command == "run" and params.get("ignore_errors"):
        argv.append("--mysql-ignore-errors=" + ",".join(params["ignore_errors"]))
    if command == "prepare":
        # prepare runs in parallel in 1.0.20: up to --threads tables are filled at once.
        argv.append(f"--threads={params['threads']}")
        if params.get("mysql_storage_engine"):
            argv.append(f"--mysql_storage_engine={params['mysql_storage_engine']}")
    if command == "run":
        argv.extend(_run_args(params))
    argv.extend(params.get("extra_args") or [])
    argv.append(command)
    return argv


def build_state_argv(params: Mapping[str, Any], script: str, executable: str = "sysbench") -> list[str]:
    """The argv that runs PREPARED_STATE_LUA (saved at ``script``) against the same database."""
    return [executable, script] + _connection_args(params) + [f"--tables={params['tables']}", "state"]


def is_password_arg(arg: str) -> bool:
    return arg.startswith(tuple(option + "=" for option in PASSWORD_OPTIONS))


def mask_argv(argv: Sequence[str]) -> str:
    """The command line as a shell string, every password option's value replaced by MASK."""
    shown = [arg.split("=", 1)[0] + "=" + MASK if is_password_arg(arg) else arg for arg in argv]
    return shlex.join(shown)


def password_via_config_file(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """Move the password out of argv (where any local user sees it in ps) into config-file text.

    Returns (argv without the password, the text of the --config-file) or (argv unchanged, None)
    when there is no password or it contains whitespace, which sysbench's config-file reader splits.
    """
    secrets = [arg for arg in argv if is_password_arg(arg)]
    if not secrets or any(re.search(r"\s", arg.split("=", 1)[1]) for arg in secrets):
        return list(argv), None
    kept = [arg for arg in argv if not is_password_arg(arg)]
    text = "".join(arg[2:] + "\n" for arg in secrets)
    return kept, text


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace each secret in a text (a message, an output) by MASK."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
