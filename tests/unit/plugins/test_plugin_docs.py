# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Every plugin's DOCUMENTATION, EXAMPLES and RETURN is YAML that ansible-doc can read.

ansible-doc and ansible-lint only print an error for a plugin whose documentation does not parse (a colon
followed by a space in a plain description line is enough); this makes it a failing test.
"""

from __future__ import annotations

import ast
import importlib
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


MODULES = ("benchmark_report", "sysbench", "wrk")


@pytest.mark.parametrize("name", MODULES)
def test_module_documentation_matches_its_argument_spec(name):
    module = importlib.import_module(f"ansible_collections.cloudpatterns.mysql.plugins.modules.{name}")
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = module.ARGUMENT_SPEC
    assert set(options) == set(spec)
    for option, documented in options.items():
        assert documented["type"] == spec[option]["type"], option
        for key in ("default", "choices", "elements", "aliases"):
            assert documented.get(key) == spec[option].get(key), f"{option}: {key}"
        assert documented.get("required", False) == spec[option].get("required", False), option
        if "password" in option or option.endswith("api_key"):
            assert spec[option].get("no_log") is True, f"{option} must be no_log"


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_use_documented_options_only(name):
    module = importlib.import_module(f"ansible_collections.cloudpatterns.mysql.plugins.modules.{name}")
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    known = set(options) | {alias for option in options.values() for alias in option.get("aliases", [])}
    fqcn = f"cloudpatterns.mysql.{name}"
    tasks = [task for task in yaml.safe_load(module.EXAMPLES) if fqcn in task]
    assert tasks
    for task in tasks:
        assert set(task[fqcn]) <= known
