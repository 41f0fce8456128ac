# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The connection pool with stand-in connections: bounds, timeouts, reuse and discard, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from sqlgate.db import NodeFailure, StatementFailure
from sqlgate.pool import NodePool, PoolExhausted, Slots

pytestmark = pytest.mark.asyncio


class FakeConnection:
    """What the pool asks of a connection (its statements run over wire.Connection, tested in tests/service)."""

    def __init__(self, number, reset_works=True):
        self.number = number
        self.open = True
        self.pings = 0
        self.resets = 0
        self.reset_works = reset_works
        self.answers = True  # False: the server is gone, though no packet said so (a cut network)
        self.session = {}  # what a request left behind (a user variable, say)

    def close(self):
        self.open = False

    async def ping(self, timeout):
        self.pings += 1
        if not self.answers:
            raise ConnectionError('timed out')

    def reset_then(self, done):
        """Like the wire: the reset's answers arrive later, on the loop."""
        def answered():
            if self.open and self.reset_works:
                self.resets += 1
                self.session.clear()
                done(True)
            else:
                self.close()
                done(False)
        asyncio.get_running_loop().call_soon(answered)


def make_pool(size=2, acquire_timeout=0.2, idle_check_after=60.0, reset_works=True):
    made = []

    async def connect():
        conn = FakeConnection(len(made), reset_works)
        made.append(conn)
        return conn

    return NodePool(connect, size, acquire_timeout, idle_check_after), made


def job(function):
    async def run(conn):
        return function(conn)
    return run


async def settle(pool):
    """Until every connection is back (the reset after a request runs once the answer is out)."""
    for _ in range(200):
        if pool.slots.free == pool.size:
            return
        await asyncio.sleep(0.005)
    raise AssertionError('the pool did not settle')


async def test_connections_are_reused():
    pool, made = make_pool()
    assert await pool.run(job(lambda conn: conn.number)) == 0
    await settle(pool)
    assert await pool.run(job(lambda conn: conn.number)) == 0
    await settle(pool)
    assert len(made) == 1 and len(pool.idle) == 1 and pool.in_use == 0


async def test_nothing_a_request_leaves_in_the_session_reaches_the_next():
    pool, made = make_pool(size=1)

    def leave_a_variable(conn):
        seen = dict(conn.session)
        conn.session['@secret'] = 'from the first key'
        return seen

    assert await pool.run(job(leave_a_variable)) == {}
    assert await pool.run(job(leave_a_variable)) == {}  # waits for the reset: the only slot is held until then
    await settle(pool)
    assert len(made) == 1 and made[0].resets == 2


async def test_a_connection_that_cannot_be_reset_is_dropped():
    pool, made = make_pool(reset_works=False)
    await pool.run(job(lambda conn: None))
    await settle(pool)
    assert not pool.idle and not made[0].open
    assert await pool.run(job(lambda conn: conn.number)) == 1


async def test_the_pool_is_bounded_and_times_out():
    pool, made = make_pool(size=2, acquire_timeout=0.1)
    release = asyncio.Event()
    holders = [asyncio.create_task(pool.run(lambda conn: release.wait())) for _ in range(2)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(PoolExhausted):
        await pool.run(job(lambda conn: None))
    assert 0.08 < time.monotonic() - started < 1.0
    assert pool.acquire_timeouts == 1
    release.set()
    await asyncio.gather(*holders)
    await settle(pool)
    assert len(made) == 2 and pool.slots.free == 2


async def test_a_waiter_gets_the_next_free_slot():
    pool, _ = make_pool(size=1, acquire_timeout=2.0)
    release = asyncio.Event()
    holder = asyncio.create_task(pool.run(lambda conn: release.wait()))
    await asyncio.sleep(0.02)
    waiter = asyncio.create_task(pool.run(job(lambda conn: 'served')))
    await asyncio.sleep(0.02)
    release.set()
    assert await waiter == 'served'
    await holder


async def test_statement_errors_keep_the_connection_others_discard_it():
    pool, made = make_pool()

    def sql_error(conn):
        raise StatementFailure(400, 'sql_error', 'syntax')

    with pytest.raises(StatementFailure):
        await pool.run(job(sql_error))
    await settle(pool)
    assert [conn.open for conn in made] == [True] and len(pool.idle) == 1 and made[0].resets == 1

    def broken_result(conn):
        raise StatementFailure(400, 'result_too_large', 'too many', keep_connection=False)

    with pytest.raises(StatementFailure):
        await pool.run(job(broken_result))
    assert [conn.open for conn in made] == [False] and not pool.idle

    def lost(conn):
        raise NodeFailure('lost')

    with pytest.raises(NodeFailure):
        await pool.run(job(lost))
    assert [conn.open for conn in made] == [False, False] and not pool.idle
    assert pool.in_use == 0 and pool.slots.free == 2


async def test_a_failing_connect_frees_the_slot():
    async def connect():
        raise NodeFailure('refused')

    pool = NodePool(connect, 1, 0.1, 60.0)
    for _ in range(3):
        with pytest.raises(NodeFailure):
            await pool.run(job(lambda conn: None))
    assert pool.slots.free == 1 and pool.in_use == 0


async def test_an_idle_connection_is_pinged_and_replaced_when_stale():
    pool, made = make_pool(idle_check_after=0.0)
    await pool.run(job(lambda conn: None))
    await settle(pool)
    made[0].answers = False  # the server vanished while it was idle
    assert await pool.run(job(lambda conn: conn.number)) == 1
    assert made[0].pings == 1 and not made[0].open
    await settle(pool)
    made[1].open = False  # the server closed it while idle: the wire knows, no ping needed
    assert await pool.run(job(lambda conn: conn.number)) == 2
    assert made[1].pings == 0


async def test_a_cancelled_caller_closes_its_connection_and_frees_the_slot():
    pool, made = make_pool(size=1)
    task = asyncio.create_task(pool.run(lambda conn: asyncio.sleep(5)))
    await asyncio.sleep(0.05)
    assert pool.slots.free == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # What the server was sending is unknown: the connection is closed, never handed to the next caller.
    assert pool.slots.free == 1 and not pool.idle and not made[0].open and pool.in_use == 0
    assert await pool.run(job(lambda conn: conn.number)) == 1


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
