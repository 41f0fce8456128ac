# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Every plugin's DOCUMENTATION, EXAMPLES and RETURN is YAML that ansible-doc can read.

ansible-doc and ansible-lint only print an error for a plugin whose documentation does not parse (a colon
followed by a space in a plain description line is enough); this makes it a failing test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
DOC_BLOCKS = ("DOCUMENTATION", "EXAMPLES", "RETURN")


def _doc_blocks() -> list[tuple[str, str, str]]:
    blocks = []
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in DOC_BLOCKS
            ):
                blocks.append((str(path.relative_to(PLUGINS)), node.targets[0].id, node.value.value))
    return blocks


BLOCKS = _doc_blocks()


def test_every_plugin_with_options_is_documented():
    documented = {path for path, name, _ in BLOCKS if name == "DOCUMENTATION"}
    plugins = {
        str(p.relative_to(PLUGINS))
        for kind in ("modules", "filter", "inventory")
        for p in (PLUGINS / kind).glob("*.py")
        if not p.name.startswith("_")
    }
    assert plugins - documented == set()


@pytest.mark.parametrize(("path", "name", "text"), BLOCKS, ids=[f"{p}:{n}" for p, n, _ in BLOCKS])
def test_doc_block_is_yaml(path, name, text):
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    assert documents, f"{path}: {name} is empty"
    if name == "DOCUMENTATION":
        (doc,) = documents
        assert doc.get("short_description"), f"{path}: DOCUMENTATION has no short_description"
