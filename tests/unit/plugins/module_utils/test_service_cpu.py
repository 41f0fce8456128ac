# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""CPU time of a unit's processes: /proc/<pid>/stat, cgroup.procs, and CPU per request between two samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.service_cpu import (
    ServiceCpuError,
    cgroup_procs_candidates,
    cpu_between,
    cpu_per_request,
    parse_control_group,
    parse_pids,
    parse_proc_stat,
    tier_cpu,
    unit_cpu,
)

FIXTURES = Path(__file__).parent / "fixtures" / "service_cpu"
GATEKEEPER_STAT = (FIXTURES / "gatekeeper_stat.txt").read_text()


def stat(pid: int, utime: int, stime: int, comm: str = "python") -> str:
    """A /proc/<pid>/stat line with the given times (fields 14 and 15), the rest like the captured one."""
    fields = GATEKEEPER_STAT.split(")", 1)[1].split()
    fields[11], fields[12] = str(utime), str(stime)
    return f"{pid} ({comm}) " + " ".join(fields)


def test_utime_and_stime_are_fields_14_and_15() -> None:
    assert parse_proc_stat(GATEKEEPER_STAT) == (32, 8)


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    assert parse_proc_stat(stat(7, 1234, 56, comm="sqlgate (worker 2)")) == (1234, 56)


@pytest.mark.parametrize("text", ["", "1718 python S 1", "1718 (python) S 1 2 3"])
def test_a_line_that_is_not_proc_stat_is_an_error(text: str) -> None:
    with pytest.raises(ServiceCpuError):
        parse_proc_stat(text)


def test_the_control_group_and_where_its_processes_are_listed() -> None:
    group = parse_control_group("/docker/70132d/system.slice/sqlgate-proxy.service\n")
    assert group == "/docker/70132d/system.slice/sqlgate-proxy.service"
    assert parse_control_group("ControlGroup=/system.slice/x.service") == "/system.slice/x.service"
    assert parse_control_group("\n") == ""
    assert cgroup_procs_candidates("/system.slice/x.service/", "/sys/fs/cgroup/") == [
        "/sys/fs/cgroup/system.slice/x.service/cgroup.procs",
        "/sys/fs/cgroup/unified/system.slice/x.service/cgroup.procs",
        "/sys/fs/cgroup/systemd/system.slice/x.service/cgroup.procs",
    ]
    with pytest.raises(ServiceCpuError, match="absolute path"):
        cgroup_procs_candidates("system.slice/x.service")


def test_pids_are_read_sorted_and_once() -> None:
    assert parse_pids("1718\n1722\n1720\n1718\n") == [1718, 1720, 1722]
    assert parse_pids("") == []
    with pytest.raises(ServiceCpuError, match="other than PIDs"):
        parse_pids("1718\nabc\n")


def test_a_unit_is_the_sum_of_all_its_processes() -> None:
    # A unit with a main process and two workers: 40 + 1000 + 500 ticks.
    sample = unit_cpu({1718: GATEKEEPER_STAT, 1720: stat(1720, 900, 100), 1722: stat(1722, 450, 50)}, 100)
    assert sample == {"pids": [1718, 1720, 1722], "vanished": [], "cpu_ticks": 1540, "cpu_seconds": 15.4}


def test_a_process_gone_before_its_stat_was_read_is_reported() -> None:
    sample = unit_cpu({1718: GATEKEEPER_STAT, 1730: None}, 100)
    assert sample["pids"] == [1718] and sample["vanished"] == [1730] and sample["cpu_seconds"] == 0.4
    with pytest.raises(ServiceCpuError, match="SC_CLK_TCK"):
        unit_cpu({}, 0)


def test_cpu_between_two_samples() -> None:
    assert cpu_between({"cpu_seconds": 15.4, "pids": [1, 2]}, {"cpu_seconds": 17.01, "pids": [2, 1]}) == {
        "cpu_seconds": 1.61,
        "pids_changed": False,
    }
    # A worker replaced in between: its time is missing, and the figure says so.
    assert cpu_between({"cpu_seconds": 15.4, "pids": [1, 2]}, {"cpu_seconds": 3.0, "pids": [1, 3]}) == {
        "cpu_seconds": 0.0,
        "pids_changed": True,
    }
    with pytest.raises(ServiceCpuError, match="backwards"):
        cpu_between({"cpu_seconds": 15.4, "pids": [1]}, {"cpu_seconds": 15.0, "pids": [1]})


def test_cpu_per_request() -> None:
    assert cpu_per_request(1.9, 5000) == 0.38
    assert cpu_per_request(1.9, 0) is None and cpu_per_request(1.9, None) is None


def test_a_tier_sums_its_hosts_and_units_per_request() -> None:
    unit = "sqlgate-gatekeeper.service"
    before = [
        {"host": "gatekeeper1", "units": {unit: {"cpu_seconds": 10.0, "pids": [5]}}},
        {"host": "gatekeeper2", "units": {unit: {"cpu_seconds": 1.0, "pids": [6, 7]}}},
    ]
    after = [
        {"host": "gatekeeper2", "units": {unit: {"cpu_seconds": 1.02, "pids": [6, 7]}}},
        {"host": "gatekeeper1", "units": {unit: {"cpu_seconds": 11.9, "pids": [5]}}},
    ]
    tier = tier_cpu(before, after, 5000)
    assert tier["cpu_seconds"] == 1.92 and tier["requests"] == 5000
    assert tier["cpu_ms_per_request"] == 0.384 and tier["pids_changed"] is False
    # Three processes read to a tick each: 30 ms over 5000 requests.
    assert tier["resolution_ms_per_request"] == 0.006
    assert [(h["host"], h["cpu_seconds"]) for h in tier["hosts"]] == [("gatekeeper1", 1.9), ("gatekeeper2", 0.02)]


def test_a_tier_without_its_second_sample_is_an_error() -> None:
    unit = "sqlgate-proxy.service"
    before = [{"host": "proxy", "units": {unit: {"cpu_seconds": 1.0, "pids": [5]}}}]
    with pytest.raises(ServiceCpuError, match="no sample after the level from proxy"):
        tier_cpu(before, [], 10)
    with pytest.raises(ServiceCpuError, match="no sample after the level of sqlgate-proxy.service on proxy"):
        tier_cpu(before, [{"host": "proxy", "units": {}}], 10)
