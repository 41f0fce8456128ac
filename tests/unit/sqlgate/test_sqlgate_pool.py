# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The connection pool with fake connections: bounds, timeouts, reuse and discard, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sqlgate.db import NodeFailure, StatementFailure
from sqlgate.pool import NodePool, PoolExhausted, Slots

pytestmark = pytest.mark.asyncio


class FakeConnection:
    def __init__(self, number):
        self.number = number
        self.open = True
        self.pings = 0
        self.resets = 0
        self.session = {}  # what a request left behind (a user variable, say)

    def close(self):
        self.open = False

    def ping(self, reconnect=False):
        self.pings += 1
        if not self.open:
            raise ConnectionError('closed')


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def reset(conn):
    if not conn.open:
        raise ConnectionError('closed')
    conn.resets += 1
    conn.session.clear()


def make_pool(executor, size=2, acquire_timeout=0.2, idle_check_after=60.0, reset=reset):
    made = []

    def connect():
        conn = FakeConnection(len(made))
        made.append(conn)
        return conn

    return NodePool(connect, size, acquire_timeout, idle_check_after, executor, reset=reset), made


async def settle(pool):
    """Until every connection is back (the reset after a request runs once the answer is out)."""
    for _ in range(200):
        if pool.slots.free == pool.size:
            return
        await asyncio.sleep(0.005)
    raise AssertionError('the pool did not settle')


async def test_connections_are_reused(executor):
    pool, made = make_pool(executor)
    assert await pool.run(lambda conn: conn.number) == 0
    await settle(pool)
    assert await pool.run(lambda conn: conn.number) == 0
    await settle(pool)
    assert len(made) == 1 and len(pool.idle) == 1 and pool.in_use == 0


async def test_nothing_a_request_leaves_in_the_session_reaches_the_next(executor):
    pool, made = make_pool(executor, size=1)

    def leave_a_variable(conn):
        seen = dict(conn.session)
        conn.session['@secret'] = 'from the first key'
        return seen

    assert await pool.run(leave_a_variable) == {}
    assert await pool.run(leave_a_variable) == {}  # waits for the reset: the only slot is held until then
    await settle(pool)
    assert len(made) == 1 and made[0].resets == 2


async def test_a_connection_that_cannot_be_reset_is_dropped(executor):
    def broken_reset(conn):
        raise ConnectionError('gone')

    pool, made = make_pool(executor, reset=broken_reset)
    await pool.run(lambda conn: None)
    await settle(pool)
    assert not pool.idle and not made[0].open
    assert await pool.run(lambda conn: conn.number) == 1


async def test_the_pool_is_bounded_and_times_out(executor):
    pool, made = make_pool(executor, size=2, acquire_timeout=0.1)
    release = threading.Event()
    holders = [asyncio.create_task(pool.run(lambda conn: release.wait(5))) for _ in range(2)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(PoolExhausted):
        await pool.run(lambda conn: None)
    assert 0.08 < time.monotonic() - started < 1.0
    assert pool.acquire_timeouts == 1
    release.set()
    await asyncio.gather(*holders)
    await settle(pool)
    assert len(made) == 2 and pool.slots.free == 2


async def test_a_waiter_gets_the_next_free_slot(executor):
    pool, _ = make_pool(executor, size=1, acquire_timeout=2.0)
    release = threading.Event()
    holder = asyncio.create_task(pool.run(lambda conn: release.wait(5)))
    await asyncio.sleep(0.02)
    waiter = asyncio.create_task(pool.run(lambda conn: 'served'))
    await asyncio.sleep(0.02)
    release.set()
    assert await waiter == 'served'
    await holder


async def test_statement_errors_keep_the_connection_others_discard_it(executor):
    pool, made = make_pool(executor)

    def sql_error(conn):
        raise StatementFailure(400, 'sql_error', 'syntax')

    with pytest.raises(StatementFailure):
        await pool.run(sql_error)
    await settle(pool)
    assert [conn.open for conn in made] == [True] and len(pool.idle) == 1 and made[0].resets == 1

    def broken_result(conn):
        raise StatementFailure(400, 'result_too_large', 'too many', keep_connection=False)

    with pytest.raises(StatementFailure):
        await pool.run(broken_result)
    assert [conn.open for conn in made] == [False] and not pool.idle

    def lost(conn):
        raise NodeFailure('lost')

    with pytest.raises(NodeFailure):
        await pool.run(lost)
    assert [conn.open for conn in made] == [False, False] and not pool.idle
    assert pool.in_use == 0 and pool.slots.free == 2


async def test_a_failing_connect_frees_the_slot(executor):
    def connect():
        raise NodeFailure('refused')

    pool = NodePool(connect, 1, 0.1, 60.0, executor)
    for _ in range(3):
        with pytest.raises(NodeFailure):
            await pool.run(lambda conn: None)
    assert pool.slots.free == 1 and pool.in_use == 0


async def test_an_idle_connection_is_pinged_and_replaced_when_stale(executor):
    pool, made = make_pool(executor, idle_check_after=0.0)
    await pool.run(lambda conn: None)
    await settle(pool)
    made[0].open = False  # the server closed it while idle
    assert await pool.run(lambda conn: conn.number) == 1
    assert made[0].pings == 1


async def test_cancellation_returns_the_connection_when_the_job_ends(executor):
    pool, made = make_pool(executor, size=1)
    release = threading.Event()
    task = asyncio.create_task(pool.run(lambda conn: release.wait(5)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.slots.free == 0  # the thread still uses the connection
    release.set()
    for _ in range(100):
        if pool.slots.free == 1:
            break
        await asyncio.sleep(0.01)
    assert pool.slots.free == 1 and len(pool.idle) == 1 and made[0].open


async def test_slots_survive_cancelled_waiters():
    slots = Slots(1)
    assert await slots.acquire(1.0)
    waiter = asyncio.create_task(slots.acquire(5.0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()
    assert slots.free == 1 and not slots.waiters
    assert await slots.acquire(0.01)
    assert not await slots.acquire(0.01)
