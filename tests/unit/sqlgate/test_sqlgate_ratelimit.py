# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The token bucket, with an injected clock."""

from __future__ import annotations

import pytest

from sqlgate.ratelimit import TokenBucket, retry_after_seconds


def test_a_full_bucket_grants_the_burst_then_refuses():
    bucket = TokenBucket.full(rate=1.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(1.0)


def test_tokens_refill_at_the_rate_up_to_the_burst():
    bucket = TokenBucket.full(rate=2.0, burst=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token: 0.25 s to go
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.tokens == pytest.approx(1.0)  # capped at the burst, minus the one taken


def test_a_refused_request_takes_nothing():
    bucket = TokenBucket.full(rate=1.0, burst=1, now=0.0)
    bucket.take(0.0)
    for _ in range(10):
        assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0


def test_a_clock_going_backwards_does_not_mint_tokens():
    bucket = TokenBucket.full(rate=1.0, burst=1, now=10.0)
    bucket.take(10.0)
    assert bucket.take(5.0) > 0


@pytest.mark.parametrize(('wait', 'header'), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (9.5, 10)])
def test_retry_after_is_whole_seconds_at_least_one(wait, header):
    assert retry_after_seconds(wait) == header
