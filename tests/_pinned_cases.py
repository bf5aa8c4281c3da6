"""Fixed inputs and loss settings whose outputs test_pinned_outputs.py pins, bit for bit."""

import hashlib

import numpy as np

from boostloss import FocalLoss, GHMLoss

N = 3000


def inputs():
    rng = np.random.default_rng(20261125)
    y = (rng.random(N) < 0.15).astype(np.float64)
    x = rng.normal(-1.0, 4.0, N)
    x[:20] = [-800.0, -40.0, -1e-9, 0.0, 1e-9, 40.0, 800.0, 3.5, -3.5, 17.0] * 2
    w = rng.lognormal(0.0, 1.5, N)
    w[rng.random(N) < 0.05] = 0.0
    return y, x, w


SETTINGS = {
    "focal_g0_none": lambda: FocalLoss(gamma=0.0, alpha=None),
    "focal_g0.5_a0.25": lambda: FocalLoss(gamma=0.5, alpha=0.25),
    "focal_g1_none": lambda: FocalLoss(gamma=1.0, alpha=None),
    "focal_g2_a0.25": lambda: FocalLoss(gamma=2.0, alpha=0.25),
    "focal_g2_a0.25_gn": lambda: FocalLoss(gamma=2.0, alpha=0.25, hessian="gauss_newton"),
    "focal_g2.5_a0.75": lambda: FocalLoss(gamma=2.5, alpha=0.75),
    "focal_g5_none_gn": lambda: FocalLoss(gamma=5.0, alpha=None, hessian="gauss_newton"),
    "ghm_b1": lambda: GHMLoss(bins=1),
    "ghm_b10": lambda: GHMLoss(bins=10),
    "ghm_b30_m0.75": lambda: GHMLoss(bins=30, momentum=0.75),
    "ghm_window_0.1": lambda: GHMLoss(density="window", epsilon=0.1),
    "ghm_window_0.05": lambda: GHMLoss(density="window", epsilon=0.05),
}


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def outputs(name, weighted, dtype):
    """Every public output of a setting: loss, three rounds of derivatives, init score, weights."""
    y, x, w = inputs()
    w = w if weighted else None
    x = x.astype(dtype)
    loss = SETTINGS[name]()
    out = {"loss": digest(loss.loss(y, x, sample_weight=w))}
    margins = x
    for r in range(3):
        grad, hess = loss.gradient_hessian(y, margins, sample_weight=w)
        out[f"round{r}"] = digest(grad, hess)
        margins = (margins - 0.3 * grad / np.maximum(hess, 1e-2)).astype(dtype)
    out["init_score"] = digest([loss.init_score(y, sample_weight=w)])
    if isinstance(loss, GHMLoss):
        out["weights"] = digest(loss.harmonizing_weights(y, x, sample_weight=w))
    return out


def all_outputs():
    return {
        f"{name}|{'w' if weighted else 'u'}|{np.dtype(dtype).name}": outputs(name, weighted, dtype)
        for name in SETTINGS
        for weighted in (False, True)
        for dtype in (np.float32, np.float64)
    }


if __name__ == "__main__":
    import json

    print(json.dumps(all_outputs(), indent=1, sort_keys=True))
