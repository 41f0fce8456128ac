# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Prometheus text exposition format (version 0.0.4), written by hand: counters, gauges, histograms."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from math import isinf

CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
LabelValues = tuple[str, ...]
_LE_INF = 'le="+Inf"'
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _number(value: float) -> str:
    if isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: Sequence[str], values: Sequence[str], extra: str = '') -> str:
    parts = [f'{name}="{_escape(str(value))}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return '{' + ','.join(parts) + '}' if parts else ''


class _Metric:
    kind = 'untyped'

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def header(self) -> list[str]:
        return [f'# HELP {self.name} {self.help}', f'# TYPE {self.name} {self.kind}']

    def samples(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A counter incremented directly, or read at scrape time from a callback over existing counts."""

    kind = 'counter'

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        callback: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[LabelValues, float] = {}
        self.callback = callback

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def samples(self) -> Iterable[str]:
        items = list(self.callback()) if self.callback else sorted(self.values.items())
        if not items and not self.labelnames:
            items = [((), 0.0)]  # an unlabelled counter exists from the start
        for labels, value in items:
            yield f'{self.name}{_labels(self.labelnames, labels)} {_number(value)}'


class Gauge(_Metric):
    """A gauge set directly or read from a callback at scrape time."""

    kind = 'gauge'

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        callback: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[LabelValues, float] = {}
        self.callback = callback

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def samples(self) -> Iterable[str]:
        items = list(self.callback()) if self.callback else sorted(self.values.items())
        for labels, value in items:
            yield f'{self.name}{_labels(self.labelnames, labels)} {_number(value)}'


class Histogram(_Metric):
    kind = 'histogram'

    def __init__(
        self, name: str, help_text: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[LabelValues, list[float]] = {}  # bucket counts..., count, sum

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                series[index] += 1
        series[-2] += 1
        series[-1] += value

    def samples(self) -> Iterable[str]:
        for labels, series in sorted(self.series.items()):
            for index, bound in enumerate(self.buckets):
                le = f'le="{_number(bound)}"'
                yield f'{self.name}_bucket{_labels(self.labelnames, labels, le)} {_number(series[index])}'
            yield f'{self.name}_bucket{_labels(self.labelnames, labels, _LE_INF)} {_number(series[-2])}'
            yield f'{self.name}_count{_labels(self.labelnames, labels)} {_number(series[-2])}'
            yield f'{self.name}_sum{_labels(self.labelnames, labels)} {repr(series[-1])}'


def _resident_bytes() -> float:
    try:
        with open('/proc/self/statm', encoding='ascii') as statm:
            return float(int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE'))
    except (OSError, ValueError, IndexError):
        import resource

        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _open_fds() -> float:
    try:
        return float(len(os.listdir('/proc/self/fd')))
    except OSError:
        return 0.0


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []
        self.started = time.time()
        self.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.',
                   callback=lambda: [((), _resident_bytes())])
        self.gauge('process_open_fds', 'Number of open file descriptors.', callback=lambda: [((), _open_fds())])
        self.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch in seconds.',
                   callback=lambda: [((), self.started)])

    def add(self, metric: _Metric) -> _Metric:
        if any(existing.name == metric.name for existing in self.metrics):
            raise ValueError(f'metric {metric.name} registered twice')
        self.metrics.append(metric)
        return metric

    def counter(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        callback: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None,
    ) -> Counter:
        metric = Counter(name, help_text, labelnames, callback)
        self.add(metric)
        return metric

    def gauge(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        callback: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None,
    ) -> Gauge:
        metric = Gauge(name, help_text, labelnames, callback)
        self.add(metric)
        return metric

    def histogram(
        self, name: str, help_text: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        metric = Histogram(name, help_text, labelnames, buckets)
        self.add(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return '\n'.join(lines) + '\n'
