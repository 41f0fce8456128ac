# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The workers' metrics merged into one exposition, and the worker count."""

from __future__ import annotations

import os

from sqlgate.metrics import Registry
from sqlgate.workers import merge, worker_count


def render(requests: float) -> str:
    registry = Registry()
    counter = registry.counter('sqlgate_other_total', 'Other.')
    for _ in range(int(requests)):
        counter.inc()
    registry.histogram('sqlgate_seconds', 'Time.', ('path',), buckets=(0.1,)).observe(0.05, '/direct')
    return registry.render()


def test_every_family_appears_once_with_the_samples_of_every_worker() -> None:
    merged = merge({0: render(2), 1: render(3)})
    assert merged.count('# TYPE sqlgate_other_total counter') == 1
    assert 'sqlgate_other_total{worker="0"} 2' in merged and 'sqlgate_other_total{worker="1"} 3' in merged
    assert 'sqlgate_seconds_bucket{worker="1",path="/direct",le="0.1"} 1' in merged
    lines = merged.splitlines()
    start = lines.index('# TYPE sqlgate_seconds histogram')
    family = lines[start + 1:]
    assert all(line.startswith('sqlgate_seconds_') for line in family), family  # the family stays together


def test_auto_is_the_cpus_this_process_may_use() -> None:
    assert worker_count('auto') == len(os.sched_getaffinity(0))
    assert worker_count(3) == 3
