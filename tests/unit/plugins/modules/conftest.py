# Copyright (c) cloudpatterns.mysql developers
# SPDX-License-Identifier: Apache-2.0
"""Run a module's main() in-process: arguments in, result out, the program it calls replaced by outputs.

``run_module(main, args, outputs)`` returns (result, calls). Each call records the argv, the extra
environment and the content and mode of the private files the module handed to the program (config
file, script), read while the program "runs", since the module removes them afterwards.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    def __init__(self, result: dict[str, Any], failed: bool):
        super().__init__(result.get("msg", ""))
        self.result = dict(result, failed=failed)


@dataclass
class Call:
    argv: list[str]
    environ_update: dict[str, str]
    files: dict[str, tuple[str, int]] = field(default_factory=dict)


Output = tuple[int, str, str]
Runner = Callable[..., tuple[dict[str, Any], list[Call]]]


def _files_in(argv: list[str], directory: str) -> dict[str, tuple[str, int]]:
    found = {}
    for arg in argv:
        path = arg.split("=", 1)[-1]
        if path.startswith(directory) and os.path.isfile(path):
            with open(path) as handle:
                found[path] = (handle.read(), stat.S_IMODE(os.stat(path).st_mode))
    return found


@pytest.fixture
def run_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Runner]:
    def runner(
        main: Callable[[], None],
        args: dict[str, Any],
        outputs: list[Output],
        check_mode: bool = False,
        missing: tuple[str, ...] = (),
    ) -> tuple[dict[str, Any], list[Call]]:
        calls: list[Call] = []
        pending = list(outputs)

        def run_command(module: AnsibleModule, argv: list[str], **kwargs: Any) -> Output:
            calls.append(Call(list(argv), dict(kwargs.get("environ_update") or {}), _files_in(argv, str(tmp_path))))
            assert pending, f"unexpected command: {argv}"
            return pending.pop(0)

        def get_bin_path(module: AnsibleModule, name: str, *_args: Any, **_kwargs: Any) -> str | None:
            return None if name in missing else f"/usr/bin/{name}"

        def exit_json(module: AnsibleModule, **result: Any) -> None:
            raise ModuleExit(result, failed=False)

        def fail_json(module: AnsibleModule, msg: str, **result: Any) -> None:
            raise ModuleExit(dict(result, msg=msg), failed=True)

        monkeypatch.setattr(AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(AnsibleModule, "get_bin_path", get_bin_path)
        monkeypatch.setattr(AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(AnsibleModule, "fail_json", fail_json)
        internal = {"_ansible_remote_tmp": str(tmp_path), "_ansible_check_mode": check_mode}
        with patch_module_args({**args, **internal}), pytest.raises(ModuleExit) as caught:
            main()
        assert not pending, f"outputs left unused: {len(pending)}"
        return caught.value.result, calls

    yield runner
