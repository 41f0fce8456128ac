# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Load the collection through Ansible's collection loader, as ansible-test's pytest plugin does.

The inventory tests load the plugin by its name (inventory_loader.get), which needs the collection's
metadata; only Ansible's collection finder records it. Modules of the collection imported before from
sys.path (tests/unit/conftest.py) lack it: they are dropped so that the finder imports them again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.plugins.loader import init_plugin_loader

init_plugin_loader([str(Path(__file__).resolve().parents[4] / "collections")])
_IMPORTED = sys.modules.get("ansible_collections.cloudpatterns.mysql")
if _IMPORTED is not None and getattr(_IMPORTED, "_collection_meta", None) is None:
    for name in [
        name for name in sys.modules if name.split(".")[0] == "ansible_collections"
    ]:
        del sys.modules[name]
