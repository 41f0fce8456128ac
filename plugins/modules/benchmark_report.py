# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: benchmark_report
short_description: Write the benchmark report (results.json, report.md, PNG charts) on the controller
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - Turns the results playbooks/benchmark.yml collects on the bench host into a report directory
    C(<dest>/<UTC timestamp>/) with C(results.json) (every figure, the plan, the checks and the
    environment), C(report.md) (standalone and cluster side by side, the routes of the request path
    against the database, the goals of the request path, a comparison with the reference's published
    figures, the isolation levels of the engines, the environment) and PNG charts of throughput and
    latency percentiles.
  - Checks the figures hold together (queries = read + write + other, every figure positive, every
    planned phase present, percentiles ordered) and that each OLTP run did its workload's work - writes
    per transaction within 2 % of the test's (4 for C(oltp_read_write)), since sysbench does not count
    a write that changed no row - and returns what does not in RV(problems); the report shows them too.
    The task fails on them only with O(fail_on_problems).
  - Run it on the controller (a play on localhost, or C(delegate_to) localhost); the charts need
    matplotlib in the Python that runs the module.
options:
  dest:
    description: Directory under which the report directory is created, for example C(reports/).
    type: path
    required: true
  results:
    description:
      - One entry per phase, as the role cloudpatterns.mysql.sysbench collects them in C(sysbench_results)
        (C(kind=oltp) or C(kind=http)).
    type: list
    elements: dict
    required: true
  plan:
    description:
      - The phases that were planned (C({kind, id}) or C({kind, route, workload})); a planned phase
        without a result is a problem.
    type: list
    elements: dict
    default: []
  context:
    description:
      - Where and how it ran, copied into C(results.json) as C(environment) and shown in the report, for
        example C(target),
        C(project), C(cluster_engine), C(nodes), C(servers) (server variables per target), C(versions),
        C(profile), C(controller), C(started), C(finished).
    type: dict
    default: {}
  skipped:
    description: Sentences saying which targets were not measured and why.
    type: list
    elements: str
    default: []
  timestamp:
    description: Name of the report directory; by default the current UTC time, C(YYYYmmddTHHMMSSZ).
    type: str
  charts:
    description: Draw the PNG charts (needs matplotlib).
    type: bool
    default: true
  fail_on_problems:
    description: Fail the task, after writing the report, when a consistency check fails.
    type: bool
    default: false
notes:
  - Figures come from the modules cloudpatterns.mysql.sysbench and cloudpatterns.mysql.wrk. p50, p95 and
    p99 of sysbench runs are read from its latency histogram, so run them with C(histogram=true).
attributes:
  check_mode:
    support: full
    details: In check mode the report is assembled and checked but nothing is written.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Write the report on the controller
  cloudpatterns.mysql.benchmark_report:
    dest: "{{ playbook_dir }}/../reports"
    results: "{{ hostvars['bench1'].sysbench_results }}"
    plan: "{{ benchmark_plan }}"
    context:
      target: docker
      cluster_engine: galera
      profile: {name: quick}
  delegate_to: localhost
  register: __benchmark_report

- name: Say where it is
  ansible.builtin.debug:
    msg: "The report is in {{ __benchmark_report.report_dir }}/report.md"
"""

RETURN = r"""
report_dir:
  description: The report directory (not created in check mode).
  returned: always
  type: str
  sample: /home/me/cloudpatterns-mysql/reports/20260101T120000Z
files:
  description: Paths of the files written.
  returned: always
  type: list
  elements: str
problems:
  description: Sentences for every consistency check that failed; empty when the figures hold together.
  returned: always
  type: list
  elements: str
summary:
  description:
    - Headline figures, C({oltp, http, chain_goals}); C(oltp) maps each target to its transactions/s,
      queries/s and p95 latency, C(http) lists C({route, workload, clients, requests_per_sec, p50, p99,
      errors}).
  returned: always
  type: dict
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.benchmark_report import (
    ReportError,
    assemble,
    report_timestamp,
    write_report,
)

try:
    import matplotlib  # noqa: F401  (only its presence is checked here)

    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "dest": {"type": "path", "required": True},
    "results": {"type": "list", "elements": "dict", "required": True},
    "plan": {"type": "list", "elements": "dict", "default": []},
    "context": {"type": "dict", "default": {}},
    "skipped": {"type": "list", "elements": "str", "default": []},
    "timestamp": {"type": "str"},
    "charts": {"type": "bool", "default": True},
    "fail_on_problems": {"type": "bool", "default": False},
}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    model = report["model"]
    return {
        "oltp": {
            target["id"]: {
                "transactions_per_sec": target["transactions_per_sec"],
                "queries_per_sec": target["queries_per_sec"],
                "p95_ms": target["latency_ms"]["p95"],
            }
            for target in model["oltp"]
        },
        "http": [
            {
                "route": entry["route"],
                "workload": entry["workload"],
                "clients": run["clients"],
                "requests_per_sec": run["requests_per_sec"],
                "p50": run["latency_ms"]["p50"],
                "p99": run["latency_ms"]["p99"],
                "errors": run["errors"],
            }
            for entry in model["http"]
            for run in entry["runs"]
        ],
        "chain_goals": report["chain_goals"],
    }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["charts"] and not HAS_MATPLOTLIB:
        module.fail_json(
            msg=missing_required_lib("matplotlib", reason="to draw the charts (or set charts=false)")
            + " It is in requirements.txt: pip install -r requirements.txt."
        )
    timestamp = params["timestamp"] or report_timestamp()
    if "/" in timestamp or timestamp in ("", ".", ".."):
        module.fail_json(msg=f"timestamp must be a plain directory name, got {timestamp!r}")
    try:
        report = assemble(params["results"], params["plan"], params["context"], params["skipped"], timestamp)
    except ReportError as error:
        module.fail_json(msg=f"cannot build the report: {error}")
    directory = os.path.join(params["dest"], timestamp)
    result: dict[str, Any] = {
        "changed": not module.check_mode,
        "report_dir": directory,
        "files": [],
        "problems": report["problems"],
        "summary": _summary(report),
    }
    if not module.check_mode:
        if os.path.exists(directory):
            module.fail_json(msg=f"{directory} exists already; reports are never overwritten", **result)
        try:
            written = write_report(report, params["dest"], charts=params["charts"])
        except OSError as error:
            module.fail_json(msg=f"cannot write the report under {params['dest']}: {error}", **result)
        result["files"] = written["files"]
    if report["problems"] and params["fail_on_problems"]:
        module.fail_json(
            msg="the figures are inconsistent: " + "; ".join(report["problems"]) + f" (the report is in {directory})",
            **result,
        )
    for problem in report["problems"]:
        module.warn(problem)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
