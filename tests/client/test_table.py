"""The command table is the one declaration of each command, and the client's modules form no
import cycle: each imports on its own, and a command loads only the handler it runs."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

from syncctl import _table

CLIENT = Path(__file__).resolve().parents[2] / "client" / "syncctl"
# __main__ runs the program when imported, so it is only a node of the graph, not imported alone.
MODULES = sorted(f"syncctl.{path.stem}" for path in CLIENT.glob("*.py") if path.stem != "__init__")
IMPORTABLE = [module for module in MODULES if module != "syncctl.__main__"]


def _syncctl_imports(path: Path) -> set[str]:
    """Every syncctl module `path` imports, wherever the import is (function bodies and
    TYPE_CHECKING blocks too: a cycle there is still a cycle in the design)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES}


def test_the_module_graph_has_no_cycle() -> None:
    """cli → _table → handlers → helpers, never back."""
    graph = {module: _syncctl_imports(CLIENT / f"{module.split('.')[1]}.py") for module in MODULES}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_the_graph_check_sees_a_cycle() -> None:
    """The check above can fail: a two-module loop is reported."""
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).prepare()


@pytest.mark.parametrize("module", IMPORTABLE)
def test_each_module_imports_on_its_own(module: str) -> None:
    """In a fresh interpreter, with nothing else of syncctl loaded first."""
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=60)


@pytest.mark.parametrize("command", _table.COMMANDS, ids=lambda command: command.name)
def test_every_handler_resolves_to_a_function(command: _table.Command) -> None:
    """A mistyped dotted path fails here, not at an operator's prompt."""
    assert callable(_table.handler(command))


def test_status_loads_only_its_own_handler() -> None:
    """A cold `syncctl status` imports the module holding `status`, not the run, stream or
    shell commands (here against no daemon: exit 7, but the handler has been loaded)."""
    code = (
        "import io, sys; from syncctl import cli; "
        "cli.run(['status', '--address', 'unix:/nonexistent/syncd.sock'], stdout=io.StringIO(), "
        "stderr=io.StringIO(), stdin=io.StringIO(), environ={}); "
        "loaded = sorted(m for m in sys.modules if m.startswith('syncctl.')); print(loaded)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=60, capture_output=True, text=True
    )
    loaded = set(ast.literal_eval(done.stdout))
    assert "syncctl._commands" in loaded
    assert not loaded & {"syncctl._running", "syncctl._streams", "syncctl._shell", "syncctl._chain"}


def test_names_and_handlers_are_declared_once() -> None:
    """One entry per command name, and every handler path distinct."""
    names = [command.name for command in _table.COMMANDS]
    handlers = [command.handler for command in _table.COMMANDS]
    assert len(set(names)) == len(names)
    assert len(set(handlers)) == len(handlers)
