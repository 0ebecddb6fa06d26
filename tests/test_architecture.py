"""The shape of the house, checked from the source (``ast`` only: fast, no DOLFINx, no torch).

Run alone with ``python -m pytest tests/test_architecture.py`` (about a second):

- no import cycle among bridgesolve modules (module-level imports);
- the library never imports ``bridgesolve.cli`` or ``examples`` (at any level);
- torch only under ``bridgesolve/learn/``; DOLFINx, PETSc and MPI only in ``_dolfinx.py``;
- every name of ``bridgesolve.__all__`` resolves;
- every file a ``--help`` text names exists.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bridgesolve"
#: Imported only by bridgesolve/_dolfinx.py.
DOLFINX_STACK = ("dolfinx", "dolfinx_solver", "petsc4py", "mpi4py")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@functools.cache
def _imports(path: Path, *, module_level: bool) -> list[tuple[str, int]]:
    """``(imported name, line)``: absolute names; ``from a import b`` gives ``a.b`` when that
    is a bridgesolve module, else ``a``. Relative imports are resolved against ``path``."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[tuple[str, int]] = []

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                out.extend((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    out.append((full if full in MODULES else base, node.lineno))
            elif module_level:
                if isinstance(node, ast.If) and _is_type_checking(node):
                    continue
                if isinstance(node, ast.If | ast.Try | ast.With):
                    for field in ("body", "orelse", "finalbody", "handlers"):
                        for child in getattr(node, field, []):
                            visit(child.body if isinstance(child, ast.ExceptHandler)
                                  else [child])
            if not module_level:
                visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return out


@functools.cache
def _graph() -> dict[str, set[str]]:
    return {name: {imp for imp, _ in _imports(path, module_level=True) if imp in MODULES
                   and imp != name}
            for name, path in MODULES.items()}


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.cache
def _full_graph() -> dict[str, set[str]]:
    """Every import (nested ones included), plus the packages an import runs first: importing
    ``bridgesolve.pde.generated`` from outside ``pde`` executes ``pde/__init__.py``. A
    module's own enclosing packages are not edges (they are running already)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        mine = {*_ancestors(name), name}
        edges = set()
        for imp, _ in _imports(path, module_level=False):
            if imp not in MODULES:
                continue
            edges |= {m for m in (*_ancestors(imp), imp) if m in MODULES and m not in mine}
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _offenders(allowed, forbidden: tuple[str, ...]) -> list[str]:
    """``module:line imports name`` for imports (any level) of ``forbidden`` packages
    outside the modules for which ``allowed(name)`` is true."""
    bad = []
    for name, path in MODULES.items():
        if allowed(name):
            continue
        for imp, line in _imports(path, module_level=False):
            if imp.split(".")[0] in forbidden or any(imp == f or imp.startswith(f + ".")
                                                     for f in forbidden):
                bad.append(f"{name}:{line} imports {imp}")
    return bad


def test_no_import_cycle_among_modules():
    cycles = _cycles(_graph())
    assert not cycles, f"module-level import cycles: {cycles}"


def test_no_import_cycle_counting_every_import():
    """Nested imports too (they run later, but a circle of them still ties two rooms
    together), and through the ``__init__`` of every package an import enters."""
    cycles = _cycles(_full_graph())
    assert not cycles, f"import cycles (every import counted): {cycles}"


def test_full_graph_sees_nested_imports_and_packages():
    graph = _full_graph()
    assert "bridgesolve.learn" in graph["bridgesolve.cli.learn"]  # inside functions only
    assert "bridgesolve.pde" in graph["bridgesolve.likelihood.nll"]  # the package it enters


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_library_never_imports_the_cli_or_examples():
    bad = _offenders(lambda name: name.startswith("bridgesolve.cli"),
                     ("bridgesolve.cli", "examples"))
    assert not bad, bad


def test_torch_only_under_learn():
    bad = _offenders(lambda name: name.startswith("bridgesolve.learn"), ("torch",))
    assert not bad, bad


#: Known exceptions, each with its reason: ``_validate.check_memory`` must stay DOLFINx-free
#: and imports mpi4py only when handed a communicator, i.e. once _dolfinx.py has loaded it.
DOLFINX_STACK_EXCEPTIONS = {("bridgesolve._validate", "mpi4py")}


def test_dolfinx_stack_only_in_one_module():
    bad = [entry for entry in _offenders(lambda name: name == "bridgesolve._dolfinx",
                                         DOLFINX_STACK)
           if (entry.split(":")[0], entry.rsplit(" ", 1)[1]) not in DOLFINX_STACK_EXCEPTIONS]
    assert not bad, bad


def _defined(path: Path) -> set[str]:
    """The names a module binds at module level (defs, classes, assignments, imports)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _literal(path: Path, name: str):
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def test_every_public_name_resolves():
    """Statically: each name of ``__all__`` is bound in ``__init__`` or by its ``_LAZY``
    module; every lazy name but subpackages (learn: PyTorch) is in ``__all__``."""
    init = PACKAGE / "__init__.py"
    public, lazy = _literal(init, "__all__"), _literal(init, "_LAZY") or {}
    eager = _defined(init)
    missing = [name for name in public if name not in eager and not (
        name in lazy and name in _defined(MODULES[lazy[name]]))]
    assert not missing, f"in __all__ but not served: {missing}"
    unlisted = sorted(name for name, module in lazy.items()
                      if module != f"bridgesolve.{name}" and name not in public)
    assert not unlisted, f"served but not in __all__: {unlisted}"
    assert all(module in MODULES for module in lazy.values()), lazy


def _help_texts() -> dict[str, str]:
    from bridgesolve.cli import _parser

    parser = _parser()
    texts = {"bridgesolve": parser.format_help()}
    for action in parser._subparsers._group_actions:  # the sub-parsers
        for name, sub in action.choices.items():
            texts[name] = sub.format_help()
    return texts


#: A repository path in prose: examples/..., meshes/..., benchmarks/... with a suffix.
PATH = re.compile(r"\b((?:examples|meshes|benchmarks|docs)/[\w./-]*\w\.(?:toml|py|msh|geo|md))")


def test_help_texts_name_only_existing_files():
    texts = _help_texts()
    assert {"run", "bridge", "convergence", "reference", "likelihood", "train", "validate",
            "figures"} <= set(texts)
    named = {(cmd, path) for cmd, text in texts.items() for path in PATH.findall(text)}
    assert named, "no file named in any help text: the pattern is broken"
    missing = sorted(f"bridgesolve {cmd} --help names {path}" for cmd, path in named
                     if not (ROOT / path).exists())
    assert not missing, missing


def test_import_scanner_sees_function_level_imports(tmp_path):
    module = PACKAGE / "cli" / "learn.py"  # imports bridgesolve.learn only inside functions
    everywhere = {imp for imp, _ in _imports(module, module_level=False)}
    top = {imp for imp, _ in _imports(module, module_level=True)}
    assert any(i.startswith("bridgesolve.learn") for i in everywhere - top), everywhere


@pytest.mark.parametrize("name", ["bridgesolve.equations", "bridgesolve._folders",
                                  "bridgesolve._vocab", "bridgesolve.config"])
def test_front_door_modules_are_dolfinx_free(name):
    """What the config reader and the torch-only host need never pulls in DOLFINx."""
    graph = _graph()
    seen, todo = set(), [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(graph[mod])
    heavy = sorted(m for m in seen if any(
        imp.split(".")[0] in DOLFINX_STACK or imp == "bridgesolve._dolfinx"
        for imp, _ in _imports(MODULES[m], module_level=True)))
    assert not heavy, f"{name} imports DOLFINx at module level through {heavy}"


#: Longest module, in lines (the house rule is ~500; a module past this is a room to split).
MAX_MODULE_LINES = 510
#: Lines of one function or method, docstring included: a piece with a name of its own
#: beyond this goes into a helper.
MAX_FUNCTION_LINES = 100


def test_no_module_too_long():
    long = sorted((len(p.read_text("utf-8").splitlines()), name) for name, p in MODULES.items()
                  if len(p.read_text("utf-8").splitlines()) > MAX_MODULE_LINES)
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def _long_functions(path: Path, limit: int) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    return [(node.end_lineno - node.lineno + 1, node.name) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_too_long():
    long = sorted((n, f"{name}.{fn}") for name, p in MODULES.items()
                  for n, fn in _long_functions(p, MAX_FUNCTION_LINES))
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_function_length_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f"def f():\n{body}\n", "utf-8")
    assert _long_functions(path, MAX_FUNCTION_LINES) == [(MAX_FUNCTION_LINES + 1, "f")]


def test_top_level_has_no_topic_prefixes():
    """A topic with several modules is a package: no ``_thermo_x.py`` beside ``thermo/``."""
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    prefixed = sorted(p.name for p in PACKAGE.glob("_*.py")
                      if any(p.stem.startswith(f"_{pkg}_") for pkg in packages | {
                          q.stem for q in PACKAGE.glob("*.py")}))
    assert not prefixed, f"topic-prefixed private modules at the top level: {prefixed}"
    assert {"thermo", "likelihood", "action", "bridge", "reference", "densities", "pde",
            "studies", "learn", "cli"} <= packages, packages
