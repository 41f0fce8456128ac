# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Make ``ansible_collections.cloudpatterns.mysql`` importable from a plain clone.

``collections/ansible_collections/cloudpatterns/mysql`` links the repository root, so the unit tests
import the plugins by their collection path, as Ansible does.
"""

from __future__ import annotations

import sys
from pathlib import Path

_COLLECTIONS = str(Path(__file__).resolve().parents[2] / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
