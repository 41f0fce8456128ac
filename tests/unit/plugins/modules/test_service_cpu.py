# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The service_cpu module on a fake cgroup and proc tree, systemctl replaced by its answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.cloudpatterns.mysql.plugins.modules import service_cpu

STAT = (Path(__file__).parents[1] / "module_utils" / "fixtures" / "service_cpu" / "gatekeeper_stat.txt").read_text()
GROUP = "/docker/70132d/system.slice/sqlgate-gatekeeper.service"


def stat(pid: int, utime: int, stime: int) -> str:
    fields = STAT.split(")", 1)[1].split()
    fields[11], fields[12] = str(utime), str(stime)
    return f"{pid} (python) " + " ".join(fields)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Any]:
    """A hybrid host like the lab's containers: the group under unified/ and systemd/, not at the root."""
    cgroups, proc = tmp_path / "cgroup", tmp_path / "proc"
    for mount in ("unified", "systemd"):
        group = cgroups / mount / GROUP.lstrip("/")
        group.mkdir(parents=True)
        (group / "cgroup.procs").write_text("1718\n1720\n")
    for pid, times in {1718: (32, 8), 1720: (900, 100)}.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "stat").write_text(stat(pid, *times))
    return {"cgroup_root": str(cgroups), "proc_root": str(proc)}


def test_every_process_of_the_units_group_is_counted(run_module: Any, tree: dict[str, Any]) -> None:
    result, calls = run_module(
        service_cpu.main, {"units": ["sqlgate-gatekeeper.service"], **tree}, [(0, GROUP + "\n", "")]
    )
    assert not result["failed"] and result["changed"] is False
    assert calls[0].argv[1:] == ["show", "-p", "ControlGroup", "--value", "sqlgate-gatekeeper.service"]
    unit = result["units"]["sqlgate-gatekeeper.service"]
    assert unit["pids"] == [1718, 1720] and unit["cpu_ticks"] == 1040
    assert unit["cpu_seconds"] == pytest.approx(1040 / result["clock_ticks"])
    assert unit["cgroup_procs"] == f"{tree['cgroup_root']}/unified{GROUP}/cgroup.procs"


def test_it_reads_in_check_mode_too(run_module: Any, tree: dict[str, Any]) -> None:
    result, _ = run_module(
        service_cpu.main, {"units": ["sqlgate-gatekeeper.service"], **tree}, [(0, GROUP, "")], check_mode=True
    )
    assert result["units"]["sqlgate-gatekeeper.service"]["cpu_ticks"] == 1040


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((0, "\n", ""), "sqlgate-gatekeeper.service has no control group: it is not running"),
        ((0, "/system.slice/other.service\n", ""), "is in none of"),
        ((1, "", "Failed to connect to bus"), "systemctl show sqlgate-gatekeeper.service failed: Failed to connect"),
    ],
)
def test_a_unit_that_cannot_be_read_fails_with_a_sentence(
    run_module: Any, tree: dict[str, Any], answer: tuple[int, str, str], message: str
) -> None:
    result, _ = run_module(service_cpu.main, {"units": ["sqlgate-gatekeeper.service"], **tree}, [answer])
    assert result["failed"] and message in result["msg"]


def test_an_empty_group_fails(run_module: Any, tree: dict[str, Any]) -> None:
    for mount in ("unified", "systemd"):
        (Path(tree["cgroup_root"]) / mount / GROUP.lstrip("/") / "cgroup.procs").write_text("")
    result, _ = run_module(service_cpu.main, {"units": ["sqlgate-gatekeeper.service"], **tree}, [(0, GROUP, "")])
    assert result["failed"] and "no process in its control group" in result["msg"]


def test_without_systemctl_it_says_so(run_module: Any, tree: dict[str, Any]) -> None:
    result, _ = run_module(service_cpu.main, {"units": ["x.service"], **tree}, [], missing=("systemctl",))
    assert result["failed"] and "systemctl not found" in result["msg"]
