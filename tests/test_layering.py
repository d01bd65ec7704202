"""Imports run one way: lower layers never reach up, not even lazily inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROXY = Path(__file__).resolve().parents[1] / "proxy"

# package → the modules of `proxy` it must never import (directly or inside a function)
ABOVE = {
    "routing": {"settings", "sdk", "sdk_router", "engine", "governance", "api", "app", "cli"},
    "providers": {"routing", "settings", "sdk", "engine", "governance", "api", "app", "cli"},
    "limits": {"routing", "settings", "sdk", "engine", "governance", "api", "app", "cli"},
    # the one Redis link, used by routing, limits and the cache: below all three
    "redis_link": {"routing", "limits", "cache", "settings", "config_loading", "sdk", "sdk_router", "engine",
                   "governance", "api", "app", "cli"},
}


def imported_proxy_modules(path: Path) -> set[str]:
    """The top-level `proxy` modules a file imports (relative or absolute), and private names it imports."""
    depth = len(path.relative_to(PROXY).parts) - 1
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > depth:  # `from ..x import` out of this package
                    target = (node.module or "").split(".")[0]
                    found.add(target or node.names[0].name)
            elif node.module and node.module.startswith("proxy."):
                found.add(node.module.split(".")[1])
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add(f"private:{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("proxy.")}
    return found


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_a_lower_layer_imports_nothing_above_it(package):
    module = PROXY / f"{package}.py"
    for path in [module] if module.exists() else sorted((PROXY / package).glob("*.py")):
        reached = imported_proxy_modules(path) & ABOVE[package]
        assert not reached, f"proxy/{package}/{path.name} imports {sorted(reached)}"


def test_no_module_imports_another_modules_private_names():
    for path in sorted(PROXY.rglob("*.py")):
        private = {m for m in imported_proxy_modules(path) if m.startswith("private:")}
        assert not private, f"{path.relative_to(PROXY)} imports {sorted(private)}"
