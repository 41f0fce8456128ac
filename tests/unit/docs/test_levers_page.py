# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""docs/benchmark/levers.md: the percentages its text states are those of its own table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PAGE = (ROOT / 'docs' / 'benchmark' / 'levers.md').read_text()


def rows() -> dict[str, list[float]]:
    """Each step's figures: requests/s, three CPU, p50, three CPU (the commit and workers are dropped)."""
    table = {}
    for line in PAGE.splitlines():
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if len(cells) == 11 and re.fullmatch(r'[0-9a-f]{7}', cells[1]):
            key = f'{cells[1]}/{cells[2]}'
            table[key] = [float(cell.replace(',', '')) for cell in cells[3:]]
    return table


def change(before: float, after: float) -> int:
    return round(abs(after - before) / before * 100)


def test_the_stated_changes_are_the_tables():
    table = rows()
    before, wire, pipelined, two = table['54efb6c/1'], table['dd7cf50/1'], table['8276174/1'], table['8276174/2']
    assert f'fell by {change(before[3], wire[3])} % at 16 clients and {change(before[7], wire[7])} % with one' in PAGE
    assert f'throughput rose by {change(before[0], wire[0])} %' in PAGE
    rises = [change(one, more) for one, more in zip(pipelined[1:4], two[1:4], strict=True)]
    assert f'rises by {min(rises)}-{max(rises)} %' in PAGE
    assert len(table) == 5
