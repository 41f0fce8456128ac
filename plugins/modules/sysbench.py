# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: sysbench
short_description: Run a sysbench OLTP benchmark against MySQL or MariaDB and return its figures
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - Runs C(sysbench <test> prepare|run|cleanup) on the target host with the MySQL driver and returns
    what sysbench printed as structured data (transactions and queries per second, latency, errors,
    reconnects, the per-interval series, the histogram), so benchmark results are data, not text.
  - Written for sysbench 1.0.20, the version in Debian 12 and Ubuntu 22.04/24.04 (package C(sysbench)).
  - The password never appears in the returned command line, in messages, or in the process list of
    the target host; it is handed to sysbench in a temporary file readable only by the user running
    the module (unless it contains whitespace, which sysbench's config-file reader cannot carry; then
    it is passed as an argument).
  - A failed run (sysbench C(FATAL:) lines, MySQL connection errors, client-library errors) fails the
    task with sysbench's own words in C(msg) and whatever was measured before in C(partial).
  - All C(oltp_*) tests share the tables C(sbtest1..sbtestN) in O(mysql_db); prepare them once, run
    any number of tests, then clean up.
options:
  test:
    description:
      - The sysbench test, for example C(oltp_read_write), C(oltp_read_only), C(oltp_point_select),
        C(oltp_write_only), or the path of a Lua script on the target host.
    type: str
    default: oltp_read_write
  command:
    description:
      - C(prepare) creates and fills the tables, C(run) runs the benchmark, C(cleanup) drops the tables.
      - All three report C(changed), since they change data (a run writes rows), unless
        O(skip_if_prepared) finds the tables already prepared.
    type: str
    choices: [prepare, run, cleanup]
    default: run
  mysql_host:
    description:
      - The MySQL servers. Several hosts are passed as C(--mysql-host=h1,h2,...); sysbench then spreads
        its connections (threads) over them round-robin, for example over all SQL nodes of a cluster.
    type: list
    elements: str
    default: [localhost]
    aliases: [mysql_hosts]
  mysql_port:
    description: TCP port of the servers.
    type: int
    default: 3306
  mysql_user:
    description: The database user sysbench connects as.
    type: str
    default: sbtest
  mysql_password:
    description: Password of O(mysql_user). Omit it for a user without password.
    type: str
  mysql_db:
    description: The database that holds the test tables; it must exist.
    type: str
    default: sbtest
  tables:
    description: Number of tables (C(sbtest1..sbtestN)).
    type: int
    default: 1
  table_size:
    description:
      - Rows per table. C(prepare) inserts this many; C(run) needs the same value, since it draws row
        ids from C(1..table_size).
    type: int
    default: 10000
  threads:
    description:
      - Client threads (connections) for C(run). C(prepare) fills up to this many tables in parallel.
    type: int
    default: 1
  time:
    description: Measured duration of C(run) in seconds, not counting O(warmup_time).
    type: int
    default: 10
  warmup_time:
    description:
      - Seconds of load before the measurement starts. sysbench 1.0.20 has no C(--warmup-time); the
        module runs for O(time) + O(warmup_time) seconds with C(--report-checkpoints=warmup_time),
        which reports and then resets all counters at the end of the warm-up. The returned figures
        cover only the measured O(time); the warm-up report is in RV(checkpoints).
    type: int
    default: 0
  report_interval:
    description:
      - Seconds between the interval reports returned in RV(intervals). C(0) disables them.
    type: int
    default: 1
  percentile:
    description:
      - The latency percentile sysbench computes (C(1..100)), for example C(95). C(0) disables it.
    type: int
    default: 95
  histogram:
    description: Return the latency histogram of the measured period in RV(histogram).
    type: bool
    default: false
  rand_type:
    description:
      - Distribution of the row ids the queries touch. sysbench's own default is C(special), which
        concentrates on a few hot rows; C(uniform) spreads the load evenly. Always passed, so the
        returned command line documents it.
    type: str
    choices: [uniform, gaussian, special, pareto]
    default: special
  db_ps_mode:
    description: C(auto) uses server-side prepared statements, C(disable) plain queries.
    type: str
    choices: [auto, disable]
    default: auto
  mysql_storage_engine:
    description:
      - Engine of the tables C(prepare) creates (sysbench's default is C(innodb)). Use C(ndbcluster)
        on MySQL NDB Cluster, otherwise the tables stay local to the SQL node that created them.
      - With O(skip_if_prepared), the existing tables must use this engine too.
    type: str
  auto_inc:
    description:
      - For the bundled C(oltp_*) tests. V(false) passes C(--auto_inc=off) to C(prepare) and C(run); prepare then
        creates the id column without AUTO_INCREMENT and inserts the ids 1..O(table_size) itself.
      - Use V(false) on Galera, whose C(wsrep_auto_increment_control) steps AUTO_INCREMENT ids by the cluster
        size, so that with the default most ids the run draws find no row and its updates and deletes change
        nothing. With O(skip_if_prepared), existing tables must then have the ids 1..O(table_size).
      - V(true) is sysbench's own default and passes nothing (Lua scripts of your own need not know the option).
    type: bool
    default: true
  ignore_errors:
    description:
      - MySQL error numbers after which C(run) rolls the transaction back and retries it, counting an ignored
        error (C(--mysql-ignore-errors)), or V([all]). This replaces sysbench's own list, C(1213,1020,1205),
        so repeat those. Unset, sysbench's own list applies.
    type: list
    elements: str
  forced_shutdown:
    description:
      - Seconds sysbench waits after the end of the run for its threads before it stops them (the run
        then fails). Worker threads of sysbench 1.0.20 can hang forever after a server restart or a
        killed connection; this bounds the run. C(0) waits forever.
    type: int
    default: 30
  skip_if_prepared:
    description:
      - For C(prepare) only. First checks, read-only and in check mode too, whether all O(tables)
        tables exist with O(table_size) rows (and O(mysql_storage_engine), when set). If so, nothing
        is done and C(changed) is false; if none exists, they are prepared; if only some exist or the
        row counts or engine differ, the task fails and says what it found (run C(cleanup) first).
      - Applies to the tables of the bundled C(oltp_*) tests.
    type: bool
    default: false
  extra_args:
    description:
      - More sysbench options, passed as they are before the command, for example
        C(--point_selects=5).
    type: list
    elements: str
    default: []
  executable:
    description: The sysbench program, a name looked up in the PATH or an absolute path.
    type: str
    default: sysbench
notes:
  - Install the Debian/Ubuntu package C(sysbench) on the target host first.
  - Use the task keyword C(timeout) as a last resort against a run that never ends.
  - The MySQL user needs C(CREATE), C(DROP), C(INDEX), C(SELECT), C(INSERT), C(UPDATE), C(DELETE) on
    O(mysql_db); O(skip_if_prepared) also reads C(information_schema.tables).
  - If sysbench's connection attempts fail too often, the server blocks the client host
    (C(max_connect_errors), MySQL error 1129) until C(FLUSH HOSTS).
seealso:
  - name: sysbench
    description: The sysbench project.
    link: https://github.com/akopytov/sysbench
attributes:
  check_mode:
    support: full
    details: C(run) and C(cleanup) are not run; C(prepare) with O(skip_if_prepared) checks the tables.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Prepare 10 tables of 1,000,000 rows once (skipped when they are there)
  cloudpatterns.mysql.sysbench:
    command: prepare
    mysql_host: [10.0.1.10]
    mysql_password: "{{ sysbench_password }}"
    tables: 10
    table_size: 1000000
    threads: 6
    skip_if_prepared: true
  no_log: false  # the password is masked by the module; set true if extra_args carry secrets

- name: oltp_read_write, 6 threads, 60 s after a 10 s warm-up, spread over all SQL nodes
  cloudpatterns.mysql.sysbench:
    command: run
    mysql_host: "{{ groups['ndb_sqlnode'] | map('extract', hostvars, 'ansible_host') | list }}"
    mysql_password: "{{ sysbench_password }}"
    tables: 10
    table_size: 1000000
    threads: 6
    time: 60
    warmup_time: 10
    report_interval: 1
    percentile: 95
    histogram: true
    rand_type: uniform
  register: __sysbench_run

- name: Show the headline figures
  ansible.builtin.debug:
    msg: >-
      {{ __sysbench_run.transactions.per_sec }} tps,
      {{ __sysbench_run.queries.per_sec }} qps,
      p{{ __sysbench_run.latency_ms.percentile }} {{ __sysbench_run.latency_ms.percentile_value }} ms

- name: Tables on MySQL NDB Cluster use the ndbcluster engine
  cloudpatterns.mysql.sysbench:
    command: prepare
    mysql_host: [10.0.1.11]
    mysql_password: "{{ sysbench_password }}"
    mysql_storage_engine: ndbcluster
    tables: 10
    table_size: 1000000

- name: Drop the tables
  cloudpatterns.mysql.sysbench:
    command: cleanup
    mysql_host: [10.0.1.10]
    mysql_password: "{{ sysbench_password }}"
    tables: 10
"""

RETURN = r"""
cmd:
  description: The sysbench command line, with every password shown as C(********).
  returned: always
  type: str
  sample: sysbench oltp_read_write --db-driver=mysql --mysql-host=10.0.1.10 --mysql-port=3306 ...
command:
  description: The sysbench command that was run (or would have been, in check mode).
  returned: always
  type: str
  sample: run
rc:
  description: Exit code of sysbench.
  returned: when sysbench ran
  type: int
stdout:
  description: What sysbench printed (stdout, then stderr), passwords masked.
  returned: when sysbench ran
  type: str
sysbench_version:
  description: The version sysbench printed in its banner.
  returned: when sysbench ran
  type: str
  sample: 1.0.20
mysql_hosts:
  description: The servers sysbench connected to.
  returned: always
  type: list
  elements: str
prepared_state:
  description: What O(skip_if_prepared) found before C(prepare).
  returned: when O(skip_if_prepared) is true and O(command=prepare)
  type: dict
  contains:
    verdict:
      description: C(prepared), C(absent) or C(mismatch).
      type: str
    reason:
      description: A sentence saying what was found.
      type: str
    tables:
      description:
        - C({name, engine, rows, min_id, max_id}) per table; all but C(name) are null for a missing one, and
          the ids for an empty one.
      type: list
      elements: dict
tables:
  description: C(prepare) only. The tables created, C({name, rows, secondary_index}).
  returned: when O(command=prepare) ran
  type: list
  elements: dict
rows_inserted:
  description: C(prepare) only. Rows inserted over all tables.
  returned: when O(command=prepare) ran
  type: int
tables_dropped:
  description: C(cleanup) only. Names of the tables dropped (sysbench drops them if they exist).
  returned: when O(command=cleanup) ran
  type: list
  elements: str
threads:
  description: Threads sysbench ran with.
  returned: when O(command=run) ran
  type: int
transactions:
  description: Transactions (events) completed in the measured period, and per second.
  returned: when O(command=run) ran
  type: dict
  contains:
    total:
      description: Count.
      type: int
    per_sec:
      description: Rate over the measured period.
      type: float
  sample: {total: 3085, per_sec: 615.85}
queries:
  description: Queries by kind; C(read + write + other == total) always holds.
  returned: when O(command=run) ran
  type: dict
  contains:
    read:
      description: SELECT statements.
      type: int
    write:
      description: INSERT, UPDATE and DELETE statements.
      type: int
    other:
      description: Other statements (BEGIN, COMMIT).
      type: int
    total:
      description: All statements.
      type: int
    per_sec:
      description: Statements per second.
      type: float
  sample: {read: 43190, write: 12340, other: 6170, total: 61700, per_sec: 12316.9}
ignored_errors:
  description:
    - Errors sysbench ignored and retried (those of O(ignore_errors); by default deadlocks and lock wait
      timeouts, 1213, 1020, 1205; on Galera, certification conflicts surface as 1213), and per second.
  returned: when O(command=run) ran
  type: dict
  sample: {total: 66, per_sec: 13.11}
reconnects:
  description: Reconnections after a lost connection, and per second.
  returned: when O(command=run) ran
  type: dict
  sample: {total: 0, per_sec: 0.0}
general:
  description: C(total_time_s) (the whole run, warm-up included) and C(total_events).
  returned: when O(command=run) ran
  type: dict
  sample: {total_time_s: 5.009, total_events: 3085}
measured_time_s:
  description: Seconds the returned rates cover (C(total_time_s) minus the warm-up).
  returned: when O(command=run) ran
  type: float
warmup_s:
  description: The warm-up requested, in seconds.
  returned: when O(command=run) ran
  type: int
latency_ms:
  description:
    - Latency of a transaction in milliseconds. C(percentile) is the percentile computed (for example
      95) and C(percentile_value) its value; both are null when O(percentile=0). C(sum) adds the
      latencies of all transactions.
  returned: when O(command=run) ran
  type: dict
  sample: {min: 1.44, avg: 9.73, max: 49.18, percentile: 95, percentile_value: 17.32, sum: 30022.63}
threads_fairness:
  description: C(events_avg), C(events_stddev), C(execution_time_avg_s), C(execution_time_stddev_s).
  returned: when O(command=run) ran
  type: dict
forced_shutdown_unfinished:
  description: Transactions cut off by O(forced_shutdown); null when it did not happen.
  returned: when O(command=run) ran
  type: int
intervals:
  description:
    - One entry per O(report_interval), warm-up included (flagged C(warmup=true)). Keys C(time_s),
      C(threads), C(tps), C(qps), C(reads_per_sec), C(writes_per_sec), C(other_per_sec),
      C(latency_percentile), C(latency_ms), C(errors_per_sec), C(reconnects_per_sec), C(warmup), and
      C(queue_length), C(concurrency) when C(--rate) is among O(extra_args).
  returned: when O(command=run) ran
  type: list
  elements: dict
  sample:
    - {time_s: 1, threads: 6, tps: 702.4, qps: 14118.0, reads_per_sec: 9889.59, writes_per_sec: 2817.6,
       other_per_sec: 1410.8, latency_percentile: 95, latency_ms: 14.73, errors_per_sec: 0.0,
       reconnects_per_sec: 0.0, warmup: false}
histogram:
  description: C({value_ms, count}) per histogram bucket of the measured period; empty unless O(histogram).
  returned: when O(command=run) ran
  type: list
  elements: dict
checkpoints:
  description:
    - Reports sysbench printed at C(--report-checkpoints), the warm-up first; each has the keys of the
      final report (C(transactions), C(queries), C(latency_ms), ...) plus C(time_s).
  returned: when O(command=run) ran
  type: list
  elements: dict
partial:
  description: On failure, what was parsed before sysbench gave up (for example the intervals).
  returned: on failure of a run
  type: dict
"""

import os
import tempfile
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cloudpatterns.mysql.plugins.module_utils.sysbench import (
    COMMANDS,
    DB_PS_MODES,
    PREPARED_STATE_LUA,
    RAND_TYPES,
    SysbenchError,
    SysbenchRunError,
    build_state_argv,
    build_sysbench_argv,
    classify_prepared_state,
    mark_warmup,
    mask_argv,
    parse_prepared_state,
    parse_sysbench_output,
    password_via_config_file,
    scrub,
    validate_params,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "test": {"type": "str", "default": "oltp_read_write"},
    "command": {"type": "str", "choices": list(COMMANDS), "default": "run"},
    "mysql_host": {
        "type": "list",
        "elements": "str",
        "default": ["localhost"],
        "aliases": ["mysql_hosts"],
    },
    "mysql_port": {"type": "int", "default": 3306},
    "mysql_user": {"type": "str", "default": "sbtest"},
    "mysql_password": {"type": "str", "no_log": True},
    "mysql_db": {"type": "str", "default": "sbtest"},
    "tables": {"type": "int", "default": 1},
    "table_size": {"type": "int", "default": 10000},
    "threads": {"type": "int", "default": 1},
    "time": {"type": "int", "default": 10},
    "warmup_time": {"type": "int", "default": 0},
    "report_interval": {"type": "int", "default": 1},
    "percentile": {"type": "int", "default": 95},
    "histogram": {"type": "bool", "default": False},
    "rand_type": {"type": "str", "choices": list(RAND_TYPES), "default": "special"},
    "db_ps_mode": {"type": "str", "choices": list(DB_PS_MODES), "default": "auto"},
    "mysql_storage_engine": {"type": "str"},
    "auto_inc": {"type": "bool", "default": True},
    "ignore_errors": {"type": "list", "elements": "str"},
    "forced_shutdown": {"type": "int", "default": 30},
    "skip_if_prepared": {"type": "bool", "default": False},
    "extra_args": {"type": "list", "elements": "str", "default": []},
    "executable": {"type": "str", "default": "sysbench"},
}


def _write_private(directory: str, suffix: str, text: str) -> str:
    """A new file only the current user can read (mkstemp creates it with mode 0600)."""
    descriptor, path = tempfile.mkstemp(dir=directory, suffix=suffix)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return path


def _execute(module: AnsibleModule, argv: list[str]) -> tuple[int, str]:
    """Run sysbench with the password in a private config file when it can travel that way."""
    kept, config_text = password_via_config_file(argv)
    if config_text is not None:
        config = _write_private(module.tmpdir, ".cfg", config_text)
        kept.insert(2, f"--config-file={config}")
    rc, out, err = module.run_command(kept)
    return rc, out + ("\n" + err if err else "")


def _check_prepared(module: AnsibleModule, executable: str, result: dict[str, Any]) -> str:
    params = module.params
    script = _write_private(module.tmpdir, ".lua", PREPARED_STATE_LUA)
    _rc, text = _execute(module, build_state_argv(params, script, executable))
    secrets = [params["mysql_password"]]
    try:
        states = parse_prepared_state(text)
    except SysbenchError as error:
        module.fail_json(
            msg=scrub(f"checking whether the tables are prepared: {error}", secrets),
            stdout=scrub(text, secrets),
            **result,
        )
    verdict, reason = classify_prepared_state(
        states, params["table_size"], params["mysql_storage_engine"], explicit_ids=not params["auto_inc"]
    )
    result["prepared_state"] = {"verdict": verdict, "reason": reason, "tables": states}
    if verdict == "mismatch":
        module.fail_json(
            msg=f"the sysbench tables exist but do not match the request ({reason}); "
            "run command=cleanup first, then prepare again",
            **result,
        )
    return verdict


def _fail_run(
    module: AnsibleModule,
    error: SysbenchError,
    rc: int,
    text: str,
    result: dict[str, Any],
) -> NoReturn:
    secrets = [module.params["mysql_password"]]
    partial = error.partial if isinstance(error, SysbenchRunError) else {}
    if "intervals" in partial:
        partial["intervals"] = mark_warmup(partial["intervals"], module.params["warmup_time"])
    module.fail_json(
        msg=scrub(str(error), secrets),
        rc=rc,
        stdout=scrub(text, secrets),
        partial=partial,
        **result,
    )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    problems = validate_params(params)
    if problems:
        module.fail_json(msg="; ".join(problems))

    executable = module.get_bin_path(params["executable"])
    if not executable:
        module.fail_json(
            msg=f"{params['executable']} not found on the target host; install the package "
            "'sysbench' (Debian, Ubuntu) or set executable"
        )
    argv = build_sysbench_argv(params, executable)
    command = params["command"]
    result: dict[str, Any] = {
        "changed": False,
        "cmd": mask_argv(argv),
        "command": command,
        "mysql_hosts": params["mysql_host"],
    }

    skip = command == "prepare" and params["skip_if_prepared"]
    if skip and _check_prepared(module, executable, result) == "prepared":
        module.exit_json(msg="the tables are already prepared; nothing to do", **result)

    result["changed"] = True
    if module.check_mode:
        module.exit_json(msg=f"check mode: sysbench {command} not run", **result)

    rc, text = _execute(module, argv)
    try:
        parsed = parse_sysbench_output(text, command)
    except SysbenchError as error:
        _fail_run(module, error, rc, text, result)
    if rc != 0:
        _fail_run(
            module,
            SysbenchRunError([f"sysbench exited with code {rc}"], parsed),
            rc,
            text,
            result,
        )
    if command == "run":
        parsed["intervals"] = mark_warmup(parsed["intervals"], params["warmup_time"])
        parsed["warmup_s"] = params["warmup_time"]
    result.update(parsed)
    result["rc"] = rc
    result["stdout"] = scrub(text, [params["mysql_password"]])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
