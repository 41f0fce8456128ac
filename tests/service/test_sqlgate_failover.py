# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Node health through the whole chain: ejection, re-admission, read retry, 503, latency routing.

Each node is a TCP relay in front of the one MariaDB (see sqlgate_support): 'refuse' stands for a
stopped node, 'blackhole' for a hung one, a delay for a slow one.
"""

from __future__ import annotations

import asyncio
import re

import pytest

pytestmark = pytest.mark.asyncio(loop_scope='session')
READ = 'SELECT first_name FROM actor WHERE actor_id = 1'


def metric(text: str, name: str) -> float:
    match = re.search(rf'^{re.escape(name)} (\S+)$', text, re.MULTILINE)
    assert match, f'{name} not in metrics'
    return float(match.group(1))


async def test_a_stopped_worker_is_ejected_then_readmitted(chain):
    chain.relays['worker1'].set_mode('refuse')
    await chain.wait_node('worker1', 'down')
    status, report = await chain.health()
    assert status == 200 and report['status'] == 'degraded'
    for _ in range(20):
        status, body, _ = await chain.query('random', READ)
        assert status == 200 and body['node'] == 'worker2', body
    metrics = await chain.metrics()
    assert metric(metrics, 'sqlgate_node_up{node="worker1",role="worker"}') == 0
    assert metric(metrics, 'sqlgate_node_ejections_total{node="worker1"}') == 1

    chain.relays['worker1'].set_mode('up')
    await chain.wait_node('worker1', 'up')
    seen = set()
    for _ in range(40):
        status, body, _ = await chain.query('random', READ)
        assert status == 200
        seen.add(body['node'])
    assert seen == {'worker1', 'worker2'}
    metrics = await chain.metrics()
    assert metric(metrics, 'sqlgate_node_up{node="worker1",role="worker"}') == 1
    assert metric(metrics, 'sqlgate_node_readmissions_total{node="worker1"}') == 1


async def test_a_failed_read_is_retried_once_on_another_node(chain_factory):
    # Probes are slow here, so the request finds the failure before any probe does.
    chain = await chain_factory(workers=1, proxy={'health': {'probe_interval': 30, 'failure_threshold': 1}})
    await chain.wait_probed()
    status, body, _ = await chain.query('random', READ)
    assert status == 200 and body['node'] == 'worker1'  # a pooled connection to worker1 now exists
    chain.relays['worker1'].set_mode('refuse')
    status, body, _ = await chain.query('random', READ)
    assert status == 200, body
    assert body['node'] == 'manager' and body['rows'] == [['PENELOPE']]
    metrics = await chain.metrics()
    assert metric(metrics, 'sqlgate_read_retries_total') == 1
    assert metric(metrics, 'sqlgate_queries_total{node="worker1",kind="read",outcome="node_failure"}') == 1
    _, report = await chain.health()
    assert {node['name']: node['state'] for node in report['nodes']}['worker1'] == 'down'


async def test_a_failed_write_is_not_retried(chain_factory):
    chain = await chain_factory(workers=1, proxy={'health': {'probe_interval': 30}})
    await chain.wait_probed()
    chain.relays['manager'].set_mode('refuse')
    status, body, _ = await chain.query('direct', "UPDATE actor SET last_name = 'X' WHERE actor_id = %s", [1])
    assert status == 502 and body['error']['code'] == 'node_failed'
    metrics = await chain.metrics()
    assert 'sqlgate_read_retries_total 0' in metrics
    assert 'node="worker1",kind="write"' not in metrics


async def test_writes_fail_fast_while_the_manager_is_down_and_reads_go_on(chain):
    chain.relays['manager'].set_mode('refuse')
    await chain.wait_node('manager', 'down')
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body, headers = await chain.query('direct', "INSERT INTO actor (first_name, last_name) VALUES ('A', 'B')")
    assert loop.time() - started < 1.0
    assert status == 503 and body['error']['code'] == 'no_healthy_node' and headers['Retry-After'] == '1'
    assert 'manager' not in body['error']['message']  # the gatekeeper says no more than that it is unavailable
    for route in ('direct', 'random', 'customized'):
        status, body, _ = await chain.query(route, READ)
        assert status == 200 and body['node'] in ('worker1', 'worker2'), (route, body)
    chain.relays['manager'].set_mode('up')
    await chain.wait_node('manager', 'up')
    status, body, _ = await chain.query('direct', READ)
    assert status == 200 and body['node'] == 'manager'


async def test_503_when_no_node_is_healthy(chain):
    for relay in chain.relays.values():
        relay.set_mode('refuse')
    for name in chain.relays:
        await chain.wait_node(name, 'down')
    for route in ('direct', 'random', 'customized'):
        status, body, headers = await chain.query(route, READ)
        assert status == 503 and body['error']['code'] == 'no_healthy_node', body
        assert body['request_id'] == headers['X-Request-Id']
    status, report = await chain.health()
    assert status == 503 and report['status'] == 'down'
    for relay in chain.relays.values():
        relay.set_mode('up')
    await chain.wait_probed()
    status, _, _ = await chain.query('random', READ)
    assert status == 200


async def test_a_hung_manager_times_out_with_504(chain_factory):
    chain = await chain_factory(workers=1, proxy={
        'health': {'probe_interval': 30},
        'database': {'connect_timeout': 0.5, 'read_timeout': 0.5, 'write_timeout': 0.5, 'statement_timeout': 0.4},
    })
    await chain.wait_probed()
    chain.relays['manager'].set_mode('blackhole')
    status, body, _ = await chain.query('direct', "UPDATE actor SET last_name = 'X' WHERE actor_id = %s", [1])
    assert status == 504 and body['error']['code'] == 'node_timeout', body
    status, body, _ = await chain.query('direct', READ)  # a read moves on to the worker
    assert status == 200 and body['node'] == 'worker1'


async def customized_node(chain) -> str:
    status, body, _ = await chain.query('customized', READ)
    assert status == 200, body
    return body['node']


async def settle_on(chain, expected: str, timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await customized_node(chain) != expected:
        assert asyncio.get_running_loop().time() < deadline, f'/customized never chose {expected}'
        await asyncio.sleep(0.1)
    for _ in range(5):
        assert await customized_node(chain) == expected


async def test_customized_reads_follow_the_lowest_latency(chain_factory):
    chain = await chain_factory(proxy={'health': {'probe_interval': 0.05, 'ewma_alpha': 0.5, 'hysteresis_ms': 20}})
    chain.relays['worker1'].set_delay(0.06)
    await settle_on(chain, 'worker2')
    chain.relays['worker1'].set_delay(0.0)
    chain.relays['worker2'].set_delay(0.003)  # now slower, but by less than the hysteresis margin
    await asyncio.sleep(1.0)
    for _ in range(5):
        assert await customized_node(chain) == 'worker2'
    chain.relays['worker2'].set_delay(0.08)  # now clearly slower
    await settle_on(chain, 'worker1')
    _, report = await chain.health()
    latency = {node['name']: node['latency_ms'] for node in report['nodes']}
    assert latency['worker2'] > latency['worker1'] + 20
