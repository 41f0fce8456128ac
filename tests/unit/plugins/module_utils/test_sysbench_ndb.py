# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Whether sysbench's tables fit an NDB cluster: the row estimate, config.ini, and the two limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.sysbench_ndb import (
    NdbFitError,
    check_fit,
    fit_message,
    largest_rows,
    needed_mib_per_node,
    node_memory_mib,
    parse_config_ini,
    sbtest_row_bytes,
)

# roles/ndb_mgmd/templates/config.ini.j2 as rendered for the topology's manager and three workers on t2.micro
# (shortened: fewer [ndbd default] settings, no [api] slots).
CONFIG_INI = (Path(__file__).parent / "fixtures" / "ndb" / "config.ini").read_text()
WORKERS = [{"name": f"worker{n}", "memtotal_mb": None, "instance_type": "t2.micro"} for n in (1, 2, 3)]


def config(data_memory: str = "96M") -> dict:
    return parse_config_ini(CONFIG_INI.replace("DataMemory=96M", f"DataMemory={data_memory}"))


def test_a_sbtest_row_takes_about_796_bytes() -> None:
    # 8 + 720 bytes of columns and 16 of header, in pages 0.4 % full of headers, plus 2 x 10 + 29 of indexes.
    assert sbtest_row_bytes() == 796


def test_the_deployed_config_ini_is_read() -> None:
    assert parse_config_ini(CONFIG_INI) == {"data_memory_mib": 96.0, "replicas": 3, "data_nodes": 3}
    assert config("1536M")["data_memory_mib"] == 1536
    assert config("2G")["data_memory_mib"] == 2048
    assert config("104857600")["data_memory_mib"] == 100


def test_a_data_node_section_may_lower_data_memory() -> None:
    text = CONFIG_INI.replace("NodeId=2\n", "NodeId=2\nDataMemory=64M # smaller\n")
    assert parse_config_ini(text)["data_memory_mib"] == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ndbd default]\nDataMemory=96M\n", r"no \[ndbd\] section"),
        (CONFIG_INI.replace("DataMemory=96M", "DataMemory=lots"), "DataMemory=lots in config.ini is not a size"),
    ],
)
def test_a_config_ini_that_cannot_be_read_says_why(text: str, message: str) -> None:
    with pytest.raises(NdbFitError, match=message):
        parse_config_ini(text)


def test_each_data_node_holds_rows_times_replicas_over_nodes() -> None:
    assert needed_mib_per_node(1_000_000, 3, 3, 796, headroom=0) == pytest.approx(759.1, abs=0.1)
    # Two node groups of two nodes: each node holds half of the rows, rows x 2 / 4.
    assert needed_mib_per_node(1_000_000, 2, 4, 796, headroom=0) == pytest.approx(759.1 / 2, abs=0.1)
    with pytest.raises(NdbFitError):
        needed_mib_per_node(1, 3, 0, 796)


def test_the_full_profile_does_not_fit_the_default_t2_micro_cluster() -> None:
    fit = check_fit(1_000_000, config(), WORKERS)
    assert fit["fits"] is False and fit["needed_mib_per_node"] == 910.9
    assert fit["problems"] == [
        "DataMemory is 96 MiB per data node, but the tables need about 911 MiB on each",
        "data node worker1 has 1,024 MiB of memory, and DataMemory may take only 50% of it (512 MiB) beside the "
        "SQL node",
    ]
    message = fit_message(fit, 1, 1_000_000, config())
    assert message.startswith("sysbench's 1 table(s) of 1,000,000 rows do not fit the NDB cluster: DataMemory is 96")
    for fix in ("-e benchmark_profile=quick", "at most 105,384 rows", "at least 2 GiB of memory", "911 MiB each"):
        assert fix in message
    assert "Nothing has been changed" in message


def test_the_quick_profile_fits_the_default_cluster() -> None:
    fit = check_fit(10_000, config(), WORKERS)
    assert fit["fits"] is True and fit["problems"] == [] and fit["needed_mib_per_node"] == 9.1


def test_the_aws_defaults_hold_the_full_profile() -> None:
    workers = [dict(worker, instance_type="t3.medium") for worker in WORKERS]
    assert check_fit(1_000_000, config("1536M"), workers)["fits"] is True


def test_a_large_data_memory_on_a_small_host_is_still_refused() -> None:
    fit = check_fit(1_000_000, config("2G"), [{"name": "worker1", "memtotal_mb": 1800}])
    assert fit["fits"] is False
    assert fit["problems"] == [
        "data node worker1 has 1,800 MiB of memory, and DataMemory may take only 50% of it (900 MiB) beside the "
        "SQL node"
    ]


def test_the_hosts_memory_comes_from_facts_then_the_instance_type() -> None:
    assert node_memory_mib({"memtotal_mb": 3840, "instance_type": "t3.micro"}) == 3840
    assert node_memory_mib({"instance_type": "t3.medium"}) == 4096
    assert node_memory_mib({"instance_type": "x9.huge"}) is None
    fit = check_fit(10_000, config(), [{"name": "worker1", "instance_type": "x9.huge"}])
    assert fit["fits"] is True and fit["unknown_memory"] == ["worker1"]


def test_largest_rows() -> None:
    assert largest_rows(config(), 796) == 105_384
    assert check_fit(105_384, config(), [])["fits"] is True
    assert check_fit(105_385, config(), [])["fits"] is False
