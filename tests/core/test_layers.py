"""The core decides and the edges convert: bot/core imports no platform, network or storage
code, so every rule can be read (and tested) without them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "bot" / "core"
FORBIDDEN = ("bot.store", "bot.chat", "bot.backends", "bot.worker", "bot.ops", "bot.app",
             "bot.config", "discord", "slack_bolt", "slack_sdk", "httpx", "aiohttp", "aiosqlite",
             "sqlite3", "prometheus_client", "torch", "diffusers", "transformers")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against the bot.core package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["bot", "core"][: 3 - node.level] + ([base] if base else []))
            names.add(base)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_a_core_module_imports_no_platform_network_or_storage_code(path):
    leaks = sorted(name for name in imported_modules(path)
                   if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN))

    assert leaks == [], f"{path.name} imports {leaks}"


def test_the_check_sees_a_store_import_when_there_is_one(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from bot.store.db import Database\nfrom ..store import jobs_repo\n")

    assert imported_modules(module) == {"bot.store.db", "bot.store"}
