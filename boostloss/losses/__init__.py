"""The losses: the protocol (``_base``), focal, GHM-C and OHEM, and the registry by name.

Every caller (the adapters, the estimators, Dask, Spark, CUDA, compare) uses the public,
keyword-only methods of the base class; docs/index.md draws the layers."""

from __future__ import annotations

import re

from .._typing import LossLike
from ._base import Target, _Loss, check_target
from .focal import FocalLoss, FocalParams
from .ghm import GHMLoss, GHMParams, GHMState
from .ohem import OHEMLoss, OHEMParams, OHEMState

__all__ = [
    "FocalLoss",
    "GHMLoss",
    "FocalParams",
    "GHMParams",
    "GHMState",
    "Target",
    "check_target",
    "LOSSES",
    "make_loss",
    "OHEMLoss",
    "OHEMParams",
    "OHEMState",
]

# ------------------------------------------------------------------------------------------------
# Losses by name
# ------------------------------------------------------------------------------------------------

#: The registered losses, by the names that ``make_loss`` and ``boostloss compare --losses`` use.
LOSSES: dict[str, type[_Loss]] = {"focal": FocalLoss, "ghm": GHMLoss}

_SPEC = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(?::(.*))?$")


def _parse_value(text):
    """A parameter value of a loss spec: None, an int, a float, or a string as written."""
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def make_loss(spec: LossLike) -> _Loss:
    """A loss from a loss object or a name with optional parameters, CatBoost style.

    ``make_loss("focal")``, ``make_loss("focal:gamma=2,alpha=0.25")``,
    ``make_loss("ghm:bins=30,momentum=0.75")``; ``;`` separates parameters too. Values are read as
    int, float, ``none`` or a string (``hessian=gauss_newton``). A loss object is returned as it is.
    Parameters are validated as usual, at first use.

    Raises
    ------
    TypeError
        ``spec`` is neither a loss nor a string.
    ValueError
        An unknown name or parameter, or a malformed spec; the message lists what is allowed.
    """
    if isinstance(spec, _Loss):
        return spec
    names = ", ".join(repr(n) for n in LOSSES)
    if not isinstance(spec, str):
        raise TypeError(
            f"loss must be a boostloss loss object or a name ({names}, optionally with parameters "
            f"such as 'focal:gamma=2,alpha=0.25'), got {spec!r} of type {type(spec).__name__}"
        )
    match = _SPEC.match(spec)
    if match is None or match.group(1).lower() not in LOSSES:
        raise ValueError(f"unknown loss {spec!r}: the registered losses are {names}")
    cls = LOSSES[match.group(1).lower()]
    params = {}
    for item in re.split(r"[,;]", match.group(2) or ""):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(
                f"malformed parameter {item.strip()!r} in loss {spec!r}: write name=value"
            )
        params[key] = _parse_value(value)
    allowed = sorted(cls().get_params())
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for loss {cls.name!r} in {spec!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    return cls(**params)


LOSSES["ohem"] = OHEMLoss
