# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Several worker processes on one port (``SO_REUSEPORT``), under a supervisor that forks them.

The kernel spreads new connections over the workers. The supervisor (the unit's main process) serves
nothing: it forwards SIGTERM, SIGINT and SIGHUP to the workers, starts a worker again when one dies
(after its counts in the shared limits are cleared), and gives up, so that systemd restarts the unit,
when workers keep dying right after they start.

Each worker also serves its own metrics on a Unix socket in the runtime directory; ``/metrics`` on any
worker gathers every worker's and labels each sample with ``worker``, so one scrape sees them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from .web import SERVICE

RAPID_EXIT = 5.0  # seconds: a worker that dies sooner after its start counts as failing to start
MAX_RAPID_EXITS = 5
GATHER_TIMEOUT = 2.0
logger = logging.getLogger('sqlgate.workers')


def worker_count(setting: int | str) -> int:
    """``auto``: the CPUs this process may run on; else the number given."""
    if setting == 'auto':
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)
    return int(setting)


class Supervisor:
    """Forks ``count`` workers, each running ``start_worker(index)`` (its exit status), and keeps them up."""

    def __init__(self, count: int, start_worker: Callable[[int], int],
                 on_death: Callable[[int], None] | None = None) -> None:
        self.count = count
        self.start_worker = start_worker
        self.on_death = on_death
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, started)
        self.stopping = False
        self.rapid_exits = 0

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker listens for it
                code = self.start_worker(index)
            except BaseException:  # noqa: BLE001 - a worker must never return into the supervisor's loop
                logger.exception('worker %d failed', index)
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = (index, time.monotonic())

    def _forward(self, signum: int, frame: object = None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._forward)
        for index in range(self.count):
            self._spawn(index)
        logger.info('%d workers started', self.count)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in self.children:
                continue
            index, started = self.children.pop(pid)
            if self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            logger.error('worker %d (pid %d) ended with status %d; starting it again', index, pid, code)
            if self.on_death is not None:
                self.on_death(index)
            self.rapid_exits = self.rapid_exits + 1 if time.monotonic() - started < RAPID_EXIT else 0
            if self.rapid_exits >= MAX_RAPID_EXITS:
                logger.error('workers keep dying right after they start; stopping the service')
                self._forward(signal.SIGTERM)
                self._reap()
                return 1
            time.sleep(min(1.0, 0.1 * 2 ** self.rapid_exits))
            if not self.stopping:
                self._spawn(index)
        return 0

    def _reap(self) -> None:
        while self.children:
            try:
                pid, _ = os.wait()
            except ChildProcessError:
                return
            self.children.pop(pid, None)


# -- metrics of every worker -----------------------------------------------------------------------
def socket_path(directory: Path, index: int) -> Path:
    return directory / f'worker-{index}.sock'


def labelled(text: str, index: int) -> list[tuple[str, list[str]]]:
    """A rendered registry as (family header lines, samples with worker="index") per family."""
    families: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith('# HELP'):
            families.append(([line], []))
        elif line.startswith('#'):
            if families:
                families[-1][0].append(line)
        elif families:
            name, brace, rest = line.partition('{')
            if brace:
                separator = '' if rest.startswith('}') else ','
                sample = f'{name}{{worker="{index}"{separator}{rest}'
            else:
                metric, _, value = line.partition(' ')
                sample = f'{metric}{{worker="{index}"}} {value}'
            families[-1][1].append(sample)
    return [('\n'.join(header), samples) for header, samples in families]


def merge(renders: dict[int, str]) -> str:
    """One exposition with each family once, holding the samples of every worker."""
    order: list[str] = []
    samples: dict[str, list[str]] = {}
    for index in sorted(renders):
        for header, lines in labelled(renders[index], index):
            if header not in samples:
                order.append(header)
                samples[header] = []
            samples[header].extend(lines)
    return ''.join(f'{header}\n' + ''.join(f'{line}\n' for line in samples[header]) for header in order)


class WorkerMetrics:
    """This worker's registry on its Unix socket, and the gathering of all workers' for ``/metrics``."""

    def __init__(self, app: web.Application, index: int, count: int, directory: Path) -> None:
        self.app = app
        self.index = index
        self.count = count
        self.directory = directory
        self.runner: web.AppRunner | None = None

    async def start(self, app: web.Application) -> None:
        registry = self.app[SERVICE].registry

        async def local(request: web.Request) -> web.Response:
            return web.Response(text=registry.render())

        local_app = web.Application()
        local_app.router.add_get('/metrics', local)
        self.runner = web.AppRunner(local_app, access_log=None, handle_signals=False)
        await self.runner.setup()
        path = socket_path(self.directory, self.index)
        path.unlink(missing_ok=True)
        await web.UnixSite(self.runner, str(path)).start()
        os.chmod(path, 0o600)

    async def stop(self, app: web.Application) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _one(self, index: int) -> tuple[int, str | None]:
        if index == self.index:
            return index, self.app[SERVICE].registry.render()
        try:
            connector = aiohttp.UnixConnector(path=str(socket_path(self.directory, index)))
            timeout = aiohttp.ClientTimeout(total=GATHER_TIMEOUT)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, \
                    session.get('http://worker/metrics') as response:
                return index, await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return index, None  # a worker starting again: its samples are missing from this scrape

    async def gather(self) -> str:
        results = await asyncio.gather(*(self._one(index) for index in range(self.count)))
        return merge({index: text for index, text in results if text is not None})
