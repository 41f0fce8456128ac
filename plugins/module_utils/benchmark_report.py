# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark report: results.json, report.md and the charts of a run of playbooks/benchmark.yml.

The data model (summaries, checks, comparisons) is ``benchmark_report_model``, the Markdown
``benchmark_report_markdown``, the charts ``benchmark_report_charts``; this module writes the files and
re-exports what callers use.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.benchmark_report_charts import write_charts
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.benchmark_report_markdown import render_markdown
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.benchmark_report_model import (
    ReportError,
    assemble,
    build_model,
    check_results,
    chain_goals,
    cpu_per_request_table,
    histogram_percentile,
    reference_comparison,
    report_timestamp,
    run_tier_cpu,
    summarize_http,
    summarize_http_run,
    summarize_oltp,
    throughput_ratios,
    writes_check,
)

__all__ = [
    "ReportError",
    "assemble",
    "build_model",
    "chain_goals",
    "check_results",
    "cpu_per_request_table",
    "histogram_percentile",
    "reference_comparison",
    "render_markdown",
    "report_timestamp",
    "run_tier_cpu",
    "summarize_http",
    "summarize_http_run",
    "summarize_oltp",
    "throughput_ratios",
    "write_charts",
    "write_report",
    "writes_check",
]


def write_report(report: dict[str, Any], root: str, charts: bool = True) -> dict[str, Any]:
    """Write <root>/<timestamp>/ with results.json, report.md and the charts; returns paths."""
    directory = os.path.join(root, report["timestamp"])
    os.makedirs(directory, exist_ok=False)
    report["charts"] = write_charts(report["model"], directory) if charts else []
    with open(os.path.join(directory, "results.json"), "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    with open(os.path.join(directory, "report.md"), "w") as handle:
        handle.write(render_markdown(report))
    files = ["results.json", "report.md", *report["charts"]]
    return {"directory": directory, "files": [os.path.join(directory, name) for name in files]}
