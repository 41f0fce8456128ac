# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Per-node health: a two-state machine fed by requests and probes, and a latency average."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal['up', 'down']


@dataclass
class NodeHealth:
    """``up`` until ``failure_threshold`` consecutive failures; ``down`` until a probe succeeds.

    Requests and probes both report failures (connection-level errors only: a syntax error says
    nothing about the node). Only a probe re-admits a node, since no request is sent to a node
    that is down.
    """

    failure_threshold: int
    state: State = 'up'
    consecutive_failures: int = 0
    ejections: int = 0
    readmissions: int = 0

    @property
    def healthy(self) -> bool:
        return self.state == 'up'

    def record_failure(self) -> bool:
        """Count a failure; True when it ejected the node."""
        self.consecutive_failures += 1
        if self.state == 'up' and self.consecutive_failures >= self.failure_threshold:
            self.state = 'down'
            self.ejections += 1
            return True
        return False

    def record_success(self, *, probe: bool) -> bool:
        """Count a success; True when it re-admitted the node."""
        self.consecutive_failures = 0
        if self.state == 'down' and probe:
            self.state = 'up'
            self.readmissions += 1
            return True
        return False


def ewma(previous: float | None, sample: float, alpha: float) -> float:
    """Exponentially weighted moving average; the first sample starts it."""
    if previous is None:
        return sample
    return alpha * sample + (1.0 - alpha) * previous
