# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""CPU time of a systemd unit's processes, from /proc/<pid>/stat, as data.

Pure functions (text in, data out), unit-tested without systemd; the module ``cloudpatterns.mysql.service_cpu``
reads the files. A unit's processes are the PIDs in its control group (``systemctl show -p ControlGroup``, then
``cgroup.procs`` of that group), so every worker process a unit may start is counted, not only its main PID.

Facts that shape this code:

- ``/proc/<pid>/stat`` field 2 is the command name in parentheses and may itself hold spaces and parentheses,
  so the fields are counted after the last ``)``. utime and stime are fields 14 and 15, in clock ticks
  (``SC_CLK_TCK``, 100 per second on Linux: a resolution of 10 ms). They cover every thread of the process.
- ``cgroup.procs`` is at ``/sys/fs/cgroup/<group>/`` with cgroup v2 only; on a hybrid or v1 host (Docker's
  cgroupfs driver, as in the local lab) systemd's group is under ``/sys/fs/cgroup/unified/`` or
  ``/sys/fs/cgroup/systemd/``.
- A process that exits between two samples takes its CPU time with it (unless its parent, in the same group,
  reaps it: that lands in the parent's cutime/cstime, which are not counted). ``pids`` lets a caller see that
  the set changed between samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Where a unit's control group may be mounted, in the order tried: cgroup v2, then a hybrid host's unified
# hierarchy, then the v1 name=systemd hierarchy.
CGROUP_MOUNTS = ("", "/unified", "/systemd")


class ServiceCpuError(Exception):
    """A unit's processes or their CPU time cannot be read; the message says what was found."""


def parse_proc_stat(text: str) -> tuple[int, int]:
    """(utime, stime) in clock ticks from the text of /proc/<pid>/stat."""
    end = text.rfind(")")
    if end < 0:
        raise ServiceCpuError(f"not a /proc/<pid>/stat line (no ')' after the command name): {text[:80]!r}")
    fields = text[end + 1 :].split()
    # fields[0] is field 3 (state), so field N is fields[N - 3].
    try:
        return int(fields[14 - 3]), int(fields[15 - 3])
    except (IndexError, ValueError):
        raise ServiceCpuError(f"/proc/<pid>/stat has no utime and stime (fields 14 and 15): {text[:80]!r}") from None


def parse_control_group(text: str) -> str:
    """The group of ``systemctl show -p ControlGroup --value UNIT`` (or ``ControlGroup=...``); '' if none."""
    value = text.strip()
    if value.startswith("ControlGroup="):
        value = value[len("ControlGroup=") :]
    return value


def cgroup_procs_candidates(control_group: str, root: str = "/sys/fs/cgroup") -> list[str]:
    """The cgroup.procs files where a unit's processes may be listed, in the order to try."""
    if not control_group.startswith("/"):
        raise ServiceCpuError(f"a control group is an absolute path, got {control_group!r}")
    group = control_group.rstrip("/")
    return [f"{root.rstrip('/')}{mount}{group}/cgroup.procs" for mount in CGROUP_MOUNTS]


def parse_pids(text: str) -> list[int]:
    """The PIDs of a cgroup.procs file, sorted."""
    try:
        return sorted({int(line) for line in text.split()})
    except ValueError:
        raise ServiceCpuError(f"cgroup.procs holds something other than PIDs: {text[:80]!r}") from None


def unit_cpu(stats: Mapping[int, str | None], clock_ticks: int) -> dict[str, Any]:
    """The CPU time of a unit: stats maps each PID in its group to its /proc/<pid>/stat text (None: gone).

    Returns {pids, vanished, cpu_ticks, cpu_seconds}: pids are those whose time was read, vanished those
    that exited between listing the group and reading their stat.
    """
    if clock_ticks <= 0:
        raise ServiceCpuError(f"SC_CLK_TCK must be positive, got {clock_ticks}")
    ticks, pids, vanished = 0, [], []
    for pid in sorted(stats):
        text = stats[pid]
        if text is None:
            vanished.append(pid)
            continue
        utime, stime = parse_proc_stat(text)
        ticks += utime + stime
        pids.append(pid)
    return {"pids": pids, "vanished": vanished, "cpu_ticks": ticks, "cpu_seconds": round(ticks / clock_ticks, 4)}


def cpu_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """CPU a unit used between two samples of the module ({cpu_seconds, pids}), and whether it is whole.

    ``pids_changed`` is true when a process left or joined the group in between: the time of one that left
    is missing from the figure. A negative difference (a restart) is an error.
    """
    seconds = round(float(after["cpu_seconds"]) - float(before["cpu_seconds"]), 4)
    changed = sorted(before.get("pids") or []) != sorted(after.get("pids") or [])
    if seconds < 0 and not changed:
        raise ServiceCpuError(f"CPU time went backwards ({before['cpu_seconds']} s, then {after['cpu_seconds']} s)")
    return {"cpu_seconds": max(seconds, 0.0), "pids_changed": changed}


def cpu_per_request(cpu_seconds: float, requests: int | None) -> float | None:
    """Milliseconds of CPU per request; None without requests."""
    if not requests or requests <= 0:
        return None
    return round(cpu_seconds * 1000.0 / requests, 4)


def tier_cpu(
    samples_before: Sequence[Mapping[str, Any]],
    samples_after: Sequence[Mapping[str, Any]],
    requests: int | None,
    clock_ticks: int = 100,
) -> dict[str, Any]:
    """Sum one tier's CPU over its hosts and units between two rounds of samples, per request.

    Each sample is ``{"host": name, "units": {unit: {cpu_seconds, pids}}}`` (the module's return plus the
    host). Returns {hosts, cpu_seconds, requests, cpu_ms_per_request, pids_changed, resolution_ms_per_request}.
    """
    after_by_host = {sample["host"]: sample for sample in samples_after}
    total, changed, hosts, processes = 0.0, False, [], 0
    for before in samples_before:
        after = after_by_host.get(before["host"])
        if after is None:
            raise ServiceCpuError(f"no sample after the level from {before['host']}")
        for unit, first in (before.get("units") or {}).items():
            last = (after.get("units") or {}).get(unit)
            if last is None:
                raise ServiceCpuError(f"no sample after the level of {unit} on {before['host']}")
            used = cpu_between(first, last)
            total += used["cpu_seconds"]
            changed = changed or used["pids_changed"]
            processes += max(len(last.get("pids") or []), 1)
            hosts.append({"host": before["host"], "unit": unit, **used})
    total = round(total, 4)
    return {
        "hosts": hosts,
        "cpu_seconds": total,
        "requests": requests,
        "cpu_ms_per_request": cpu_per_request(total, requests),
        "pids_changed": changed,
        # Each process's time is read in whole clock ticks: the difference of two readings is exact to within
        # one tick per process.
        "resolution_ms_per_request": cpu_per_request(processes / clock_ticks, requests),
    }
