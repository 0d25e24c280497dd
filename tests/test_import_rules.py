"""The dependency rules of the layout, checked on the source.

Edges (rpc, web) call the run service and the domain; the service calls the domain; the domain
(beans, scheduling, execution, ledger, observability) and the shared kernel never reach up; the
composition root (app) wires everything. Only the gRPC edge and the composition root import
grpc or the generated API; only the web edge and the composition root serve HTTP. Job packs see
the daemon through `syncd.job` alone, and the client never imports the daemon.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "server"
CLIENT = ROOT / "client" / "syncctl"

# Every module of the daemon belongs to one layer: the longest matching prefix decides.
LAYER_OF = {
    "syncd": "kernel",  # errors, enums, values, clock, config, configvalues, job, _exports
    # The bean model is part of the pack contract (syncd.job re-exports its parameter and
    # operation types), so it sits with the kernel; the registry is domain; the job and daemon
    # beans are the run service's bean face (their operations call it), so they sit with it.
    "syncd.beans.model": "kernel",
    "syncd.beans": "domain",
    "syncd.beans.jobbeans": "service",
    "syncd.beans.daemonbean": "service",
    "syncd.scheduling": "domain",
    "syncd.execution": "domain",
    "syncd.ledger": "domain",
    # Cluster mode's claims, leases and membership: domain, beside the ledger it shares.
    "syncd.cluster": "domain",
    # The replicated repository: the ledger's tables seen as versioned records, and the cycle.
    "syncd.replication": "domain",
    "syncd.observability": "domain",
    "syncd.security": "domain",  # roles, tokens, peer identity, TLS material: no grpc, no HTTP
    "syncd.service": "service",
    "syncd.rpc": "edge",
    "syncd.web": "edge",
    "syncd.app": "app",
    "syncd.__main__": "app",
}

# What each layer may import from the daemon (a module may always import its own package).
MAY_IMPORT = {
    "kernel": {"kernel"},
    "domain": {"kernel", "domain"},
    "service": {"kernel", "domain", "service"},
    "edge": {"kernel", "domain", "service"},
    "app": {"kernel", "domain", "service", "edge", "app"},
}

# Third-party imports only some packages may make.
ONLY_IN = {
    "grpc": {"syncd.rpc", "syncd.app"},
    "grpc_health": {"syncd.rpc", "syncd.app"},
    "grpc_reflection": {"syncd.rpc", "syncd.app"},
    "syncd_api": {"syncd.rpc", "syncd.app"},
    # Serving HTTP is the web edge's; the webhook notifier may still use aiohttp's client.
    "aiohttp.web": {"syncd.web", "syncd.app"},
}

PACKS = ("syncd_tis",)
CONTRACT = "syncd.job"
CONCEPT_PACKAGES = (
    "app",
    "beans",
    "service",
    "scheduling",
    "execution",
    "ledger",
    "cluster",
    "observability",
    "replication",
    "security",
)


PACKAGES = {f"syncd.{p.name}" for p in (SERVER / "syncd").iterdir() if (p / "__init__.py").exists()}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module named by an absolute import, plus `module.name` for each `from` import (a
    submodule or an attribute: both are what the importer depends on)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(name: str) -> str:
    best = max((p for p in LAYER_OF if _within(name, p)), key=len)
    return LAYER_OF[best]


def _package_of(name: str) -> str:
    """The concept package a daemon module belongs to (`syncd` itself for the kernel)."""
    package = ".".join(name.split(".")[:2])
    return package if package in PACKAGES else "syncd"


def _private_owner(name: str) -> str | None:
    """For `a.b._c.d`, the package `a.b` whose private module `_c` is named; else None."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _server_modules(top: str) -> list[tuple[str, Path]]:
    return [(_module_name(p), p) for p in sorted((SERVER / top).rglob("*.py"))]


DAEMON = _server_modules("syncd")
PACK_MODULES = [m for pack in PACKS for m in _server_modules(pack)]


@pytest.mark.parametrize(("module", "path"), DAEMON, ids=[m for m, _ in DAEMON])
def test_each_layer_imports_only_the_layers_below_it(module: str, path: Path) -> None:
    """Edges → service → domain → kernel; nothing reaches up, and app alone wires the edges."""
    own = _package_of(module)
    allowed = MAY_IMPORT[_layer(module)]
    bad = sorted(
        i
        for i in _imports(path)
        if _within(i, "syncd")
        and not (own != "syncd" and _within(i, own))
        and _layer(i) not in allowed
    )
    assert bad == [], f"{module} ({_layer(module)}) imports {bad}"


@pytest.mark.parametrize(("module", "path"), DAEMON, ids=[m for m, _ in DAEMON])
def test_private_modules_stay_inside_their_package(module: str, path: Path) -> None:
    """`syncd.x._y` is imported only inside `syncd.x` (and by app, which wires the parts)."""
    if _layer(module) == "app":
        return
    bad = sorted(
        i
        for i in _imports(path)
        if _within(i, "syncd")
        and (owner := _private_owner(i)) is not None
        and not _within(module, owner)
    )
    assert bad == [], f"{module} imports private modules of other packages: {bad}"


@pytest.mark.parametrize(("module", "path"), DAEMON, ids=[m for m, _ in DAEMON])
def test_protocol_libraries_stay_at_their_edge(module: str, path: Path) -> None:
    """Only the RPC edge (and the composition root) imports grpc/syncd_api; only the web edge
    (and the composition root) serves HTTP."""
    bad = sorted(
        i
        for i in _imports(path)
        for library, owners in ONLY_IN.items()
        if _within(i, library) and not any(_within(module, o) for o in owners)
    )
    assert bad == [], f"{module} imports {bad}"


@pytest.mark.parametrize(("module", "path"), PACK_MODULES, ids=[m for m, _ in PACK_MODULES])
def test_packs_see_only_the_job_contract(module: str, path: Path) -> None:
    """A pack imports from the daemon nothing but `syncd.job`, and only names it exports."""
    contract = set(importlib.import_module(CONTRACT).__all__)
    bad = sorted(
        i
        for i in _imports(path)
        if _within(i, "syncd")
        and i != CONTRACT
        and not (i.startswith(CONTRACT + ".") and i.removeprefix(CONTRACT + ".") in contract)
    )
    assert bad == [], f"{module} imports {bad}"


def test_loading_a_pack_loads_only_the_contract_side_of_the_daemon() -> None:
    """Importing the tis pack runs no daemon code beyond the kernel (package faces load nothing
    until a name is asked for), so a pack cannot lean on the daemon's internals by accident."""
    probe = "import sys, syncd_tis; print(*sorted(m for m in sys.modules if m.startswith('syncd')))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert CONTRACT in loaded
    beyond = [
        m for m in loaded if _within(m, "syncd") and _layer(m) != "kernel" and m not in PACKAGES
    ]
    assert beyond == []


def test_the_job_processes_fork_server_loads_no_ledger() -> None:
    """What the fork server imports, every job's process is forked with, and pays for in its
    fork and exit: the executor's side of a job holds no ledger, no SQLAlchemy and no servers
    (a pack that uses them loads them itself)."""
    probe = "import sys, syncd.execution.executors; print(*sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    heavy = ("syncd.ledger", "syncd.service", "syncd.rpc", "syncd.web", "sqlalchemy", "grpc")
    assert [m for m in loaded if any(_within(m, h) for h in heavy)] == []


def test_the_client_never_imports_the_daemon() -> None:
    """No module of syncctl imports syncd or a pack (they share only syncd_api)."""
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            i for i in _imports(p) if any(_within(i, t) for t in ("syncd", *PACKS))
        )
        for p in CLIENT.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_relative_imports_slip_past_the_rules() -> None:
    """The rules read absolute imports; a relative one would go unchecked."""
    relative = [
        _module_name(p)
        for _, p in [*DAEMON, *PACK_MODULES]
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []


@pytest.mark.parametrize("package", [CONTRACT, *(f"syncd.{p}" for p in CONCEPT_PACKAGES)])
def test_public_faces_resolve_every_name_they_list(package: str) -> None:
    """Each package's `__all__` is real: every name resolves; its classes and functions are
    defined inside that package (the contract's, anywhere in the daemon)."""
    face = importlib.import_module(package)
    assert face.__all__, f"{package} lists no public names"
    home = "syncd" if package == CONTRACT else package
    for name in face.__all__:
        value = getattr(face, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert _within(value.__module__, home), f"{package}.{name} is {value.__module__}'s"
    with pytest.raises(AttributeError, match="no attribute"):
        _ = face.no_such_name


def test_the_rules_see_the_modules_they_guard() -> None:
    """The walks find the daemon's packages and the pack, so the rules above are not vacuous."""
    names = {m for m, _ in DAEMON}
    assert {
        "syncd.job",
        "syncd.beans.registry",
        "syncd.execution.runs",
        "syncd.service.orchestrator",
        "syncd.rpc.servicer",
        "syncd.web.console",
        "syncd.app.daemon",
    } <= names
    assert {m for m in names if _layer(m) == "domain"} >= {"syncd.ledger.recorder"}
    assert "syncd_tis.search.jobs" in {m for m, _ in PACK_MODULES}
    assert {_layer(m) for m in names} == set(MAY_IMPORT)
