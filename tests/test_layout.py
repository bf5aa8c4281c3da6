"""The package's layers: every import points down (docs/index.md draws them).

``boostloss._kernels`` (numba kernels and what they need) imports nothing of boostloss above it;
``boostloss.losses`` only the kernels; ``boostloss._frameworks`` (framework glue) only those two;
the public modules (``xgboost``, ``lightgbm``, ``estimators``, ``dask``, ``spark``, ``cuda``,
``compare``, ``cli``) sit on top. ``boostloss._typing`` is a leaf anyone may import (its own imports
of the losses are for type checkers only). Lazy imports inside functions count too; imports under
``if TYPE_CHECKING:`` do not. Module-level imports form no cycle.
"""

import ast
from pathlib import Path

import boostloss

_ROOT = Path(boostloss.__file__).parent

#: The layer of a module, by the first component under ``boostloss`` (anything else: the top).
_LAYERS = {"_kernels": 0, "_typing": 0, "losses": 1, "_frameworks": 2}
_TOP = 3


def _module_name(path):
    parts = list(path.relative_to(_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module):
    parts = module.split(".")
    if len(parts) == 1:
        return _TOP
    return _LAYERS.get(parts[1], _TOP)


def _is_type_checking(node):
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path):
    """(imported boostloss module, line, at module level) for every import in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node, top_level):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                if module.split(".")[0] == "boostloss":
                    targets = [module]
                    if not child.module or child.level:
                        # ``from . import xgboost``: the names may be modules
                        targets = [
                            f"{module}.{a.name}"
                            if (_ROOT.parent / f"{module}.{a.name}".replace(".", "/")).exists()
                            or (
                                _ROOT.parent / (f"{module}.{a.name}".replace(".", "/") + ".py")
                            ).exists()
                            else module
                            for a in child.names
                        ]
                    found.extend((t, child.lineno, top_level) for t in targets)
            elif isinstance(child, ast.Import):
                found.extend(
                    (a.name, child.lineno, top_level)
                    for a in child.names
                    if a.name.split(".")[0] == "boostloss"
                )
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, False)
            else:
                visit(child, top_level)

    visit(tree, True)
    return name, found


def _all_imports():
    return [_imports(path) for path in sorted(_ROOT.rglob("*.py"))]


def test_the_layers_exist():
    names = {name for name, _ in _all_imports()}
    for module in (
        "boostloss._kernels.binary",
        "boostloss._kernels.softmax",
        "boostloss._kernels.select",
        "boostloss.losses.focal",
        "boostloss.losses.ghm",
        "boostloss.losses.ohem",
        "boostloss._frameworks.adapters",
        "boostloss._frameworks.compat_xgboost",
        "boostloss._frameworks.collective",
        "boostloss.xgboost",
        "boostloss.estimators",
    ):
        assert module in names


def test_every_import_points_down():
    upward = []
    for name, imports in _all_imports():
        here = _layer(name)
        for target, line, _ in imports:
            there = _layer(target)
            if target == "boostloss" and here < _TOP:
                upward.append(f"{name}:{line} imports the package root")
            elif there > here or (
                here == there == 0 and target.split(".")[1] != name.split(".")[1]
            ):
                if target.startswith("boostloss._kernels") and name.startswith(
                    "boostloss._kernels"
                ):
                    continue
                upward.append(f"{name}:{line} -> {target}")
    assert not upward, upward


def test_module_level_imports_have_no_cycle():
    graph = {}
    for name, imports in _all_imports():
        graph[name] = {t for t, _, top in imports if top and t != name}
    state = {}

    def walk(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt not in graph or state.get(nxt) == 2:
                continue
            if state.get(nxt) == 1:
                # a package importing its own submodules while they import the package's siblings
                # is not a cycle unless the submodule imports the package itself back
                raise AssertionError(f"import cycle: {' -> '.join([*stack, node, nxt])}")
            walk(nxt, [*stack, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            walk(node, [])
