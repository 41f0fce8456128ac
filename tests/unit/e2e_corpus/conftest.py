# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Make the sqlgate package and the e2e corpora module importable without installing anything."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[3]
# The sqlgate package, and tests/e2e/corpus.py (the corpora and the request each entry makes; no lab needed).
for _path in (str(_ROOT / 'files' / 'sqlgate'), str(_ROOT / 'tests' / 'e2e')):
    if _path not in sys.path:
        sys.path.insert(0, _path)
