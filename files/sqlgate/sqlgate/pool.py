# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""A bounded connection pool per node, on the event loop.

A caller that waits longer than ``acquire_timeout`` for a slot gets ``PoolExhausted`` (the proxy answers
503). A connection comes back to the pool only when the statement failed in a way that leaves the
session intact; otherwise it is closed. A cancelled caller closes its connection: what the server was
sending is unknown.

Before a connection serves anyone again it is reset (COM_RESET_CONNECTION and the session set up again),
so no user variable, temporary table or open transaction passes from one request to the next. The reset
is sent once the answer is in the caller's hands and its replies are read as they arrive, while the slot
is still held: it costs the pool's capacity, not the request's latency. Idle connections older than
``idle_check_after`` are pinged before use, and a dead one is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from .db import StatementFailure
from .wire import Connection

T = TypeVar('T')


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


class NodePool(Generic[T]):
    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        size: int,
        acquire_timeout: float,
        idle_check_after: float,
        ping_timeout: float = 1.0,
    ) -> None:
        self.connect = connect
        self.size = size
        self.acquire_timeout = acquire_timeout
        self.idle_check_after = idle_check_after
        self.ping_timeout = ping_timeout
        self.slots = Slots(size)
        self.idle: list[tuple[Connection, float]] = []
        self.in_use = 0
        self.acquire_timeouts = 0

    async def run(self, job: Callable[[Connection], Awaitable[T]]) -> T:
        """``await job(connection)`` with a pooled connection, which is reset and given back afterwards."""
        if not await self.slots.acquire(self.acquire_timeout):
            self.acquire_timeouts += 1
            raise PoolExhausted(f'all {self.size} connections are busy')
        self.in_use += 1
        conn = None
        try:
            conn = await self._ready()
            result = await job(conn)
        except StatementFailure as failure:
            if failure.keep_connection and conn is not None and conn.open:
                self._recycle(conn)
            else:
                self._drop(conn)
            raise
        except BaseException:
            self._drop(conn)
            raise
        self._recycle(conn)
        return result

    async def _ready(self) -> Connection:
        """A live idle connection (pinged when it has been idle long), else a new one."""
        while self.idle:
            conn, last_used = self.idle.pop()
            if not conn.open:
                continue
            if time.monotonic() - last_used > self.idle_check_after:
                try:
                    await conn.ping(self.ping_timeout)
                except Exception:  # noqa: BLE001 - a stale connection is replaced
                    conn.close()
                    continue
            return conn
        return await self.connect()

    def _recycle(self, conn: Connection) -> None:
        if conn.open:
            conn.reset_then(lambda ok: self._give_back(conn if ok else None))
        else:
            self._give_back(None)

    def _drop(self, conn: Connection | None) -> None:
        if conn is not None:
            conn.close()
        self._give_back(None)

    def _give_back(self, conn: Connection | None) -> None:
        if conn is not None:
            self.idle.append((conn, time.monotonic()))
        self.in_use -= 1
        self.slots.release()

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn, _ in idle:
            conn.close()
