"""Per-call cost of OHEM (selection + derivatives) next to the binary focal kernel and numpy.

Contenders, run in alternation within one process (medians after a warm-up), each called the way
an adapter calls it: float32 margins as the frameworks hand them over, float32 gradient / Hessian
buffers and the keep mask reused across calls, tie keys drawn once:

- ``ohem``: ``ohem_select`` + ``kept_cross_entropy_grad_hess`` (ratio 3), and each of the two alone;
- ``focal``: ``boostloss._kernels.binary.focal_grad_hess`` (gamma 2, alpha 0.25, exact Hessian), the
  reference: OHEM should cost at most 3x this;
- ``OHEMLoss`` / ``FocalLoss``: the public path, as the adapters call it:
  ``loss.gradient_hessian(target, x, gradient_out=g, hessian_out=h, n_threads=..., state=...)``
  with a validated :class:`~boostloss.losses.Target`, the training's state (OHEM: tie keys drawn
  once) and float32 buffers; the line "OHEMLoss / FocalLoss" is their ratio, the per-call price
  of OHEM over focal loss including validation of the margins;
- ``numpy``: the same selection with ``np.partition`` / ``np.argpartition`` (a full ``np.lexsort``
  when weighted), then the cross-entropy derivatives in numpy; checked to keep the same rows.

Margin sets: ``mid-training`` (continuous margins), ``constant start`` (every negative ties, the
first round) and ``weighted`` (continuous margins, lognormal sample weights). Last, ``4 classes``:
``OHEMLoss(negative_class=0)`` next to the softmax ``FocalLoss(gamma=2, alpha=None)`` on (n, 4)
margins, both through the public path (the "vs focal" column is then against the softmax focal
loss).

Run ``python benchmarks/bench_ohem.py`` (about a minute on 2 cores); ``--rows`` and ``--threads``
(default 2) change the size and numba's thread count.
"""

import argparse
import math

import _common as c
import numpy as np


def numpy_ohem(y, x, w, ratio, keys):
    """OHEM in numpy, then the CE derivatives.

    Unweighted: ``np.partition`` finds the k-th hardest margin; the negatives above it are kept
    and ``np.argpartition`` on the tie keys picks the rest among those equal to it. Weighted: the
    prefix rule needs the order, so a full ``np.lexsort``.
    """
    x64 = x.astype(np.float64) + 0.0
    negative = y == 0
    if w.shape[0]:
        negative &= w > 0
    rows = np.flatnonzero(negative)
    easiness = -x64[rows]
    keep = y != 0
    if w.shape[0]:
        order = rows[np.lexsort((keys[rows], easiness))]
        target = ratio * w[y != 0].sum()
        k = min(int(np.searchsorted(np.cumsum(w[order]), target, side="left")) + 1, rows.shape[0])
        keep[order[:k]] = True
    else:
        k = min(rows.shape[0], math.ceil(ratio * int((y != 0).sum())))
        if k == rows.shape[0]:
            keep[rows] = True
        elif k > 0:
            kth = np.partition(easiness, k - 1)[k - 1]
            keep[rows[easiness < kth]] = True
            tied = rows[easiness == kth]
            need = k - int((easiness < kth).sum())
            keep[tied[np.argpartition(keys[tied], need - 1)[:need]]] = True
    p = 1.0 / (1.0 + np.exp(-x64))
    grad = np.where(keep, p - y, 0.0)
    hess = np.where(keep, np.maximum(p * (1.0 - p), 1e-16), 0.0)
    if w.shape[0]:
        grad *= w
        hess *= w
    return keep, grad.astype(np.float32), hess.astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2, help="numba threads (default 2)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    import numba

    from boostloss import FocalLoss, OHEMLoss
    from boostloss._kernels import binary as _kernels
    from boostloss._kernels import select as ks
    from boostloss.losses import check_target

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    c.print_machine([f"numba threads: {numba.get_num_threads()}, rows: {args.rows:,}"])

    n = args.rows
    y, x = c.synthetic_margins(n, positive_rate=0.1, seed=0)
    rng = np.random.default_rng(1)
    cases = {
        "mid-training": (x, np.empty(0)),
        "constant start": (np.full(n, np.float32(-math.log(3.0))), np.empty(0)),
        "weighted": (x, rng.lognormal(0.0, 1.0, n)),
    }
    keys = ks.tie_keys(n, 0)
    keep = np.empty(n, dtype=np.uint8)
    grad = np.empty(n, dtype=np.float32)
    hess = np.empty(n, dtype=np.float32)

    rows = []
    for case, (margins, w) in cases.items():
        ks.ohem_select(y, margins, w, 3.0, keys, keep)
        ref_keep = numpy_ohem(y, margins, w, 3.0, keys)[0]
        if not np.array_equal(keep.astype(bool), ref_keep):
            raise SystemExit(f"{case}: numpy and boostloss keep different rows")

        def ohem(margins=margins, w=w):
            ks.ohem_select(y, margins, w, 3.0, keys, keep)
            _kernels.kept_cross_entropy_grad_hess(y, margins, w, keep, grad, hess)

        target = check_target(y, w if w.shape[0] else None)
        ohem_loss, focal_loss = OHEMLoss(ratio=3.0), FocalLoss(gamma=2.0, alpha=0.25)
        state = ohem_loss.new_state()

        def public(loss, state, margins=margins, target=target):
            return lambda: loss.gradient_hessian(
                target,
                margins,
                gradient_out=grad,
                hessian_out=hess,
                n_threads=args.threads,
                state=state,
            )

        contenders = {
            "FocalLoss": public(focal_loss, None),
            "OHEMLoss": public(ohem_loss, state),
            "focal": lambda margins=margins, w=w: _kernels.focal_grad_hess(
                y, margins, w, 2.0, 0.25, 0.75, _kernels.HESSIAN_EXACT, grad, hess
            ),
            "ohem": ohem,
            "ohem select": lambda margins=margins, w=w: ks.ohem_select(
                y, margins, w, 3.0, keys, keep
            ),
            "ohem grad_hess": lambda margins=margins, w=w: _kernels.kept_cross_entropy_grad_hess(
                y, margins, w, keep, grad, hess
            ),
            "numpy": lambda margins=margins, w=w: numpy_ohem(y, margins, w, 3.0, keys),
        }
        times = c.alternate(contenders, args.repeats)
        focal = c.median(times["focal"])
        for name, ts in times.items():
            med = c.median(ts)
            rows.append([case, name, c.fmt_time(med), f"{med / focal:6.2f}x"])
        ratio = c.median(times["OHEMLoss"]) / c.median(times["FocalLoss"])
        rows.append([case, "OHEMLoss / FocalLoss", "", f"{ratio:6.2f}x"])
        rows.append(["", "", "", ""])
    rows.extend(multiclass_rows(args, c))
    c.print_table(["margins", "contender", "median", "vs focal"], rows)


def multiclass_rows(args, c, k_classes=4):
    """Multi-class OHEM (background class 0) next to the softmax focal loss, public path."""
    from boostloss import FocalLoss, OHEMLoss
    from boostloss.losses import check_target

    rng = np.random.default_rng(2)
    n = args.rows
    y = rng.choice(k_classes, n, p=[0.9] + [0.1 / (k_classes - 1)] * (k_classes - 1))
    x = rng.normal(0.0, 1.5, (n, k_classes)).astype(np.float32)
    target = check_target(y.astype(np.float64))
    grad = np.empty((n, k_classes), dtype=np.float32)
    hess = np.empty((n, k_classes), dtype=np.float32)
    ohem, focal = OHEMLoss(negative_class=0), FocalLoss(gamma=2.0, alpha=None)
    state = ohem.new_state()

    def public(loss, state):
        return lambda: loss.gradient_hessian(
            target, x, gradient_out=grad, hessian_out=hess, n_threads=args.threads, state=state
        )

    times = c.alternate(
        {"FocalLoss": public(focal, None), "OHEMLoss": public(ohem, state)}, args.repeats
    )
    case = f"{k_classes} classes"
    focal_time = c.median(times["FocalLoss"])
    out = [["", "", "", ""]]
    for name, ts in times.items():
        med = c.median(ts)
        out.append([case, name, c.fmt_time(med), f"{med / focal_time:6.2f}x"])
    return out


if __name__ == "__main__":
    main()
