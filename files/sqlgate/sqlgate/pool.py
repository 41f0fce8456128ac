# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""A bounded connection pool per node: slots are taken on the event loop, queries run in threads.

Waiting for a slot never occupies a thread, and the executor has one thread per slot, so a query
that holds a slot always has a thread. A caller that waits longer than ``acquire_timeout`` gets
``PoolExhausted`` (the proxy answers 503). A connection comes back to the pool only when the
statement failed in a way that leaves the session intact; otherwise it is closed.

Before a connection serves anyone again it is reset (``reset``: COM_RESET_CONNECTION and the session set
up again), so no user variable, temporary table or open transaction passes from one request to the next.
The reset runs in the same thread after the answer has been handed to the caller, while the slot is still
held: it costs the pool's capacity, not the request's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

import pymysql

from .db import StatementFailure, close_quietly, reset

T = TypeVar('T')
Connection = pymysql.connections.Connection


class PoolExhausted(Exception):
    pass


class Slots:
    """A FIFO counting semaphore with a timeout that cannot leak a slot on timeout or cancellation."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.waiters: deque[asyncio.Future[bool]] = deque()

    async def acquire(self, timeout: float) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self.waiters.append(waiter)
        timer = loop.call_later(timeout, lambda: waiter.done() or waiter.set_result(False))
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # granted just as we were cancelled: hand it on
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self.waiters.remove(waiter)

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.free += 1


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return  # the caller was cancelled
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class NodePool(Generic[T]):
    def __init__(
        self,
        connect: Callable[[], Connection],
        size: int,
        acquire_timeout: float,
        idle_check_after: float,
        executor: Executor,
        reset: Callable[[Connection], None] = reset,
    ) -> None:
        self.connect = connect
        self.reset = reset
        self.size = size
        self.acquire_timeout = acquire_timeout
        self.idle_check_after = idle_check_after
        self.executor = executor
        self.slots = Slots(size)
        self.idle: list[tuple[Connection, float]] = []
        self.in_use = 0
        self.acquire_timeouts = 0

    async def run(self, job: Callable[[Connection], T]) -> T:
        """Run ``job(connection)`` in a worker thread with a pooled connection.

        One thread hand-off a request: the thread hands the answer to the loop as soon as it has it, then
        resets the connection and gives it back to the pool itself.
        """
        if not await self.slots.acquire(self.acquire_timeout):
            self.acquire_timeouts += 1
            raise PoolExhausted(f'all {self.size} connections are busy')
        entry = self.idle.pop() if self.idle else None
        self.in_use += 1
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[T | None, StatementFailure | None]] = loop.create_future()
        try:
            self.executor.submit(self._work, loop, answer, entry, job)
        except BaseException:
            self._give_back(None)
            raise
        result, failure = await answer  # a cancelled caller leaves the thread to finish and give back
        if failure is not None:
            raise failure
        return result  # type: ignore[return-value]

    def _work(self, loop: asyncio.AbstractEventLoop, answer: asyncio.Future[tuple[T | None, StatementFailure | None]],
              entry: tuple[Connection, float] | None, job: Callable[[Connection], T]) -> None:
        """In a worker thread: the job, its answer to the loop, then the reset and the return to the pool."""
        try:
            result, failure, conn = self._call(entry, job)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            loop.call_soon_threadsafe(self._settle_after_giving_back, answer, None, exc)
            return
        if conn is None:  # nothing to reset: the slot is free before the caller hears back
            loop.call_soon_threadsafe(self._settle_after_giving_back, answer, (result, failure), None)
            return
        loop.call_soon_threadsafe(_settle, answer, (result, failure), None)
        loop.call_soon_threadsafe(self._give_back, self._reset(conn))

    def _settle_after_giving_back(self, answer: asyncio.Future[Any], result: object, error: BaseException | None
                                  ) -> None:
        self._give_back(None)
        _settle(answer, result, error)

    def _reset(self, conn: Connection) -> Connection | None:
        try:
            self.reset(conn)
        except Exception:  # noqa: BLE001 - a connection that cannot be reset is not reused
            close_quietly(conn)
            return None
        return conn

    def _give_back(self, conn: Connection | None) -> None:
        if conn is not None:
            self.idle.append((conn, time.monotonic()))
        self.in_use -= 1
        self.slots.release()

    def _call(
        self, entry: tuple[Connection, float] | None, job: Callable[[Connection], T]
    ) -> tuple[T | None, StatementFailure | None, Connection | None]:
        """In a worker thread: a live connection, the job, and whether the connection survives."""
        conn = None
        if entry is not None:
            conn, last_used = entry
            if time.monotonic() - last_used > self.idle_check_after:
                try:
                    conn.ping(reconnect=False)
                except Exception:  # noqa: BLE001 - a stale connection is replaced
                    close_quietly(conn)
                    conn = None
        if conn is None:
            conn = self.connect()
        try:
            return job(conn), None, conn
        except StatementFailure as failure:
            if failure.keep_connection and conn.open:
                return None, failure, conn
            close_quietly(conn)
            return None, failure, None
        except BaseException:
            close_quietly(conn)
            raise

    def close_idle(self) -> None:
        """Close the idle connections (blocking: call it from a thread)."""
        idle, self.idle = self.idle, []
        for conn, _ in idle:
            close_quietly(conn)
