# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Will sysbench's tables fit in an NDB cluster's DataMemory? An estimate, before anything is created.

Pure functions; the module ``cloudpatterns.mysql.sysbench_ndb_fit`` runs them on the controller.

NDB keeps every row in memory (DataMemory) on every data node that holds a replica of it. With NoOfReplicas=R
and D data nodes there are D / R node groups, each holding 1 / (D / R) of the rows R times, so each data node
holds rows x R / D of them: with the topology's R = 3 and D = 3, every data node holds every row.

The bytes one sbtest row takes, from MySQL's NDB documentation (the Data Type Storage Requirements page, "NDB
table storage requirements", and the DataMemory entry of "Defining NDB Cluster Data Nodes"):

- columns, 4-byte aligned: ``id INT`` 4, ``k INT`` 4, ``c CHAR(120)`` and ``pad CHAR(60)`` stored at their full
  width in utf8mb4 (the SQL nodes' character-set-server), 4 bytes a character: 480 + 240;
- 16 bytes of record header;
- records in 32 KiB pages with 128 bytes of page header (0.4 %);
- an ordered index entry of about 10 bytes per row for each ordered index: the primary key's (NDB creates one
  beside the hash index unless the key is USING HASH) and sysbench's secondary index on k;
- the primary key's hash index, about 25 bytes per row plus the key (4 bytes): 29.

That is about 796 bytes a row, 759 MiB for the full profile's 1,000,000 rows on each of three data nodes.
HEADROOM adds a fifth for what the estimate leaves out: the copies of rows an UPDATE keeps until commit,
sakila's tables on the same nodes, fragmentation after deletes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

PAGE_BYTES = 32768
PAGE_HEADER_BYTES = 128
RECORD_HEADER_BYTES = 16
ORDERED_INDEX_BYTES = 10
HASH_INDEX_BYTES = 25
UTF8MB4_BYTES = 4
# The sbtest table of sysbench's oltp_common.lua: (name, bytes) of each column.
SBTEST_COLUMNS = (("id", 4), ("k", 4), ("c", 120 * UTF8MB4_BYTES), ("pad", 60 * UTF8MB4_BYTES))
SBTEST_ORDERED_INDEXES = 2
SBTEST_KEY_BYTES = 4
HEADROOM = 0.2
# DataMemory may take this share of a data node host's memory: the host also runs an SQL node (mysqld), the
# data node's other buffers and the system (roles/ndb_mgmd/defaults/main.yml keeps about half for them).
MEMORY_SHARE = 0.5
MIB = 1024 * 1024
# Memory of the EC2 instance types the collection sizes, in MiB, for when the hosts' facts are not at hand.
INSTANCE_MEMORY_MIB = {
    "t2.micro": 1024,
    "t3.micro": 1024,
    "t2.small": 2048,
    "t3.small": 2048,
    "t2.medium": 4096,
    "t3.medium": 4096,
    "t2.large": 8192,
    "t3.large": 8192,
    "m5.large": 8192,
    "m5.xlarge": 16384,
    "r5.large": 16384,
}


class NdbFitError(Exception):
    """The cluster's configuration cannot be read; the message says what is missing."""


def sbtest_row_bytes() -> int:
    """Bytes of DataMemory one sbtest row takes per replica (see the module docstring)."""
    record = sum(size for _, size in SBTEST_COLUMNS) + RECORD_HEADER_BYTES
    paged = record * PAGE_BYTES / (PAGE_BYTES - PAGE_HEADER_BYTES)
    indexes = SBTEST_ORDERED_INDEXES * ORDERED_INDEX_BYTES + HASH_INDEX_BYTES + SBTEST_KEY_BYTES
    return math.ceil(paged + indexes)


_UNITS = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB}


def _size_bytes(value: str, name: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)\s*", value, re.IGNORECASE)
    if not match:
        raise NdbFitError(f"{name}={value} in config.ini is not a size (a number with K, M or G)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def parse_config_ini(text: str) -> dict[str, Any]:
    """DataMemory (MiB), NoOfReplicas and the number of [ndbd] sections of an NDB config.ini.

    Settings in an [ndbd] section override [ndbd default]; the smallest DataMemory of any data node counts.
    """
    section = ""
    defaults: dict[str, str] = {}
    nodes: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", line)
        if header:
            section = header.group(1).lower()
            if section == "ndbd":
                nodes.append({})
            continue
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if section == "ndbd default":
            defaults[key.lower()] = value
        elif section == "ndbd":
            nodes[-1][key.lower()] = value
    if not nodes:
        raise NdbFitError("config.ini has no [ndbd] section: no data node is configured")
    memories = [_size_bytes(node.get("datamemory", defaults.get("datamemory", "98M")), "DataMemory") for node in nodes]
    replicas = int(defaults.get("noofreplicas", "2"))
    return {"data_memory_mib": min(memories) / MIB, "replicas": replicas, "data_nodes": len(nodes)}


def node_memory_mib(node: Mapping[str, Any], instance_memory: Mapping[str, int] | None = None) -> float | None:
    """A data node host's memory: its facts (memtotal_mb), else its instance type's, else None."""
    if node.get("memtotal_mb"):
        return float(node["memtotal_mb"])
    return (instance_memory or INSTANCE_MEMORY_MIB).get(str(node.get("instance_type") or ""))


def needed_mib_per_node(rows: int, replicas: int, data_nodes: int, row_bytes: int, headroom: float = HEADROOM) -> float:
    """DataMemory each data node needs for ``rows`` rows of ``row_bytes``, with ``headroom``."""
    if data_nodes < 1 or replicas < 1:
        raise NdbFitError(f"need at least one data node and one replica, got {data_nodes} and {replicas}")
    return rows * row_bytes * replicas / data_nodes / MIB * (1 + headroom)


def check_fit(
    rows: int,
    config: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    row_bytes: int | None = None,
    headroom: float = HEADROOM,
    memory_share: float = MEMORY_SHARE,
    instance_memory: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Whether ``rows`` sbtest rows fit the cluster; {fits, needed_mib_per_node, ..., problems}.

    ``config`` is parse_config_ini's result; ``nodes`` the data nodes, ``{name, memtotal_mb, instance_type}``.
    Two limits: the deployed DataMemory, and ``memory_share`` of the smallest data node host's memory (a
    larger DataMemory would not start, or would starve the SQL node beside it).
    """
    row_bytes = row_bytes or sbtest_row_bytes()
    needed = needed_mib_per_node(rows, config["replicas"], config["data_nodes"], row_bytes, headroom)
    memories = [(node.get("name"), node_memory_mib(node, instance_memory)) for node in nodes]
    known = [(name, memory) for name, memory in memories if memory]
    smallest = min(known, key=lambda item: item[1]) if known else (None, None)
    problems = []
    if needed > config["data_memory_mib"]:
        problems.append(
            f"DataMemory is {config['data_memory_mib']:,.0f} MiB per data node, but the tables need about "
            f"{needed:,.0f} MiB on each"
        )
    if smallest[1] is not None and needed > smallest[1] * memory_share:
        problems.append(
            f"data node {smallest[0]} has {smallest[1]:,.0f} MiB of memory, and DataMemory may take only "
            f"{memory_share:.0%} of it ({smallest[1] * memory_share:,.0f} MiB) beside the SQL node"
        )
    return {
        "fits": not problems,
        "rows": rows,
        "row_bytes": row_bytes,
        "headroom": headroom,
        "memory_share": memory_share,
        "replicas": config["replicas"],
        "data_nodes": config["data_nodes"],
        "data_memory_mib": config["data_memory_mib"],
        "needed_mib_per_node": round(needed, 1),
        "smallest_node": {"name": smallest[0], "memory_mib": smallest[1]},
        "unknown_memory": [name for name, memory in memories if not memory],
        "problems": problems,
    }


def largest_rows(config: Mapping[str, Any], row_bytes: int, headroom: float = HEADROOM) -> int:
    """The most rows the deployed DataMemory holds, by the same estimate."""
    per_row = row_bytes * config["replicas"] / config["data_nodes"] * (1 + headroom)
    return int(config["data_memory_mib"] * MIB // per_row)


def fit_message(fit: Mapping[str, Any], tables: int, table_size: int, config: Mapping[str, Any]) -> str:
    """The sentence that stops the benchmark: what does not fit, and the fixes."""
    most_rows = largest_rows(config, fit["row_bytes"], fit["headroom"])
    host_gib = math.ceil(fit["needed_mib_per_node"] / fit["memory_share"] / 1024)
    return (
        f"sysbench's {tables} table(s) of {table_size:,} rows do not fit the NDB cluster: "
        + "; ".join(fit["problems"])
        + f". The estimate: {fit['row_bytes']} bytes a row (docs/benchmark.md says where the figure comes from) x "
        f"{fit['replicas']} replicas / {fit['data_nodes']} data nodes, plus {fit['headroom']:.0%}. Nothing has been "
        "changed. Fix it with a smaller profile (-e benchmark_profile=quick, or at most "
        f"{most_rows:,} rows in all, tables x table_size, with this DataMemory), or give the data nodes at least "
        f"{host_gib} GiB of memory and a DataMemory of at least {math.ceil(fit['needed_mib_per_node'])} MiB each "
        "(a larger `size` for them in topology_nodes raises DataMemory through ndb_mgmd_data_memory_by_instance_type; "
        "the collection's AWS defaults, t3.medium data nodes with 1536 MiB, hold the full profile; or set "
        "ndb_mgmd_data_memory) and redeploy with playbooks/cluster.yml."
    )
