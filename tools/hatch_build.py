"""Hatch build hook: compile the message catalogues into the wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]
    """Run tools/compile_catalogs.py before building."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile .po to .mo so the wheel carries them."""
        path = Path(self.root) / "tools" / "compile_catalogs.py"
        spec = importlib.util.spec_from_file_location("compile_catalogs", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.compile_all()
