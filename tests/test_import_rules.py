"""The dependency rules of the layout, checked on the source: syncctl never imports syncd;
domain modules never import grpc or the generated API; only syncd.rpc does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "server" / "syncd"
CLIENT = ROOT / "client" / "syncctl"

# Modules of the daemon allowed to touch gRPC: the RPC edge and the composition root.
GRPC_ALLOWED = {"syncd.rpc", "syncd.daemon"}


def _module_name(path: Path, base: Path, package: str) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def _server_modules() -> list[tuple[str, Path]]:
    return [(_module_name(p, SERVER, "syncd"), p) for p in sorted(SERVER.rglob("*.py"))]


def test_the_client_never_imports_the_daemon() -> None:
    """No module of syncctl imports syncd (they share only syncd_api)."""
    offenders = {
        str(p.relative_to(ROOT)): sorted(i for i in _imports(p) if _top(i) == "syncd")
        for p in CLIENT.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(("module", "path"), _server_modules(), ids=lambda v: str(v))
def test_domain_modules_never_import_grpc(module: str, path: Path) -> None:
    """Only the RPC edge (and the composition root that starts it) imports grpc/syncd_api."""
    if any(module == a or module.startswith(a + ".") for a in GRPC_ALLOWED):
        return
    bad = sorted(
        i
        for i in _imports(path)
        if _top(i) in {"grpc", "grpc_health", "grpc_reflection", "syncd_api"}
    )
    assert bad == [], f"{module} imports {bad}"


def test_the_rules_see_the_modules_they_guard() -> None:
    """The walk finds the server's domain modules, so the rule above is not vacuous."""
    names = {m for m, _ in _server_modules()}
    assert {"syncd.registry", "syncd.runs", "syncd.beans", "syncd.rpc.servicer"} <= names
