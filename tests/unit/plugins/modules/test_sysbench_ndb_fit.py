# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The sysbench_ndb_fit module: it passes what fits and stops, with the fixes, what does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible_collections.cloudpatterns.mysql.plugins.modules import sysbench_ndb_fit

CONFIG_INI = (Path(__file__).parents[1] / "module_utils" / "fixtures" / "ndb" / "config.ini").read_text()
WORKERS = [{"name": f"worker{n}", "instance_type": "t2.micro"} for n in (1, 2, 3)]


def args(**extra: Any) -> dict[str, Any]:
    return {"tables": 1, "table_size": 10000, "config_ini": CONFIG_INI, "data_nodes": WORKERS, **extra}


def test_the_quick_profile_passes(run_module: Any) -> None:
    result, calls = run_module(sysbench_ndb_fit.main, args(), [])
    assert not result["failed"] and result["changed"] is False and calls == []
    assert result["fits"] is True and result["data_memory_mib"] == 96 and result["row_bytes"] == 796


def test_the_full_profile_stops_with_the_fixes(run_module: Any) -> None:
    result, _ = run_module(sysbench_ndb_fit.main, args(table_size=1_000_000), [], check_mode=True)
    assert result["failed"] and result["fits"] is False
    assert result["msg"].startswith("sysbench's 1 table(s) of 1,000,000 rows do not fit the NDB cluster")
    assert "-e benchmark_profile=quick" in result["msg"] and "t3.medium" in result["msg"]
    assert len(result["problems"]) == 2


def test_a_smaller_row_estimate_is_the_users_to_give(run_module: Any) -> None:
    result, _ = run_module(sysbench_ndb_fit.main, args(table_size=1_000_000, row_bytes=60, data_nodes=[]), [])
    assert not result["failed"] and result["needed_mib_per_node"] < 96


def test_bad_input_fails_with_a_sentence(run_module: Any) -> None:
    result, _ = run_module(sysbench_ndb_fit.main, args(config_ini="[ndbd default]\n"), [])
    assert result["failed"] and "no [ndbd] section" in result["msg"]
    result, _ = run_module(sysbench_ndb_fit.main, args(table_size=0), [])
    assert result["failed"] and "at least 1" in result["msg"]
