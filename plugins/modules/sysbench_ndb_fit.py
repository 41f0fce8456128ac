# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: sysbench_ndb_fit
short_description: Check that sysbench's tables fit in an NDB cluster's DataMemory before preparing them
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - Estimates the DataMemory each data node needs for O(tables) x O(table_size) rows of sysbench's C(sbtest)
    table (rows x bytes per row x NoOfReplicas / data nodes, plus O(headroom)) and compares it with the
    cluster's DataMemory, read from its C(config.ini), and with the memory of the data node hosts. Fails, before
    anything is created, with a sentence naming the problem and the fixes (a smaller profile, or a larger
    DataMemory or instance type).
  - The bytes per row (796 by default) come from MySQL's NDB storage documentation - the columns at full width
    in utf8mb4, a 16-byte record header, 32 KiB pages with 128 bytes of header, about 10 bytes per row for each
    of the two ordered indexes and 29 for the primary key's hash index; see docs/benchmark.md.
  - Pure computation; run it on the controller.
options:
  tables:
    description: Number of sysbench tables.
    type: int
    required: true
  table_size:
    description: Rows per table.
    type: int
    required: true
  config_ini:
    description:
      - The text of the cluster's C(config.ini), for example slurped from the management node. DataMemory and
        NoOfReplicas come from its C([ndbd default]) (an C([ndbd]) section may override DataMemory; the smallest
        counts), the number of data nodes from its C([ndbd]) sections.
    type: str
    required: true
  data_nodes:
    description:
      - The data node hosts, C({name, memtotal_mb, instance_type}). C(memtotal_mb) (the host's facts) wins; without
        it the instance type's memory is used; with neither the host's memory is not checked.
    type: list
    elements: dict
    default: []
  row_bytes:
    description: Bytes of DataMemory one row takes per replica; by default the estimate above.
    type: int
  headroom:
    description: Share added to the estimate for row copies during updates, other tables and fragmentation.
    type: float
    default: 0.2
  memory_share:
    description: Share of a data node host's memory DataMemory may take (the host also runs an SQL node).
    type: float
    default: 0.5
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Read the cluster's configuration
  ansible.builtin.slurp:
    src: /etc/mysql-cluster/config.ini
  register: __config
  delegate_to: manager

- name: Stop before preparing 1,000,000 rows that do not fit
  cloudpatterns.mysql.sysbench_ndb_fit:
    tables: 1
    table_size: 1000000
    config_ini: "{{ __config.content | b64decode }}"
    data_nodes:
      - {name: worker1, memtotal_mb: 3840, instance_type: t3.medium}
      - {name: worker2, instance_type: t3.medium}
      - {name: worker3, instance_type: t3.medium}
  delegate_to: localhost
"""

RETURN = r"""
fits:
  description: Whether the tables fit both limits.
  returned: always
  type: bool
needed_mib_per_node:
  description: The estimated DataMemory each data node needs, headroom included.
  returned: always
  type: float
  sample: 910.9
data_memory_mib:
  description: The deployed DataMemory per data node (the smallest).
  returned: always
  type: float
  sample: 96.0
replicas:
  description: NoOfReplicas.
  returned: always
  type: int
data_nodes:
  description: Number of data nodes in config.ini.
  returned: always
  type: int
row_bytes:
  description: Bytes per row the estimate used.
  returned: always
  type: int
  sample: 796
smallest_node:
  description: The data node host with the least memory, C({name, memory_mib}).
  returned: always
  type: dict
unknown_memory:
  description: Data nodes whose memory neither facts nor instance type tell.
  returned: always
  type: list
  elements: str
problems:
  description: What does not fit, one sentence each; empty when the tables fit.
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.sysbench_ndb import (
    NdbFitError,
    check_fit,
    fit_message,
    parse_config_ini,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "tables": {"type": "int", "required": True},
    "table_size": {"type": "int", "required": True},
    "config_ini": {"type": "str", "required": True},
    "data_nodes": {"type": "list", "elements": "dict", "default": []},
    "row_bytes": {"type": "int"},
    "headroom": {"type": "float", "default": 0.2},
    "memory_share": {"type": "float", "default": 0.5},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["tables"] < 1 or params["table_size"] < 1:
        module.fail_json(
            msg=f"tables and table_size must be at least 1, got {params['tables']} and {params['table_size']}"
        )
    if not 0 < params["memory_share"] <= 1 or params["headroom"] < 0:
        module.fail_json(msg="memory_share must be within 0..1 and headroom 0 or more")
    try:
        config = parse_config_ini(params["config_ini"])
        fit = check_fit(
            params["tables"] * params["table_size"],
            config,
            params["data_nodes"],
            row_bytes=params["row_bytes"],
            headroom=params["headroom"],
            memory_share=params["memory_share"],
        )
    except NdbFitError as error:
        module.fail_json(msg=f"cannot check whether sysbench's tables fit the NDB cluster: {error}")
    result = {key: value for key, value in fit.items() if key not in ("headroom", "memory_share", "rows")}
    if not fit["fits"]:
        module.fail_json(msg=fit_message(fit, params["tables"], params["table_size"], config), **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
