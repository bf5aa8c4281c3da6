"""The figure of ``boostloss compare --plot``: precision-recall curves, reliability diagrams and
gradient-norm histograms.

Drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot, no global backend state), so it works
headless and inside other programs.
"""

import numpy as np

__all__ = ["GRADIENT_NORM_BINS", "plot_rounds", "draw_compare_figure"]

#: Bin edges of the gradient-norm histograms (20 bins over [0, 1]).
GRADIENT_NORM_BINS = np.linspace(0.0, 1.0, 21)

_LINESTYLES = ("-", "--", "-.", ":")


def plot_rounds(rounds):
    """The boosting rounds at which gradient norms are shown: 1, ~10%, ~50% and all of them."""
    picks = {1, max(1, round(rounds / 10)), max(1, round(rounds / 2)), rounds}
    return sorted(picks)


def draw_compare_figure(
    y, oof_proba, staged, backend_for_norms, labels, rarest=None, oof_posterior=None, scores=()
):
    """Build the comparison figure.

    Parameters
    ----------
    y : ndarray of shape (n,)
        0/1 labels of the whole dataset (class indices 0..K-1 on a multi-class task).
    oof_proba : dict
        ``(backend, loss) -> out-of-fold probabilities`` (shape (n,), or (n, K) multi-class).
    staged : dict
        ``loss -> (y_train, {round: probabilities on the training rows})`` for the first fold of
        ``backend_for_norms``; a loss whose staged predictions are unavailable is left out.
    backend_for_norms : str
        The backend the histograms come from (for the titles).
    labels : dict
        ``loss -> label`` for legends and titles.
    rarest : (int, str), optional
        Multi-class: the index and label of the rarest class. The precision-recall panels are
        then its one-vs-rest curves (the class an imbalance loss is for), and the gradient norm
        is GHM-C's ``g = 1 - p_y`` of the softmax.
    oof_posterior : dict, optional
        ``(backend, loss) -> out-of-fold posterior`` (same shapes) for the reliability diagrams;
        None: ``oof_proba``.
    scores : collection of str
        Losses whose probabilities are scores, not posteriors (drawn dashed, "score" in the
        legend).

    Returns
    -------
    matplotlib.figure.Figure
        Top row, per backend: a precision-recall panel (out-of-fold predictions, AP in the
        legend) and beside it a reliability diagram (out-of-fold posteriors in
        :data:`~boostloss.compare.scoring.ECE_BINS` equal-width bins: mean predicted probability
        against the observed rate, ECE in the legend; the top label on K classes). Bottom row:
        per loss, histograms of the gradient norm ``g = |p - y|`` on the training rows after a
        few boosting rounds (log scale; the U shape of the GHM paper).
    """
    from matplotlib.figure import Figure

    y_all = np.asarray(y)
    oof_posterior = oof_proba if oof_posterior is None else oof_posterior
    if rarest is not None:
        index, label = rarest
        oof_proba = {key: proba[:, index] for key, proba in oof_proba.items()}
        staged = {
            loss: (y_train, {k: _true_class_norm(y_train, p) for k, p in by_round.items()})
            for loss, (y_train, by_round) in staged.items()
        }
        y = (np.asarray(y) == index).astype(np.int8)
    backends = list(dict.fromkeys(b for b, _ in oof_proba))
    ncols = max(2 * len(backends), len(staged), 1)
    nrows = 2 if staged else 1
    fig = Figure(figsize=(4.2 * ncols, 3.8 * nrows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    for i, backend in enumerate(backends):
        _draw_precision_recall(
            axes[0, 2 * i],
            y,
            oof_proba,
            backend,
            labels,
            None if rarest is None else f"class {rarest[1]!r} vs rest",
        )
        _draw_reliability(
            axes[0, 2 * i + 1],
            y_all,
            oof_posterior,
            backend,
            labels,
            scores,
            top_label=rarest is not None,
        )
    for col in range(2 * len(backends), ncols):
        axes[0, col].set_axis_off()
    if staged:
        for col, (loss, (y_train, by_round)) in enumerate(staged.items()):
            title = f"{labels[loss]}\n{backend_for_norms}, fold-1 training rows"
            _draw_gradient_norms(axes[1, col], y_train, by_round, title, norms=rarest is not None)
        for col in range(len(staged), ncols):
            axes[1, col].set_axis_off()
    return fig


def _true_class_norm(y_train, proba):
    """GHM-C's gradient norm of the softmax, ``1 - p_y``, per row."""
    return 1.0 - proba[np.arange(proba.shape[0]), np.asarray(y_train, dtype=np.int64)]


def _draw_precision_recall(ax, y, oof_proba, backend, labels, which=None):
    """One backend's precision-recall curves, one per loss, with the prevalence as a baseline."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    prevalence = float(np.mean(y))
    for (b, loss), proba in oof_proba.items():
        if b != backend:
            continue
        precision, recall, _ = precision_recall_curve(y, proba)
        ap = average_precision_score(y, proba)
        ax.step(recall, precision, where="post", label=f"{labels[loss]} (AP {ap:.3f})")
    ax.axhline(prevalence, color="grey", lw=0.8, ls=":", label=f"prevalence {prevalence:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    what = "" if which is None else f", {which}"
    ax.set_title(f"{backend}: precision-recall{what}\n(out-of-fold predictions)", fontsize="medium")
    ax.legend(fontsize="x-small", loc="lower left")


def _draw_reliability(ax, y, oof_posterior, backend, labels, scores, top_label=False):
    """One backend's reliability diagrams, one per loss: per non-empty bin, the mean predicted
    probability against the observed rate (marker area: the bin's rows), with the diagonal."""
    from .scoring import ECE_BINS, calibration_bins, expected_calibration_error

    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="calibrated")
    for (b, loss), posterior in oof_posterior.items():
        if b != backend:
            continue
        predicted, observed, counts = calibration_bins(y, posterior)
        ece = expected_calibration_error(y, posterior)
        score = loss in scores
        (line,) = ax.plot(
            predicted,
            observed,
            ls="--" if score else "-",
            lw=1.0,
            alpha=0.85,
            label=f"{labels[loss]}{' (score)' if score else ''} (ECE {ece:.3f})",
        )
        ax.scatter(
            predicted,
            observed,
            s=6 + 60 * np.sqrt(counts / counts.sum()),
            color=line.get_color(),
            zorder=3,
        )
    if top_label:
        what, xlabel, ylabel = "top label", "mean top-label probability (bin)", "accuracy (bin)"
    else:
        what, xlabel, ylabel = (
            "positive class",
            "mean predicted probability (bin)",
            "observed rate (bin)",
        )
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel)
    ax.set_title(
        f"{backend}: reliability, {what}\n(out-of-fold posteriors pooled, {ECE_BINS} bins)",
        fontsize="medium",
    )
    ax.legend(fontsize="x-small", loc="lower right")


def _draw_gradient_norms(ax, y_train, by_round, title, norms=False):
    """Histograms of g = |p - y| on the training rows, one per round of ``by_round`` (``norms``:
    ``by_round`` holds the norms themselves)."""
    for i, (k, proba) in enumerate(by_round.items()):
        g = proba if norms else np.abs(proba - y_train)
        ax.hist(
            g,
            bins=GRADIENT_NORM_BINS,
            histtype="step",
            lw=2.2 - 0.4 * (i % 4),
            ls=_LINESTYLES[i % len(_LINESTYLES)],
            weights=np.full(g.shape[0], 1.0 / g.shape[0]),
            label=f"round {k}",
        )
    ax.set_yscale("log")
    xlabel = "gradient norm g = 1 - p_y" if norms else "gradient norm g = |p - y|"
    ax.set(xlim=(0, 1), xlabel=xlabel, ylabel="fraction of samples")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="x-small")
