# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The PNG charts of the benchmark report (matplotlib), from the data model of ``benchmark_report_model``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.benchmark_report_model import (
    PERCENTILES,
    WORKLOAD_LABELS,
)


_ROUTE_COLOURS = {"direct": "#1f77b4", "random": "#ff7f0e", "customized": "#2ca02c", "database": "#7f7f7f"}
_TARGET_COLOURS = {"standalone": "#4c72b0", "cluster_one": "#dd8452", "cluster_all": "#55a868"}


def _levels_axis(axis: Any, levels: Sequence[int]) -> None:
    """A log2 x axis labelled with the concurrency levels themselves."""
    axis.set_xscale("log", base=2)
    axis.set_xticks(list(levels), [str(level) for level in levels])
    axis.minorticks_off()
    axis.set_xlabel("concurrent clients")


def write_charts(model: Mapping[str, Any], directory: str) -> list[str]:
    """PNG charts of throughput and latency percentiles; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    written: list[str] = []

    def save(figure: Any, name: str) -> None:
        figure.tight_layout()
        figure.savefig(os.path.join(directory, name), dpi=110)
        pyplot.close(figure)
        written.append(name)

    targets = [t for t in model["oltp"] if t["queries_per_sec"]]
    if targets:
        labels = [t["label"].replace(" (", "\n(") for t in targets]
        figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
        for axis, key, title in (
            (axes[0], "transactions_per_sec", "transactions/s"),
            (axes[1], "queries_per_sec", "queries/s"),
        ):
            bars = axis.bar(labels, [t[key] for t in targets], color=[_TARGET_COLOURS.get(t["id"]) for t in targets])
            axis.bar_label(bars, fmt="%.0f")
            axis.set_title(f"oltp_read_write {title}")
            axis.tick_params(axis="x", labelsize=8)
        save(figure, "oltp_throughput.png")

        figure, axis = pyplot.subplots(figsize=(10, 4))
        keys = ["min", "p50", "avg", "p95", "p99", "max"]
        width = 0.8 / len(targets)
        for index, target in enumerate(targets):
            values = [target["latency_ms"].get(key) or 0 for key in keys]
            positions = [k + index * width for k in range(len(keys))]
            axis.bar(positions, values, width, label=target["label"], color=_TARGET_COLOURS.get(target["id"]))
        axis.set_xticks([k + width * (len(targets) - 1) / 2 for k in range(len(keys))], keys)
        axis.set_ylabel("ms per transaction")
        axis.set_yscale("log")
        axis.set_title("oltp_read_write latency")
        axis.legend(fontsize=8)
        save(figure, "oltp_latency.png")

        figure, axis = pyplot.subplots(figsize=(10, 4))
        for target in targets:
            points = [i for i in target["intervals"] if i["time_s"] is not None]
            axis.plot(
                [i["time_s"] for i in points],
                [i["tps"] for i in points],
                label=target["label"],
                color=_TARGET_COLOURS.get(target["id"]),
            )
        if any(t.get("warmup_s") for t in targets):
            axis.axvspan(0, max(t.get("warmup_s") or 0 for t in targets), color="#dddddd", label="warm-up")
        axis.set_xlabel("seconds")
        axis.set_ylabel("transactions/s")
        axis.set_title("oltp_read_write over time (interval reports)")
        axis.legend(fontsize=8)
        save(figure, "oltp_timeline.png")

    workloads = [w for w in ("pk", "mix") if any(e["workload"] == w for e in model["http"])]
    levels = sorted({run["clients"] for entry in model["http"] for run in entry["runs"] if run["clients"]})
    if workloads:
        figure, axes = pyplot.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), squeeze=False)
        for axis, workload in zip(axes[0], workloads, strict=True):
            for entry in (e for e in model["http"] if e["workload"] == workload):
                runs = entry["runs"]
                axis.plot(
                    [r["clients"] for r in runs],
                    [r["ok_per_sec"] or 0 for r in runs],
                    marker="o",
                    label=entry["label"],
                    color=_ROUTE_COLOURS.get(entry["route"]),
                )
            _levels_axis(axis, levels)
            axis.set_ylabel("successful requests/s")
            axis.set_title(WORKLOAD_LABELS[workload])
            axis.legend(fontsize=7)
        save(figure, "http_throughput.png")

        figure, axes = pyplot.subplots(len(workloads), 3, figsize=(13, 3.6 * len(workloads)), squeeze=False)
        for row, workload in enumerate(workloads):
            for column, percentile in enumerate(PERCENTILES):
                axis = axes[row][column]
                for entry in (e for e in model["http"] if e["workload"] == workload):
                    runs = entry["runs"]
                    axis.plot(
                        [r["clients"] for r in runs],
                        [r["latency_ms"][f"p{percentile}"] or 0 for r in runs],
                        marker="o",
                        label=entry["label"],
                        color=_ROUTE_COLOURS.get(entry["route"]),
                    )
                _levels_axis(axis, levels)
                axis.set_yscale("log")
                axis.set_ylabel("ms")
                axis.set_title(f"p{percentile}, {WORKLOAD_LABELS[workload]}", fontsize=9)
                if column == 0:
                    axis.legend(fontsize=7)
        save(figure, "http_latency.png")
    return written
