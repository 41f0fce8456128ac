# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The per-key limits shared by the gatekeeper's workers: token buckets with an injected clock, in-flight
counts that stay exact across forked processes, and a dead worker's counts cleared."""

from __future__ import annotations

import os

import pytest

from sqlgate.ratelimit import retry_after_seconds
from sqlgate.shared import SharedLimits, TableFull


def test_a_full_bucket_grants_the_burst_then_refuses():
    limits = SharedLimits()
    assert [limits.take('k', 1.0, 3, 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.take('k', 1.0, 3, 100.0) == pytest.approx(1.0)


def test_tokens_refill_at_the_rate_up_to_the_burst():
    limits = SharedLimits()
    limits.take('k', 2.0, 2, 0.0)
    limits.take('k', 2.0, 2, 0.0)
    assert limits.take('k', 2.0, 2, 0.25) == pytest.approx(0.25)  # half a token: 0.25 s to go
    assert limits.take('k', 2.0, 2, 0.5) == 0.0
    assert limits.take('k', 2.0, 2, 100.0) == 0.0
    assert limits.take('k', 2.0, 2, 100.0) == 0.0
    assert limits.take('k', 2.0, 2, 100.0) > 0  # capped at the burst


def test_a_refused_request_takes_nothing():
    limits = SharedLimits()
    limits.take('k', 1.0, 1, 0.0)
    for _ in range(10):
        assert limits.take('k', 1.0, 1, 0.5) == pytest.approx(0.5)
    assert limits.take('k', 1.0, 1, 1.0) == 0.0


def test_a_clock_going_backwards_does_not_mint_tokens():
    limits = SharedLimits()
    limits.take('k', 1.0, 1, 10.0)
    assert limits.take('k', 1.0, 1, 5.0) > 0


def test_keys_have_buckets_of_their_own_and_a_revoked_key_starts_full_again():
    limits = SharedLimits(slots=8)
    limits.take('a', 1.0, 1, 0.0)
    assert limits.take('a', 1.0, 1, 0.0) > 0
    assert limits.take('b', 1.0, 1, 0.0) == 0.0
    limits.forget('a')
    assert not limits.known('a')
    assert limits.take('a', 1.0, 1, 0.0) == 0.0


def test_in_flight_counts_per_key_and_in_all():
    limits = SharedLimits()
    assert limits.acquire('a', 2, 3) is None
    assert limits.acquire('a', 2, 3) is None
    assert limits.acquire('a', 2, 3) == 'key'
    assert limits.acquire('b', 2, 3) is None
    assert limits.acquire('c', 2, 3) == 'total'
    assert (limits.key_in_flight('a'), limits.in_flight()) == (2, 3)
    limits.release('a')
    assert limits.acquire('c', 2, 3) is None
    limits.forget('b')
    limits.release('b')  # revoked while in flight: only the total goes down
    assert limits.in_flight() == 2 and limits.key_in_flight('b') == 0


def test_a_full_table_says_so():
    limits = SharedLimits(slots=4)
    for name in 'abcd':
        limits.take(name, 1.0, 1, 0.0)
    with pytest.raises(TableFull):
        limits.take('e', 1.0, 1, 0.0)
    limits.forget('a')
    assert limits.take('e', 1.0, 1, 0.0) == 0.0  # a revoked key's slot is reused


def _in_child(limits: SharedLimits, worker: int, action) -> None:
    pid = os.fork()
    if pid == 0:  # the child: act as worker `worker`, then leave without cleanup
        try:
            limits.worker = worker
            action()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_limits_are_exact_across_processes_and_a_dead_workers_counts_are_cleared():
    limits = SharedLimits(workers=3)
    granted = [limits.take('k', 0.001, 5, 0.0)]

    def burst() -> None:
        for _ in range(3):
            limits.take('k', 0.001, 5, 0.0)
        limits.acquire('k', 4, 100)
        limits.acquire('k', 4, 100)

    _in_child(limits, 1, burst)  # 3 more tokens taken and 2 requests in flight, in another process
    granted.append(limits.take('k', 0.001, 5, 0.0))
    assert granted == [0.0, 0.0]
    assert limits.take('k', 0.001, 5, 0.0) > 0  # 5 taken in all: the burst is spent across processes
    assert limits.acquire('k', 4, 100) is None and limits.acquire('k', 4, 100) is None
    assert limits.acquire('k', 4, 100) == 'key'
    assert limits.key_in_flight('k') == 4 and limits.in_flight() == 4
    limits.clear_worker(1)  # worker 1 died with its two requests counted
    assert limits.key_in_flight('k') == 2 and limits.in_flight() == 2
    assert limits.acquire('k', 4, 100) is None


@pytest.mark.parametrize(('wait', 'header'), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (9.5, 10)])
def test_retry_after_is_whole_seconds_at_least_one(wait, header):
    assert retry_after_seconds(wait) == header
