# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The gatekeeper's per-key limits in memory shared by its worker processes, so they stay exact.

One anonymous shared mapping, made before the workers are forked, holds a table of API keys (by an
8-byte digest of the name, open addressing) with each key's token bucket and its requests in flight,
counted per worker, and the requests in flight of all keys, per worker. One lock (a process-shared
semaphore) guards it; a critical section is a few microseconds. Counting per worker makes a crash
harmless: the supervisor zeroes a dead worker's counts (``clear_worker``), so nothing it held stays
taken. With one worker it is the same structure in one process.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import multiprocessing
import struct

_EMPTY = 0
_GONE = 0xFFFFFFFFFFFFFFFF  # a revoked key's slot, reusable
_ENTRY = struct.Struct('!Qdd')  # digest, tokens, updated (NaN: a full bucket on first use)
_COUNT = struct.Struct('!i')


def _digest(name: str) -> int:
    value = int.from_bytes(hashlib.blake2b(name.encode('utf-8'), digest_size=8).digest(), 'big')
    return value if value not in (_EMPTY, _GONE) else 1


class TableFull(Exception):
    pass


class SharedLimits:
    """Token buckets and in-flight counts per API key, shared by ``workers`` processes."""

    def __init__(self, workers: int = 1, slots: int = 4096) -> None:
        self.workers = workers
        self.slots = slots
        self.worker = 0  # this process's column; each worker sets its own after the fork
        self.entry_size = _ENTRY.size + _COUNT.size * workers
        self.header_size = _COUNT.size * workers
        self.memory = mmap.mmap(-1, self.header_size + self.entry_size * slots)
        self.lock = multiprocessing.get_context('fork').Lock()
        # This process's memo of name -> (digest, slot): checked against the table under the lock before use.
        self.known_slots: dict[str, tuple[int, int]] = {}

    # -- the table -------------------------------------------------------------------------------
    def _offset(self, index: int) -> int:
        return self.header_size + index * self.entry_size

    def _find(self, name: str, insert: bool) -> int | None:
        """The slot of ``name`` (made when ``insert``); the caller holds the lock."""
        memo = self.known_slots.get(name)
        if memo is not None and _ENTRY.unpack_from(self.memory, self._offset(memo[1]))[0] == memo[0]:
            return memo[1]
        index = self._probe(name, insert)
        if index is not None:
            if len(self.known_slots) >= self.slots:
                self.known_slots.clear()
            self.known_slots[name] = (_ENTRY.unpack_from(self.memory, self._offset(index))[0], index)
        return index

    def _probe(self, name: str, insert: bool) -> int | None:
        digest = _digest(name)
        start = digest % self.slots
        reusable = None
        for step in range(self.slots):
            index = (start + step) % self.slots
            found = _ENTRY.unpack_from(self.memory, self._offset(index))[0]
            if found == digest:
                return index
            if found == _GONE and reusable is None:
                reusable = index
            if found == _EMPTY:
                if reusable is None:
                    reusable = index
                break
        if not insert:
            return None
        if reusable is None:
            raise TableFull(f'more than {self.slots} API keys')
        offset = self._offset(reusable)
        _ENTRY.pack_into(self.memory, offset, digest, 0.0, math.nan)
        self.memory[offset + _ENTRY.size:offset + self.entry_size] = bytes(self.entry_size - _ENTRY.size)
        return reusable

    def _counts(self, offset: int) -> list[int]:
        return [_COUNT.unpack_from(self.memory, offset + i * _COUNT.size)[0] for i in range(self.workers)]

    def _add(self, offset: int, delta: int) -> None:
        at = offset + self.worker * _COUNT.size
        value = _COUNT.unpack_from(self.memory, at)[0] + delta
        _COUNT.pack_into(self.memory, at, max(0, value))

    # -- what the gatekeeper asks ----------------------------------------------------------------
    def take(self, name: str, rate: float, burst: float, now: float) -> float:
        """One token of ``name``'s bucket: 0.0 when granted, else the seconds until one is there."""
        with self.lock:
            offset = self._offset(self._find(name, insert=True))  # type: ignore[arg-type]
            digest, tokens, updated = _ENTRY.unpack_from(self.memory, offset)
            if math.isnan(updated):
                tokens, updated = burst, now
            elif now > updated:
                tokens, updated = min(burst, tokens + (now - updated) * rate), now
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            _ENTRY.pack_into(self.memory, offset, digest, tokens, updated)
            return wait

    def acquire(self, name: str, key_limit: int, total_limit: int) -> str | None:
        """Count one request of ``name`` in flight; None, or what is full: 'key' or 'total'."""
        with self.lock:
            offset = self._offset(self._find(name, insert=True))  # type: ignore[arg-type]
            if sum(self._counts(offset + _ENTRY.size)) >= key_limit:
                return 'key'
            if sum(self._counts(0)) >= total_limit:
                return 'total'
            self._add(offset + _ENTRY.size, 1)
            self._add(0, 1)
            return None

    def release(self, name: str) -> None:
        with self.lock:
            self._add(0, -1)
            index = self._find(name, insert=False)
            if index is not None:  # else revoked meanwhile: its counts are gone
                self._add(self._offset(index) + _ENTRY.size, -1)

    def forget(self, name: str) -> None:
        """A revoked key: its bucket and counts are dropped (a key added again starts full)."""
        with self.lock:
            index = self._find(name, insert=False)
            if index is not None:
                offset = self._offset(index)
                _ENTRY.pack_into(self.memory, offset, _GONE, 0.0, math.nan)
                self.memory[offset + _ENTRY.size:offset + self.entry_size] = bytes(self.entry_size - _ENTRY.size)

    def clear_worker(self, worker: int) -> None:
        """Zero the counts of a worker that died (the supervisor calls it before starting another)."""
        with self.lock:
            _COUNT.pack_into(self.memory, worker * _COUNT.size, 0)
            for index in range(self.slots):
                offset = self._offset(index)
                if _ENTRY.unpack_from(self.memory, offset)[0] not in (_EMPTY, _GONE):
                    _COUNT.pack_into(self.memory, offset + _ENTRY.size + worker * _COUNT.size, 0)

    # -- for metrics and tests -------------------------------------------------------------------
    def in_flight(self) -> int:
        with self.lock:
            return sum(self._counts(0))

    def key_in_flight(self, name: str) -> int:
        with self.lock:
            index = self._find(name, insert=False)
            return 0 if index is None else sum(self._counts(self._offset(index) + _ENTRY.size))

    def known(self, name: str) -> bool:
        with self.lock:
            return self._find(name, insert=False) is not None
