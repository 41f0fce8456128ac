# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: wrk
short_description: Put HTTP load on an endpoint with wrk and return throughput, latency and errors
version_added: 0.1.0
author: cloudpatterns.mysql developers
description:
  - Runs C(wrk) on the target host with a Lua script that prints one C(CPM_WRK_RESULT {json}) line,
    normally the collection's C(files/wrk/post_json.lua), and returns that line as data (requests,
    requests per second, latency percentiles, socket errors and responses by status code).
  - >-
    C(post_json.lua) POSTs C({"query": ..., "params": [...]}) bodies, the client API of the
    gatekeeper and the proxy, with primary-key ids drawn at random, from a single query or from a
    file of requests it cycles through (for a read/write mix). See the header of the script for its
    settings; pass them with O(env) or O(script_args).
  - Written for wrk 4.1.0 (Debian 12 and Ubuntu package C(wrk)).
  - Fails when wrk cannot start (bad URL, refused connection, Lua error) and when no request
    completed. HTTP errors do not fail the task; they are counted in RV(status_codes) and
    RV(non_2xx).
options:
  url:
    description: The URL to load; its path is the route, for example C(http://10.0.2.10:3000/random).
    type: str
    required: true
  threads:
    description: wrk threads (each runs its share of the connections on one CPU core).
    type: int
    default: 2
  connections:
    description: Open HTTP connections (concurrent clients), at least O(threads).
    type: int
    default: 10
  duration:
    description: Seconds of load.
    type: int
    default: 10
  timeout:
    description: Seconds after which a request counts as a timeout.
    type: int
    default: 2
  script:
    description:
      - Path on the target host of the Lua script, for example a copy of C(files/wrk/post_json.lua).
      - One of O(script) and O(script_content) is required.
    type: path
  script_content:
    description:
      - The Lua script itself, written to a private temporary file on the target host, for example
        C("{{ lookup('ansible.builtin.file', 'files/wrk/post_json.lua') }}").
    type: str
  script_args:
    description:
      - Arguments for the script, passed after C(--), for example C([requests_file=/opt/mix.jsonl]).
      - They show in the process list of the target host; pass the API key with O(api_key) instead.
    type: list
    elements: str
    default: []
  env:
    description:
      - Settings for the script as environment variables; a key C(id_max) becomes C(WRK_ID_MAX)
        (keys already starting with C(WRK_) are kept).
    type: dict
    default: {}
  api_key:
    description: API key the script sends (as C(WRK_API_KEY); the header is C(X-API-Key) unless
      C(api_key_header) is set in O(env)). Never returned or logged.
    type: str
  executable:
    description: The wrk program, a name looked up in the PATH or an absolute path.
    type: str
    default: wrk
notes:
  - Install the package C(wrk) on the target host first.
  - Put the load client inside the deployment (the bench host); across the internet the figures
    measure the network more than the service.
  - The socket error counters of wrk count failed socket operations, not requests; after a server
    stops, C(write) errors run into the hundreds of thousands while wrk retries.
  - The task reports C(changed), since the requests may write (a read/write mix); set
    C(changed_when) to false for a read-only workload.
attributes:
  check_mode:
    support: full
    details: In check mode wrk is not run.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Copy the load script to the bench host
  ansible.builtin.copy:
    src: files/wrk/post_json.lua
    dest: /opt/cpm-bench/post_json.lua
    mode: "0644"

- name: Primary-key reads through /random with 16 concurrent clients for 30 s
  cloudpatterns.mysql.wrk:
    url: "http://{{ gatekeeper_address }}:3000/random"
    script: /opt/cpm-bench/post_json.lua
    threads: 2
    connections: 16
    duration: 30
    api_key: "{{ gatekeeper_api_key }}"
    env:
      id_max: 599
  register: __bench_random
  changed_when: false

- name: An 80/20 read/write mix from a request file
  cloudpatterns.mysql.wrk:
    url: "http://{{ gatekeeper_address }}:3000/direct"
    script: /opt/cpm-bench/post_json.lua
    script_args: [requests_file=/opt/cpm-bench/sakila_read_write_mix.jsonl]
    connections: 16
    duration: 30
    api_key: "{{ gatekeeper_api_key }}"

- name: Show the figures
  ansible.builtin.debug:
    msg: >-
      {{ __bench_random.requests_per_sec | round(1) }} req/s,
      p50 {{ __bench_random.latency_ms.p50 }} ms, p99 {{ __bench_random.latency_ms.p99 }} ms,
      {{ __bench_random.non_2xx }} non-2xx, {{ __bench_random.socket_errors }} socket errors
"""

RETURN = r"""
cmd:
  description: The wrk command line (secret script arguments masked).
  returned: always
  type: str
  sample: wrk --threads=2 --connections=16 --duration=30s --timeout=2s --script=/opt/cpm-bench/post_json.lua http://10.0.2.10:3000/random
rc:
  description: Exit code of wrk.
  returned: when wrk ran
  type: int
stdout:
  description: What wrk printed (stdout, then stderr).
  returned: when wrk ran
  type: str
url:
  description: The URL wrk loaded.
  returned: always
  type: str
threads:
  description: wrk threads.
  returned: when wrk ran
  type: int
connections:
  description: Open connections (concurrent clients).
  returned: when wrk ran
  type: int
requests:
  description: Requests that got a response, whatever its status (wrk does not count timeouts here).
  returned: when wrk ran
  type: int
  sample: 45503
ok_requests:
  description: Requests answered with a 2xx status (without status counts, those below 400).
  returned: when wrk ran
  type: int
duration_s:
  description: Measured duration in seconds.
  returned: when wrk ran
  type: float
  sample: 5.011
requests_per_sec:
  description: RV(requests) divided by RV(duration_s).
  returned: when wrk ran
  type: float
  sample: 9081.025
bytes:
  description: Bytes received.
  returned: when wrk ran
  type: int
latency_ms:
  description:
    - Latency in milliseconds of the requests answered within O(timeout) (C(min), C(mean), C(stdev),
      C(max), C(p50), C(p90), C(p95), C(p99)); null when none was.
  returned: when wrk ran
  type: dict
  sample: {min: 0.072, mean: 1.824, stdev: 2.365, max: 44.905, p50: 1.058, p90: 3.836, p95: 5.246, p99: 11.836}
errors:
  description:
    - wrk's error counters. C(connect), C(read), C(write), C(timeout) count socket events;
      C(status) counts responses with a status of 400 or more.
  returned: when wrk ran
  type: dict
  sample: {connect: 0, read: 0, write: 0, timeout: 0, status: 0}
socket_errors:
  description: C(connect + read + write + timeout).
  returned: when wrk ran
  type: int
status_codes:
  description: >-
    Responses by HTTP status, for example C({"200": 22765, "400": 11383}); null when the
    script ran with C(status_counts=0).
  returned: when wrk ran
  type: dict
non_2xx:
  description: Responses whose status is not 2xx; null without RV(status_codes).
  returned: when wrk ran
  type: int
"""

import os
import tempfile
from typing import Any, NoReturn

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cloudpatterns.mysql.plugins.module_utils.wrk import (
    WrkError,
    build_wrk_argv,
    mask_argv,
    parse_wrk_output,
    script_environment,
    validate_params,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True},
    "threads": {"type": "int", "default": 2},
    "connections": {"type": "int", "default": 10},
    "duration": {"type": "int", "default": 10},
    "timeout": {"type": "int", "default": 2},
    "script": {"type": "path"},
    "script_content": {"type": "str"},
    "script_args": {"type": "list", "elements": "str", "default": []},
    "env": {"type": "dict", "default": {}},
    "api_key": {"type": "str", "no_log": True},
    "executable": {"type": "str", "default": "wrk"},
}


def _script_path(module: AnsibleModule) -> str:
    if module.params["script"]:
        return module.params["script"]
    descriptor, path = tempfile.mkstemp(dir=module.tmpdir, suffix=".lua")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(module.params["script_content"])
    return path


def _fail(module: AnsibleModule, message: str, result: dict[str, Any], **extra: Any) -> NoReturn:
    module.fail_json(msg=message, **{**result, **extra})
    raise AssertionError("fail_json returned")  # for type checkers; fail_json exits


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("script", "script_content")],
        required_one_of=[("script", "script_content")],
        supports_check_mode=True,
    )
    params = module.params
    result: dict[str, Any] = {"changed": False, "url": params["url"]}
    problems = validate_params(params)
    if problems:
        _fail(module, "; ".join(problems), result)
    executable = module.get_bin_path(params["executable"])
    if not executable:
        _fail(
            module,
            f"{params['executable']} not found on the target host; install the package 'wrk' "
            "(Debian, Ubuntu) or set executable",
            result,
        )
    if params["script"] and not os.path.isfile(params["script"]):
        _fail(module, f"script {params['script']} does not exist on the target host", result)

    argv = build_wrk_argv(params, _script_path(module), executable)
    result["cmd"] = mask_argv(argv)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(msg="check mode: wrk not run", **result)

    rc, out, err = module.run_command(argv, environ_update=script_environment(params))
    text = out + ("\n" + err if err else "")
    try:
        parsed = parse_wrk_output(text)
    except WrkError as error:
        _fail(module, str(error), result, rc=rc, stdout=text)
    if rc != 0:
        _fail(module, f"wrk exited with code {rc}", result, rc=rc, stdout=text)
    if parsed["requests"] == 0:
        _fail(
            module,
            f"no request got a response in {parsed['duration_s']} s (errors: {parsed['errors']})",
            result,
            rc=rc,
            stdout=text,
            **parsed,
        )
    result.update(parsed)
    module.exit_json(rc=rc, stdout=text, **result)


if __name__ == "__main__":
    main()
