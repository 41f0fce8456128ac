# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark headlines of README.md and docs/benchmark.md are the committed report's figures
(docs/benchmark/results.json).

Regenerate the report (docs/benchmark.md says how), then write the sentence this test prints when it fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / 'docs' / 'benchmark' / 'results.json'


def _run(model: dict[str, Any], route: str, clients: int) -> dict[str, Any]:
    entry = next(e for e in model['http'] if e['route'] == route and e['workload'] == 'pk')
    return next(run for run in entry['runs'] if run['clients'] == clients)


def headline(results: dict[str, Any]) -> str:
    """The sentence the README carries, from results.json."""
    model = results['model']
    oltp = {target['id']: target for target in model['oltp']}
    levels = sorted({run['clients'] for entry in model['http'] for run in entry['runs']})
    low, high = levels[0], levels[-1]
    chain_low, database_low = _run(model, 'direct', low), _run(model, 'database', low)
    chain_high, database_high = _run(model, 'direct', high), _run(model, 'database', high)
    cpu = chain_high['cpu']
    tiers = ', '.join(f"{tier.replace('_', ' ')} {cpu[tier]['cpu_ms_per_request']:.2f}"
                      for tier in ('gatekeeper', 'trusted_host', 'sql_proxy'))
    return (
        f"oltp_read_write {oltp['standalone']['queries_per_sec']:,.0f} queries/s on the standalone server, "
        f"{oltp['cluster_one']['queries_per_sec']:,.0f} on the cluster through one SQL node; a primary-key read "
        f"through the chain takes {chain_low['latency_ms']['p50']:.2f} ms at p50 with {low} client "
        f"({database_low['latency_ms']['p50']:.2f} ms straight to the database); at {high} clients the chain "
        f"serves {chain_high['ok_per_sec']:,.0f} requests/s against the database's "
        f"{database_high['requests_per_sec']:,.0f}, with CPU per request (ms) of {tiers}."
    )


@pytest.mark.parametrize('page', ['README.md', 'docs/benchmark.md'])
def test_the_headlines_are_the_committed_reports_figures(page: str) -> None:
    results = json.loads(RESULTS.read_text(encoding='utf-8'))
    text = re.sub(r'\s+', ' ', (ROOT / page).read_text(encoding='utf-8'))
    expected = headline(results)
    assert expected in text, f'{page} should say, from {RESULTS.relative_to(ROOT)}:\n{expected}'
