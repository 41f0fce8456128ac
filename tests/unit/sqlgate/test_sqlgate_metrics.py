# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The hand-written Prometheus text format."""

from __future__ import annotations

import re

from sqlgate.metrics import Registry

_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? -?[0-9.e+Inf-]+$')


def test_every_line_is_a_comment_or_a_valid_sample():
    registry = Registry()
    counter = registry.counter('sqlgate_things_total', 'Things.', ('path', 'status'))
    counter.inc('/direct', '200')
    counter.inc('/direct', '200')
    counter.inc('we"ird\\path\n', '404')
    registry.gauge('sqlgate_level', 'Level.', callback=lambda: [((), 0.25)])
    histogram = registry.histogram('sqlgate_seconds', 'Time.', ('path',), buckets=(0.1, 1.0))
    histogram.observe(0.05, '/x')
    histogram.observe(0.5, '/x')
    histogram.observe(5.0, '/x')
    text = registry.render()
    assert text.endswith('\n')
    for line in text.splitlines():
        assert line.startswith('# HELP ') or line.startswith('# TYPE ') or _SAMPLE.match(line), line
    assert 'sqlgate_things_total{path="/direct",status="200"} 2' in text
    assert 'sqlgate_things_total{path="we\\"ird\\\\path\\n",status="404"} 1' in text
    assert 'sqlgate_seconds_bucket{path="/x",le="0.1"} 1' in text
    assert 'sqlgate_seconds_bucket{path="/x",le="1"} 2' in text
    assert 'sqlgate_seconds_bucket{path="/x",le="+Inf"} 3' in text
    assert 'sqlgate_seconds_count{path="/x"} 3' in text
    assert 'sqlgate_seconds_sum{path="/x"} 5.55' in text
    assert '# TYPE sqlgate_seconds histogram' in text
    assert 'sqlgate_level 0.25' in text
    assert re.search(r'^process_resident_memory_bytes \d+$', text, re.M)


def test_a_name_registers_once():
    registry = Registry()
    registry.counter('a_total', 'A.')
    try:
        registry.gauge('a_total', 'A again.')
    except ValueError:
        return
    raise AssertionError('a duplicate metric name was accepted')
