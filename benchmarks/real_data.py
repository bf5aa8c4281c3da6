"""``boostloss compare``'s fair protocol on every real dataset, with and without ``--tune``; the
tables go into docs/real-data.md.

Usage::

    python benchmarks/real_data.py                      # both protocols, every dataset, updates the page
    python benchmarks/real_data.py --no-docs            # print only
    python benchmarks/real_data.py --datasets yeast_me2,abalone_19 --protocols fair
    python benchmarks/real_data.py --cache r.json       # keep finished datasets in r.json; a rerun
                                                        # with the same file skips them

Every dataset in ``$BOOSTLOSS_DATASETS`` (default ``../shared/datasets``) goes through
``boostloss compare``'s default protocol (5-fold stratified cross-validation; each configuration
early-stopped on average precision on a stratified 20% of its training fold, patience 50, at most
1000 rounds, then refit on the whole training fold; learning rate 0.1; focal gamma=2 alpha=0.25,
GHM-C 10 bins; every other parameter the backends' default), once as is ("fair") and once with
``--tune`` ("tuned"), with dataset-specific steps:

- ``bank_marketing``: the ``duration`` column is dropped (it is only known after the call and leaks
  the label) and ``unknown`` is read as a missing value.
- datasets above ``--max-rows`` rows (fair; default 15,000) or ``--tune-max-rows`` rows (tuned;
  default 3,000) are replaced by a stratified random subsample of that size (seed 0, same positive
  rate), to keep the run within the time of a shared 2-core machine; the page says which.

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
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostloss import compare as cmp  # noqa: E402
from boostloss.compare import report, verdict  # noqa: E402

START = "<!-- real-data:start -->"
END = "<!-- real-data:end -->"
#: The page whose block between START and END the run rewrites.
PAGE = ROOT / "docs" / "real-data.md"

#: Per-dataset options of :func:`boostloss.compare.load_table`.
DATASET_OPTIONS = {
    "bank_marketing": {"drop": ["duration"], "na_values": ["unknown"]},
}

#: Protocol name -> CompareConfig fields.
PROTOCOLS = {"fair": {}, "tuned": {"tune": True}}

_TABLES = [
    ("average_precision", "Average precision (higher is better)", 3),
    ("roc_auc", "ROC-AUC (higher is better)", 4),
    ("log_loss", "Log loss of the probabilities (lower is better)", 4),
    ("brier", "Brier score (lower is better)", 4),
    ("fit_seconds", "Time per fold, seconds: early stopping (and tuning) plus the refit (one thread per "
                    "model; noisy on a shared machine)", 2),
]


def datasets_dir():
    return pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets"))


def run_one(name, protocol, max_rows):
    """Cross-validate one dataset under one protocol; return a JSON-ready result."""
    config = cmp.CompareConfig(**PROTOCOLS[protocol])
    path = datasets_dir() / name / "data.csv.gz"
    full = cmp.load_table(path, "y", seed=config.seed, **DATASET_OPTIONS.get(name, {}))
    rows = full.y.shape[0]
    dataset = full
    if rows > max_rows:
        dataset = cmp.load_table(path, "y", seed=config.seed, max_rows=max_rows,
                                 **DATASET_OPTIONS.get(name, {}))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cmp.cross_validate(dataset, config)
    seconds = time.perf_counter() - start
    return {
        "dataset": name,
        "protocol": protocol,
        "rows": int(dataset.y.shape[0]),
        "rows_in_file": int(rows),
        "positives": dataset.n_positive,
        "seconds": seconds,
        "warnings": sorted({str(w.message).splitlines()[0] for w in caught}),
        "config": config.as_dict(),
        "records": result.records,
        "verdict": verdict.verdicts(result.records, config),
        "flags": report.flag_lines(result.records, config),
    }


def _config_of(result):
    fields = dict(result["config"])
    fields["backends"] = tuple(fields["backends"])
    fields["losses"] = tuple(fields["losses"])
    return cmp.CompareConfig(**fields)


def _cell(value, places, bold):
    text = f"{value:.{places}f}"
    return f"**{text}**" if bold else text


def _metric_tables(results, config):
    losses = list(config.losses)
    headers = [config.loss_label(loss) for loss in losses]
    lines = []
    for metric, title, places in _TABLES:
        larger = cmp.METRICS[metric][1]
        lines += [f"**{title}**", "", "| dataset | backend | " + " | ".join(headers) + " |",
                  "|---|---|" + "---:|" * len(losses)]
        for result in results:
            rows = cmp.summarize(result["records"])
            for backend in config.backends:
                by_loss = {r["loss"]: r[f"{metric}_mean"] for r in rows if r["backend"] == backend}
                shown = {loss: round(by_loss[loss], places) for loss in losses}
                best = max(shown.values()) if larger else min(shown.values())
                bold = metric != "fit_seconds"
                cells = [_cell(by_loss[loss], places, bold and shown[loss] == best) for loss in losses]
                lines.append(f"| {result['dataset']} | {backend} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _rounds_table(results, config):
    losses = list(config.losses)
    lines = ["**Rounds chosen by early stopping** (median over folds, min–max)" +
             ("; with the setting most folds chose" if config.tune else ""), "",
             "| dataset | backend | " + " | ".join(config.loss_label(l) for l in losses) + " |",
             "|---|---|" + "---|" * len(losses)]
    for result in results:
        rows = cmp.summarize(result["records"])
        for backend in config.backends:
            cells = []
            for loss in losses:
                row = next(r for r in rows if r["backend"] == backend and r["loss"] == loss)
                text = f"{row['rounds_median']:g} ({row['rounds_min']}–{row['rounds_max']})"
                if config.tune and row.get("settings") and list(row["settings"]) != [""]:
                    top, count = next(iter(row["settings"].items()))
                    text += f"; {top} ({count}/{row['folds']})"
                cells.append(text)
            lines.append(f"| {result['dataset']} | {backend} | " + " | ".join(cells) + " |")
    return lines + [""]


def _verdict_table(results, config):
    lines = [f"**Verdict** (average precision; paired per-fold differences to plain logistic, "
             f"{verdict.TEST_NAME}; *clearly better*: p < {verdict.LEVEL:g})", "",
             "| dataset | backend | best loss | AP | AP of logistic | difference ± s.e. | p | clearly better |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for result in results:
        for backend, v in result["verdict"].items():
            if v["best_loss"] == verdict.BASELINE:
                diff, p = "–", "–"
            else:
                diff = f"{v['mean_difference']:+.4f} ± {v['standard_error']:.4f}"
                p = f"{v['p_value']:.2g}"
            lines.append(f"| {result['dataset']} | {backend} | {config.loss_label(v['best_loss'])} | "
                         f"{v['best_mean']:.3f} | {v['baseline_mean']:.3f} | {diff} | {p} | "
                         f"{'yes' if v['clearly_better'] else 'no'} |")
    return lines + [""]


def _tally(results, config):
    """Per loss, in how many (dataset, backend) pairs it is clearly better / worse than logistic."""
    challengers = [loss for loss in config.losses if loss != verdict.BASELINE]
    if verdict.BASELINE not in config.losses or not challengers:
        return []
    metrics = [m for m, _, _ in _TABLES[:4]]
    lines = ["**Each loss against plain logistic**, every (dataset, backend) pair: *clearly "
             "better / clearly worse* by the same paired test (p < 0.05), out of the pairs.", "",
             "| loss | " + " | ".join(cmp.METRICS[m][0] for m in metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for loss in challengers:
        cells = []
        for metric in metrics:
            larger = cmp.METRICS[metric][1]
            better = worse = pairs = 0
            for result in results:
                for backend in config.backends:
                    diffs, n_train, n_test = verdict.paired_differences(
                        result["records"], backend, loss, verdict.BASELINE, metric)
                    mean, _, p = verdict.corrected_resampled_ttest(diffs, n_train, n_test)
                    pairs += 1
                    if p < verdict.LEVEL:
                        better += int((mean > 0) == larger and mean != 0)
                        worse += int((mean < 0) == larger and mean != 0)
            cells.append(f"{better} / {worse} of {pairs}")
        lines.append(f"| {config.loss_label(loss)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _flags(results):
    lines = []
    for result in results:
        lines += [f"- {result['dataset']}: {line.lstrip('! ')}" for line in result["flags"]]
    if not lines:
        return ["No collapsed fold and no miscalibrated tie block.", ""]
    return ["**Flags** (collapsed folds; tie blocks whose shared probability is outside the z = 3 "
            "Wilson interval of their observed positive rate):", ""] + lines + [""]


def markdown(by_protocol):
    """The block of docs/real-data.md: per protocol, settings, tables, verdicts and flags."""
    lines = [f"Run on {datetime.date.today().isoformat()} with `python benchmarks/real_data.py`; "
             "fold means, the best of each row in bold (compared as shown).", ""]
    for protocol, results in by_protocol.items():
        if not results:
            continue
        config = _config_of(results[0])
        title = {"fair": "Fair protocol (the default of `boostloss compare`)",
                 "tuned": "Fair protocol with `--tune`"}[protocol]
        lines += [f"### {title}", "", config.protocol_words() + ".", ""]
        if config.tune:
            lines += [line + "." for line in report.grid_lines(config)] + [""]
        lines += _verdict_table(results, config)
        lines += _tally(results, config)
        lines += _metric_tables(results, config)
        lines += _rounds_table(results, config)
        lines += _flags(results)
        sizes = []
        for r in results:
            text = f"{r['dataset']} {r['rows']:,} rows / {r['positives']:,} positive"
            if r["rows"] < r["rows_in_file"]:
                text += f" (a stratified subsample of its {r['rows_in_file']:,} rows)"
            sizes.append(text)
        total = sum(r["seconds"] for r in results)
        times = ", ".join(f"{r['dataset']} {r['seconds']:.0f} s" for r in results)
        lines += [f"Data as used: {', '.join(sizes)}. Run time {total / 60:.0f} min in all ({times}).",
                  ""]
    return "\n".join(lines).rstrip()


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
    parser.add_argument("--protocols", default="fair,tuned", help="comma-separated: fair, tuned")
    parser.add_argument("--max-rows", type=int, default=15_000,
                        help="subsample larger datasets to this many rows (fair protocol)")
    parser.add_argument("--tune-max-rows", type=int, default=3_000,
                        help="subsample larger datasets to this many rows (tuned protocol)")
    parser.add_argument("--cache", help="JSON file of finished (dataset, protocol) results: read "
                                        "and extended, so an interrupted run resumes")
    parser.add_argument("--no-docs", "--no-readme", dest="no_docs", action="store_true",
                        help="print only; leave docs/real-data.md alone")
    args = parser.parse_args(argv)
    root = datasets_dir()
    if not root.is_dir():
        raise SystemExit(f"datasets not found at {root} (set BOOSTLOSS_DATASETS)")
    names = (args.datasets.split(",") if args.datasets
             else sorted(p.name for p in root.iterdir() if (p / "data.csv.gz").exists()))
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    cache_path = pathlib.Path(args.cache) if args.cache else None
    cache = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; numpy {np.__version__}",
          flush=True)
    by_protocol = {}
    for protocol in protocols:
        limit = args.tune_max_rows if protocol == "tuned" else args.max_rows
        by_protocol[protocol] = []
        for name in names:
            key = f"{protocol}/{name}"
            if key not in cache:
                cache[key] = run_one(name, protocol, limit)
                if cache_path:
                    cache_path.write_text(json.dumps(cache) + "\n")
            result = cache[key]
            print(f"{protocol} {name}: {result['rows']} rows, {result['seconds']:.0f} s; "
                  + " ".join(f"{b}: {v['best_loss']} {'clearly' if v['clearly_better'] else 'not clearly'}"
                             for b, v in result["verdict"].items()), flush=True)
            by_protocol[protocol].append(result)
    block = markdown(by_protocol)
    print(block)
    if not args.no_docs:
        update_page(block)
        print(f"{PAGE.relative_to(ROOT)} updated")


if __name__ == "__main__":
    main()
