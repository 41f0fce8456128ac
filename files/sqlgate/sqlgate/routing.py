# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Which node serves a request: pure functions over a snapshot of node health and latency.

* writes: the manager, once, or nobody (never fanned out: the cluster replicates);
* /direct reads: the manager; a worker when the manager is down or failed this request;
* /random reads: a random healthy worker, else the manager;
* /customized reads: the healthy worker with the lowest latency average, keeping the current choice
  unless another worker is faster by more than the hysteresis margin; else the manager.
``None`` means that no healthy node can serve: the caller answers 503.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Route = Literal['direct', 'random', 'customized']
ROUTES: tuple[Route, ...] = ('direct', 'random', 'customized')


@dataclass(frozen=True)
class NodeView:
    name: str
    role: Literal['manager', 'worker']
    healthy: bool
    latency: float | None  # seconds, moving average of probe round trips; None before the first


def choose_fastest(latencies: Mapping[str, float | None], current: str | None, margin: float) -> str | None:
    """The node with the lowest latency, with hysteresis around ``current``.

    Nodes without a measurement yet rank last; ties break by name, so the choice is deterministic.
    """
    if not latencies:
        return None
    ranked = sorted(latencies, key=lambda name: (latencies[name] is None, latencies[name] or 0.0, name))
    best = ranked[0]
    if current is None or current not in latencies or current == best:
        return best
    current_latency = latencies[current]
    best_latency = latencies[best]
    if current_latency is None or best_latency is None:
        return best if current_latency is None and best_latency is not None else current
    return best if best_latency + margin < current_latency else current


def choose_node(
    route: Route,
    kind: Literal['read', 'write'],
    nodes: Sequence[NodeView],
    *,
    exclude: Collection[str] = (),
    current_fastest: str | None = None,
    margin: float = 0.0,
    rng: random.Random | None = None,
) -> str | None:
    healthy = [node for node in nodes if node.healthy and node.name not in exclude]
    managers = [node.name for node in healthy if node.role == 'manager']
    workers = [node for node in healthy if node.role == 'worker']
    if kind == 'write':
        return managers[0] if managers else None
    if route == 'direct':
        if managers:
            return managers[0]
        return (rng or random).choice(workers).name if workers else None
    if not workers:
        return managers[0] if managers else None
    if route == 'random':
        return (rng or random).choice(workers).name
    return choose_fastest({node.name: node.latency for node in workers}, current_fastest, margin)
