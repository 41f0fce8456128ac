# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Routing choice, latency average with hysteresis, node health state machine."""

from __future__ import annotations

import random

import pytest

from sqlgate.health import NodeHealth, ewma
from sqlgate.routing import NodeView, choose_fastest, choose_node


def nodes(manager=True, w1=True, w2=True, l1=0.002, l2=0.001):
    return [
        NodeView('manager', 'manager', manager, 0.003),
        NodeView('worker1', 'worker', w1, l1),
        NodeView('worker2', 'worker', w2, l2),
    ]


@pytest.mark.parametrize('route', ['direct', 'random', 'customized'])
def test_writes_go_to_the_manager_only(route):
    assert choose_node(route, 'write', nodes()) == 'manager'
    assert choose_node(route, 'write', nodes(manager=False)) is None


def test_direct_reads_go_to_the_manager_and_fail_over_to_a_worker():
    assert choose_node('direct', 'read', nodes()) == 'manager'
    assert choose_node('direct', 'read', nodes(manager=False), rng=random.Random(1)) in ('worker1', 'worker2')
    assert choose_node('direct', 'read', nodes(), exclude={'manager'}, rng=random.Random(1)) in ('worker1', 'worker2')
    assert choose_node('direct', 'read', nodes(manager=False, w1=False, w2=False)) is None


def test_random_reads_spread_over_healthy_workers_only():
    rng = random.Random(7)
    seen = {choose_node('random', 'read', nodes(), rng=rng) for _ in range(200)}
    assert seen == {'worker1', 'worker2'}
    seen = {choose_node('random', 'read', nodes(w1=False), rng=rng) for _ in range(50)}
    assert seen == {'worker2'}


@pytest.mark.parametrize('route', ['random', 'customized'])
def test_reads_fall_back_to_the_manager_when_no_worker_is_healthy(route):
    assert choose_node(route, 'read', nodes(w1=False, w2=False)) == 'manager'
    assert choose_node(route, 'read', nodes(w2=False), exclude={'worker1'}) == 'manager'
    assert choose_node(route, 'read', nodes(manager=False, w1=False, w2=False)) is None


def test_customized_reads_go_to_the_fastest_worker():
    assert choose_node('customized', 'read', nodes(l1=0.002, l2=0.001)) == 'worker2'
    assert choose_node('customized', 'read', nodes(l1=0.001, l2=0.002)) == 'worker1'
    assert choose_node('customized', 'read', nodes(w1=False, l1=0.0001)) == 'worker2'
    assert choose_node('customized', 'read', nodes(), exclude={'worker2'}) == 'worker1'


def test_hysteresis_keeps_the_current_choice_unless_another_is_faster_by_the_margin():
    latencies = {'worker1': 0.0020, 'worker2': 0.0016}
    assert choose_fastest(latencies, current='worker1', margin=0.0005) == 'worker1'
    assert choose_fastest(latencies, current='worker1', margin=0.0003) == 'worker2'
    assert choose_fastest(latencies, current=None, margin=0.0005) == 'worker2'
    assert choose_fastest(latencies, current='gone', margin=0.0005) == 'worker2'
    assert choose_fastest({'worker1': 0.002, 'worker2': 0.002}, current='worker2', margin=0.0) == 'worker2'


def test_nodes_without_a_measurement_rank_last():
    assert choose_fastest({'worker1': None, 'worker2': 0.5}, current=None, margin=0.0) == 'worker2'
    assert choose_fastest({'worker1': None, 'worker2': 0.5}, current='worker1', margin=0.0) == 'worker2'
    assert choose_fastest({'worker1': 0.5, 'worker2': None}, current='worker1', margin=0.0) == 'worker1'
    assert choose_fastest({'b': None, 'a': None}, current=None, margin=0.0) == 'a'
    assert choose_fastest({}, current=None, margin=0.0) is None


def test_ewma_starts_with_the_first_sample_and_moves_by_alpha():
    assert ewma(None, 0.010, 0.3) == 0.010
    assert ewma(0.010, 0.020, 0.5) == pytest.approx(0.015)
    value = None
    for _ in range(50):
        value = ewma(value, 0.004, 0.3)
    assert value == pytest.approx(0.004)
    assert ewma(0.010, 0.020, 1.0) == 0.020


def test_a_latency_spike_does_not_flip_the_choice_at_once():
    w1 = w2 = None
    for _ in range(20):
        w1, w2 = ewma(w1, 0.0010, 0.3), ewma(w2, 0.0012, 0.3)
    current = choose_fastest({'worker1': w1, 'worker2': w2}, None, 0.0005)
    assert current == 'worker1'
    w1 = ewma(w1, 0.0020, 0.3)  # one slow probe
    assert choose_fastest({'worker1': w1, 'worker2': w2}, current, 0.0005) == 'worker1'
    for _ in range(20):
        w1 = ewma(w1, 0.0030, 0.3)  # a lasting slowdown
    assert choose_fastest({'worker1': w1, 'worker2': w2}, current, 0.0005) == 'worker2'


def test_a_node_is_ejected_after_n_consecutive_failures():
    health = NodeHealth(failure_threshold=3)
    assert health.healthy
    assert not health.record_failure()
    assert not health.record_failure()
    health.record_success(probe=False)  # a success resets the count
    assert not health.record_failure()
    assert not health.record_failure()
    assert health.record_failure()
    assert not health.healthy and health.state == 'down' and health.ejections == 1
    assert not health.record_failure()  # already down
    assert health.ejections == 1


def test_only_a_probe_readmits_a_node():
    health = NodeHealth(failure_threshold=1)
    health.record_failure()
    assert not health.record_success(probe=False)
    assert not health.healthy
    assert health.record_success(probe=True)
    assert health.healthy and health.readmissions == 1 and health.consecutive_failures == 0
