"""``boostloss compare`` on every real dataset, with the results tables written into docs/real-data.md.

Usage::

    python benchmarks/real_data.py                  # all datasets, prints and updates docs/real-data.md
    python benchmarks/real_data.py --no-docs        # print only
    python benchmarks/real_data.py --datasets yeast_me2,abalone_19 --rounds 50 --output r.json

Every dataset in ``$BOOSTLOSS_DATASETS`` (default ``../shared/datasets``) goes through the same
5-fold stratified cross-validation as ``boostloss compare`` with its defaults (200 rounds, learning
rate 0.1, focal gamma=2 alpha=0.25, GHM-C 10 bins, every other parameter the backends' default),
with two dataset-specific steps:

- ``bank_marketing``: the ``duration`` column is dropped (it is only known after the call and leaks
  the label) and ``unknown`` is read as a missing value.
- ``covertype_cottonwood`` (286,048 rows): a stratified random subsample of 60,000 rows (seed 0,
  same positive rate), to keep the whole run within minutes.

The part of ``docs/real-data.md`` between ``<!-- real-data:start -->`` and ``<!-- real-data:end -->``
is replaced; the text around the markers (how to read the tables) is kept.
"""

import argparse
import datetime
import json
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostloss import compare as cmp  # noqa: E402

START = "<!-- real-data:start -->"
END = "<!-- real-data:end -->"
#: The page whose block between START and END the run rewrites.
PAGE = ROOT / "docs" / "real-data.md"

#: Per-dataset options of :func:`boostloss.compare.load_table`.
DATASET_OPTIONS = {
    "bank_marketing": {"drop": ["duration"], "na_values": ["unknown"]},
    "covertype_cottonwood": {"max_rows": 60_000},
}

_TABLES = [
    ("average_precision", "Average precision (higher is better)", 3),
    ("roc_auc", "ROC-AUC (higher is better)", 4),
    ("log_loss", "Log loss of the probabilities (lower is better)", 4),
    ("brier", "Brier score (lower is better)", 4),
    ("fit_seconds", "Fit time per fold, seconds (wall clock, one thread per model; noisy on a shared machine)", 2),
]


def datasets_dir():
    return pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets"))


def run(names, config, quiet=False):
    """Cross-validate every dataset of ``names``; return ``name -> (dataset, records)``."""
    results = {}
    for name in names:
        path = datasets_dir() / name / "data.csv.gz"
        dataset = cmp.load_table(path, "y", seed=config.seed, **DATASET_OPTIONS.get(name, {}))
        dataset.name = name
        start = time.perf_counter()
        result = cmp.cross_validate(dataset, config)
        seconds = time.perf_counter() - start
        if not quiet:
            print(f"{name}: {dataset.y.shape[0]} rows, {dataset.n_positive} positive, "
                  f"{seconds:.0f} s", flush=True)
        results[name] = (dataset, result.records, seconds)
    return results


def _cell(value, places, bold):
    text = f"{value:.{places}f}"
    return f"**{text}**" if bold else text


def markdown(results, config):
    """The block of docs/real-data.md: settings, one table per metric, and a tally of wins."""
    losses = list(config.losses)
    headers = [config.loss_label(loss) for loss in losses]
    lines = [
        f"{config.folds}-fold stratified cross-validation, {config.rounds} rounds, learning rate "
        f"{config.learning_rate:g}, seed {config.seed}, every other parameter the backends' default; "
        "fold means, the best of each row in bold (compared as shown). "
        f"Run on {datetime.date.today().isoformat()} with `python benchmarks/real_data.py`.",
        "",
    ]
    summaries = {name: cmp.summarize(records) for name, (_, records, _) in results.items()}
    for metric, title, places in _TABLES:
        larger = cmp.METRICS[metric][1]
        lines += [f"**{title}**", "", "| dataset | backend | " + " | ".join(headers) + " |",
                  "|---|---|" + "---:|" * len(losses)]
        for name, rows in summaries.items():
            for backend in config.backends:
                by_loss = {r["loss"]: r[f"{metric}_mean"] for r in rows if r["backend"] == backend}
                shown = {loss: round(by_loss[loss], places) for loss in losses}
                best = max(shown.values()) if larger else min(shown.values())
                cells = [_cell(by_loss[loss], places, shown[loss] == best) for loss in losses]
                lines.append(f"| {name} | {backend} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _tally(results, config)
    sizes = ", ".join(
        f"{name} {dataset.y.shape[0]:,} rows / {dataset.n_positive:,} positive"
        for name, (dataset, _, _) in results.items()
    )
    notes = []
    if "bank_marketing" in results:
        notes.append("bank_marketing without `duration`, `unknown` as missing")
    if "covertype_cottonwood" in results:
        notes.append("covertype_cottonwood a stratified subsample of 60,000 of its 286,048 rows (seed 0)")
    lines += ["", f"Data as used: {sizes}." + (" " + "; ".join(notes) + "." if notes else "")]
    return "\n".join(lines)


def _tally(results, config):
    """How often focal / GHM-C beat the better of the two logistic baselines, per metric.

    The folds are the same for every loss, so each comparison is paired: the per-fold differences
    between the challenger and the baseline with the better fold mean. "Clearly" means the mean
    difference is more than twice its standard error (over the folds).
    """
    baselines = [loss for loss in ("logistic", "weighted") if loss in config.losses]
    challengers = [loss for loss in ("focal", "ghm") if loss in config.losses]
    if not baselines or not challengers:
        return []
    metrics = [m for m, _, _ in _TABLES[:4]]
    counts = {(c, m): [0, 0, 0, 0] for c in challengers for m in metrics}  # better, clearly, clearly worse, n
    for _, records, _ in results.values():
        for backend in config.backends:
            folds = {}
            for r in records:
                if r["backend"] == backend:
                    folds.setdefault(r["loss"], []).append(r)
            for metric in metrics:
                sign = 1.0 if cmp.METRICS[metric][1] else -1.0
                per_loss = {loss: sign * np.array([r[metric] for r in sorted(rs, key=lambda r: r["fold"])])
                            for loss, rs in folds.items()}
                baseline = max(baselines, key=lambda b: per_loss[b].mean())
                for challenger in challengers:
                    diff = per_loss[challenger] - per_loss[baseline]
                    margin = 2.0 * diff.std(ddof=1) / np.sqrt(diff.size)
                    tally = counts[(challenger, metric)]
                    tally[0] += int(diff.mean() > 0)
                    tally[1] += int(diff.mean() > margin)
                    tally[2] += int(diff.mean() < -margin)
                    tally[3] += 1
    lines = [
        "**Does focal or GHM-C beat the better of logistic and weighted logistic?** Counts of "
        "(dataset, backend) pairs; *better*: a better fold mean; *clearly*: the paired per-fold "
        "difference is more than twice its standard error.",
        "",
        "| loss | | " + " | ".join(cmp.METRICS[m][0] for m in metrics) + " |",
        "|---|---|" + "---:|" * len(metrics),
    ]
    for challenger in challengers:
        for i, what in enumerate(("better", "clearly better", "clearly worse")):
            cells = [f"{counts[(challenger, m)][i]} / {counts[(challenger, m)][3]}" for m in metrics]
            label = config.loss_label(challenger) if i == 0 else ""
            lines.append(f"| {label} | {what} | " + " | ".join(cells) + " |")
    return lines


def update_page(block, page=PAGE):
    """Replace the text between the markers of ``page`` (which must exist) with ``block``."""
    text = page.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{page} has no {START} ... {END} markers; add them first")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{START}\n{block}\n{END}{tail}", encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", help="comma-separated names (default: every folder)")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--output", help="also write every fold's results to this JSON file")
    parser.add_argument("--no-docs", "--no-readme", dest="no_docs", action="store_true",
                        help="print only; leave docs/real-data.md alone")
    args = parser.parse_args(argv)
    root = datasets_dir()
    if not root.is_dir():
        raise SystemExit(f"datasets not found at {root} (set BOOSTLOSS_DATASETS)")
    names = (args.datasets.split(",") if args.datasets
             else sorted(p.name for p in root.iterdir() if (p / "data.csv.gz").exists()))
    config = cmp.CompareConfig(rounds=args.rounds, folds=args.folds)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; numpy {np.__version__}")
    start = time.perf_counter()
    results = run(names, config)
    block = markdown(results, config)
    print(block)
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.output:
        document = {name: records for name, (_, records, _) in results.items()}
        pathlib.Path(args.output).write_text(json.dumps(document, indent=1) + "\n")
    if not args.no_docs:
        update_page(block)
        print(f"{PAGE.relative_to(ROOT)} updated")


if __name__ == "__main__":
    main()
