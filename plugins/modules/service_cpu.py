# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: service_cpu
short_description: Read the CPU time used so far by every process of systemd units
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - For each unit, finds its processes - every PID in the unit's control group (C(systemctl show -p
    ControlGroup), then that group's C(cgroup.procs)), so a unit that runs several worker processes is
    counted whole - and sums their user and system CPU time (utime + stime, fields 14 and 15 of
    C(/proc/<pid>/stat), divided by C(SC_CLK_TCK)).
  - Sample before and after a load and subtract to get the CPU the units spent on it; the benchmark does
    this around every HTTP level to get CPU per request of each tier.
  - Reads only; never changes anything.
options:
  units:
    description: The systemd units, for example C(sqlgate-gatekeeper.service).
    type: list
    elements: str
    required: true
  cgroup_root:
    description:
      - Where the cgroup file systems are mounted. The group is looked for there (cgroup v2), then under
        C(unified/) and C(systemd/) (hybrid and v1 hosts, such as Docker's cgroupfs driver).
    type: path
    default: /sys/fs/cgroup
  proc_root:
    description: Where procfs is mounted.
    type: path
    default: /proc
notes:
  - Run it with C(become) when the units run as other users; C(/proc/<pid>/stat) of another user's process
    is readable, but hardened units may hide it (C(ProtectProc=)).
  - The resolution is one clock tick (10 ms with C(SC_CLK_TCK=100)) per process and sample. A process that
    exits between two samples takes its CPU time with it; compare RV(units) C(pids) of the two samples.
attributes:
  check_mode:
    support: full
    details: It only reads, in check mode too.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: CPU of the gatekeeper before the load
  cloudpatterns.mysql.service_cpu:
    units: [sqlgate-gatekeeper.service]
  become: true
  register: __cpu_before

- name: The load
  cloudpatterns.mysql.wrk:
    url: http://10.0.5.2:3000/random
    script: /opt/cloudpatterns-bench/post_json.lua
    api_key: "{{ api_key }}"
  register: __load
  delegate_to: bench1

- name: CPU of the gatekeeper after the load
  cloudpatterns.mysql.service_cpu:
    units: [sqlgate-gatekeeper.service]
  become: true
  register: __cpu_after

- name: CPU per request
  ansible.builtin.debug:
    msg: >-
      {{ ((__cpu_after.units['sqlgate-gatekeeper.service'].cpu_seconds
           - __cpu_before.units['sqlgate-gatekeeper.service'].cpu_seconds) * 1000 / __load.requests) | round(3) }} ms
"""

RETURN = r"""
units:
  description: Per unit, what was read.
  returned: always
  type: dict
  contains:
    control_group:
      description: The unit's control group, as systemd names it.
      type: str
    cgroup_procs:
      description: The C(cgroup.procs) file the PIDs were read from.
      type: str
    pids:
      description: The processes whose CPU time was read, sorted.
      type: list
      elements: int
    vanished:
      description: Processes that exited between listing the group and reading their stat.
      type: list
      elements: int
    cpu_ticks:
      description: utime + stime over C(pids), in clock ticks.
      type: int
    cpu_seconds:
      description: C(cpu_ticks) divided by RV(clock_ticks).
      type: float
  sample:
    sqlgate-gatekeeper.service:
      control_group: /system.slice/sqlgate-gatekeeper.service
      cgroup_procs: /sys/fs/cgroup/system.slice/sqlgate-gatekeeper.service/cgroup.procs
      pids: [1093]
      vanished: []
      cpu_ticks: 5213
      cpu_seconds: 52.13
clock_ticks:
  description: C(SC_CLK_TCK), clock ticks per second.
  returned: always
  type: int
  sample: 100
sampled_at:
  description: Wall-clock time of the sample, seconds since the epoch.
  returned: always
  type: float
"""

import os
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.service_cpu import (
    ServiceCpuError,
    cgroup_procs_candidates,
    parse_control_group,
    parse_pids,
    unit_cpu,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "units": {"type": "list", "elements": "str", "required": True},
    "cgroup_root": {"type": "path", "default": "/sys/fs/cgroup"},
    "proc_root": {"type": "path", "default": "/proc"},
}


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _sample_unit(module: AnsibleModule, systemctl: str, unit: str, clock_ticks: int) -> dict[str, Any]:
    rc, out, err = module.run_command([systemctl, "show", "-p", "ControlGroup", "--value", unit])
    if rc != 0:
        raise ServiceCpuError(f"systemctl show {unit} failed: {(err or out).strip()}")
    group = parse_control_group(out)
    if not group:
        raise ServiceCpuError(f"{unit} has no control group: it is not running (systemctl status {unit})")
    candidates = cgroup_procs_candidates(group, module.params["cgroup_root"])
    for path in candidates:
        listed = _read(path)
        if listed is None:
            continue
        pids = parse_pids(listed)
        if not pids:
            raise ServiceCpuError(f"{unit} has no process in its control group ({path}): is it running?")
        stats = {pid: _read(os.path.join(module.params["proc_root"], str(pid), "stat")) for pid in pids}
        return {"control_group": group, "cgroup_procs": path, **unit_cpu(stats, clock_ticks)}
    raise ServiceCpuError(f"the control group of {unit} ({group}) is in none of {', '.join(candidates)}")


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        module.fail_json(msg="systemctl not found: service_cpu reads systemd units")
    clock_ticks = os.sysconf("SC_CLK_TCK")
    units: dict[str, Any] = {}
    for unit in module.params["units"]:
        try:
            units[unit] = _sample_unit(module, systemctl, unit, clock_ticks)
        except ServiceCpuError as error:
            module.fail_json(msg=str(error), units=units, clock_ticks=clock_ticks)
    module.exit_json(changed=False, units=units, clock_ticks=clock_ticks, sampled_at=round(time.time(), 3))


if __name__ == "__main__":
    main()
