"""The package's layers, enforced: no upward import, no import circle, small modules.

The layers, lowest first (docs/architecture.md draws them). A module may import modules of
its own layer or of lower layers, never higher ones; imports made only for type checking
count too, so the picture holds for readers as well as for the interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "patchworks"

#: Lowest first. A name covers the module of that name and everything below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("vocabulary", ("errors", "_version", "_typing", "_plan", "_fs")),
    ("io", ("io",)),
    ("store", ("_store",)),
    ("engine", ("_engine",)),
    ("stitch", ("stitch",)),
    ("options", ("_options",)),
    ("run", ("_run",)),
    (
        "facade",
        ("", "__main__", "_api", "_tools", "_cli", "testing", "plugins", "datasets", "demo"),
    ),
]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    best, rank = -1, None
    for k, (_, names) in enumerate(LAYERS):
        for name in names:
            covers = module == name or module.startswith(name + ".")
            if covers and len(name) > best:
                best, rank = len(name), k
    if rank is None:
        raise AssertionError(f"module patchworks.{module} is in no layer; add it to LAYERS")
    return rank


def _imports(module: str, path: Path) -> set[str]:
    """The patchworks modules ``module`` imports (relative to the package), anywhere."""
    tree = ast.parse(path.read_text())
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join([*base, node.module] if node.module else base)
                names = [f"patchworks.{stem}".rstrip(".")]
            else:
                names = [node.module or ""]
            # `from patchworks.io import _zarr` imports a module, not a name
            names += [f"{names[0]}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "patchworks" or name.startswith("patchworks."):
                target = name[len("patchworks.") :] if name != "patchworks" else ""
                while target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in MODULES and target != module:
                    found.add(target)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    mine = _layer(module)
    upward = sorted(t for t in GRAPH[module] if _layer(t) > mine)
    assert not upward, (
        f"patchworks.{module} (layer {LAYERS[mine][0]}) imports higher layers: "
        + ", ".join(f"patchworks.{t} ({LAYERS[_layer(t)][0]})" for t in upward)
    )


def test_no_import_circle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH[m]):
            # a package's __init__ re-exports its modules: importing a package from inside
            # it is not a circle between modules
            if t == "" or m.startswith(t + "."):
                continue
            if state.get(t) == 1:
                circle = [*stack[stack.index(t) :], t]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"patchworks.{module} has {n} lines (at most {MAX_LINES}); split it"


def test_every_layer_exists():
    for _, names in LAYERS:
        for name in names:
            assert name in MODULES, f"LAYERS names patchworks.{name}, which does not exist"
