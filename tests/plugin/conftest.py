"""The plugin tier: fixtures `seeded` and `run` come from tests/plugin/pluginkit.py."""

from __future__ import annotations

from plugin.pluginkit import run, seeded

__all__ = ["run", "seeded"]
