"""The public API is annotated: every parameter and return of the names users import.

mypy (configured in pyproject.toml) checks that the annotations are right; it cannot say that a
public function has them at all without forcing them on every private helper too. This does.
"""

import importlib
import inspect

import pytest

MODULES = [
    "boostloss",
    "boostloss.losses",
    "boostloss.losses.ohem",
    "boostloss.xgboost",
    "boostloss.lightgbm",
    "boostloss.estimators",
    "boostloss.cuda",
    "boostloss.compare",
    "boostloss.cli",
    "boostloss.dask",
    "boostloss.spark",
]
OPTIONAL = {"boostloss.dask": "dask", "boostloss.spark": "pyspark"}
# Dunder methods checked where boostloss defines them (others come from object or the frameworks).
CHECKED_DUNDERS = {"__init__", "__call__", "__getstate__", "__sklearn_clone__", "__sklearn_tags__"}


def _missing(func, skip_first):
    """Names of ``func``'s parameters without an annotation, and "return" when it has none."""
    signature = inspect.signature(func, follow_wrapped=False)
    params = list(signature.parameters.values())[1 if skip_first else 0 :]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _class_members(cls):
    """``(qualified name, function, is a method)`` of the public members boostloss defines in the
    classes of ``cls``'s MRO (inherited ones included, the frameworks' left out)."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("boostloss"):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") and name not in CHECKED_DUNDERS:
                continue
            where = f"{klass.__module__}.{klass.__qualname__}.{name}"
            if not getattr(member, "__module__", klass.__module__).startswith("boostloss"):
                continue  # made by the language (a Protocol's __init__), not written here
            if isinstance(member, property):
                yield where, member.fget, True
            elif isinstance(member, staticmethod):
                yield where, member.__func__, False
            elif isinstance(member, classmethod):
                yield where, member.__func__, True
            elif inspect.isfunction(member):
                yield where, member, True


def _public_functions(module_name):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) and obj.__module__.startswith("boostloss"):
            yield from _class_members(obj)
        elif inspect.isfunction(obj):
            yield f"{obj.__module__}.{obj.__qualname__}", obj, False


@pytest.mark.parametrize("module_name", MODULES)
def test_public_api_is_annotated(module_name):
    if module_name in OPTIONAL:
        pytest.importorskip(OPTIONAL[module_name])
    checked = {}
    for where, func, is_method in _public_functions(module_name):
        checked[where] = _missing(func, skip_first=is_method)
    assert checked, f"no public function found in {module_name}"
    unannotated = {where: missing for where, missing in checked.items() if missing}
    assert not unannotated, f"public functions without annotations: {unannotated}"


def test_the_check_sees_a_missing_annotation():
    def partly(a: int, b) -> int:
        return a

    def no_return(a: int):
        return a

    class Public:
        def method(self, x: int):
            return x

    assert _missing(partly, skip_first=False) == ["b"]
    assert _missing(no_return, skip_first=False) == ["return"]
    Public.__module__ = Public.method.__module__ = "boostloss.example"
    assert [
        (where.rsplit(".", 1)[-1], _missing(func, is_method))
        for where, func, is_method in _class_members(Public)
    ] == [("method", ["return"])]
