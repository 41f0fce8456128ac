# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""docs/security.md holds exactly what its generator makes of the committed figures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _generator():
    spec = importlib.util.spec_from_file_location('security_page', ROOT / 'tests' / 'e2e' / 'security_page.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_and_its_figures_agree():
    generator = _generator()
    data = json.loads(generator.FIGURES.read_text())
    assert set(data) == {'validator', 'lab'}, 'figures.json lacks a part: run measure and collect'
    assert generator.page_section(generator.PAGE.read_text()) == generator.render(data)


def test_the_committed_figures_show_the_property():
    data = json.loads(_generator().FIGURES.read_text())
    lab, validator = data['lab'], data['validator']
    assert lab['hostile_misses'] == 0 and lab['legitimate_misses'] == 0 and not lab['checksums_changed']
    assert lab['refused_before_the_database'] + lab['refused_by_the_database'] + lab['harmless'] == \
        lab['hostile_entries']
    assert all(mib < 256 for mib in lab['rss_mib_after_probes'].values())
    assert all(row['chars'] <= 8192 and row['max_ms'] <= 20 for row in validator['pathological'].values())


def test_a_changed_figure_is_noticed():
    generator = _generator()
    data = json.loads(generator.FIGURES.read_text())
    data['lab']['hostile_entries'] += 1
    assert generator.page_section(generator.PAGE.read_text()) != generator.render(data)
