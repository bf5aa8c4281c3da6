"""``boostloss compare``'s fair protocol on every real dataset, with and without ``--tune``; the
tables go into docs/real-data.md.

Usage::

    python benchmarks/real_data.py                      # both protocols, every dataset, the page
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

The multi-class datasets in ``$BOOSTLOSS_DATASETS_MULTICLASS`` (default
``../shared/datasets-multiclass``; skipped, with a line saying so, where absent) go through the
multi-class comparison (softmax logistic, balanced class weights, focal with alpha none, GHM-C;
selection on macro average precision), with ``--merge-rare 10``: classes with fewer than 10 rows
(after subsampling) are merged into one, since a class needs a row in each of the 5 test folds
(ecoli's imL, imS and omL; shuttle's two smallest classes in a subsample).
``--kinds binary,multiclass`` chooses the groups.

The part of ``docs/real-data.md`` between ``<!-- real-data:start -->`` and
``<!-- real-data:end -->`` is replaced by the binary tables, the part between
``<!-- real-data-multiclass:start -->`` and ``<!-- real-data-multiclass:end -->`` by the multi-class
ones; the text around the markers (how to read the tables) is kept.
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
from boostloss.compare.registry import metrics_of  # noqa: E402

#: Kind -> (start marker, end marker) of its block in the page.
MARKERS = {
    "binary": ("<!-- real-data:start -->", "<!-- real-data:end -->"),
    "multiclass": ("<!-- real-data-multiclass:start -->", "<!-- real-data-multiclass:end -->"),
}
START, END = MARKERS["binary"]
#: Multi-class: classes with fewer rows than this (after subsampling) are merged into one.
MERGE_RARE = 10
#: The page whose block between START and END the run rewrites.
PAGE = ROOT / "docs" / "real-data.md"

#: Per-dataset options of :func:`boostloss.compare.load_table`.
DATASET_OPTIONS = {
    "bank_marketing": {"drop": ["duration"], "na_values": ["unknown"]},
}

#: Protocol name -> CompareConfig fields.
PROTOCOLS = {"fair": {}, "tuned": {"tune": True}}

_MULTICLASS_TABLES = [
    ("average_precision", "Macro average precision, one-vs-rest (higher is better)", 3),
    ("rarest_ap", "Average precision of the rarest class (higher is better)", 3),
    ("log_loss", "Log loss of the class posterior (lower is better; GHM-C's is a score's)", 4),
    (
        "ece",
        "Expected calibration error of the posterior, top label, 15 equal-width bins (lower is "
        "better)",
        4,
    ),
    ("balanced_accuracy", "Balanced accuracy of the most probable class (higher is better)", 3),
    ("macro_f1", "Macro F1 of the most probable class (higher is better)", 3),
    (
        "fit_seconds",
        "Time per fold, seconds: early stopping (and tuning) plus the refit (one thread per "
        "model; noisy on a shared machine)",
        2,
    ),
]

_TABLES = [
    ("average_precision", "Average precision (higher is better)", 3),
    ("roc_auc", "ROC-AUC (higher is better)", 4),
    (
        "log_loss",
        "Log loss of the class posterior (lower is better; GHM-C's and OHEM's are a score's)",
        4,
    ),
    ("brier", "Brier score of the class posterior (lower is better)", 4),
    (
        "ece",
        "Expected calibration error of the posterior, 15 equal-width bins (lower is better)",
        4,
    ),
    (
        "fit_seconds",
        "Time per fold, seconds: early stopping (and tuning) plus the refit (one thread per "
        "model; noisy on a shared machine)",
        2,
    ),
]


def datasets_dir(kind="binary"):
    if kind == "multiclass":
        default = ROOT.parent / "shared" / "datasets-multiclass"
        return pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS_MULTICLASS", default))
    return pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets"))


def run_one(name, protocol, max_rows, kind="binary"):
    """Cross-validate one dataset under one protocol; return a JSON-ready result."""
    config = cmp.CompareConfig(**PROTOCOLS[protocol])
    path = datasets_dir(kind) / name / "data.csv.gz"
    options = dict(DATASET_OPTIONS.get(name, {}))
    if kind == "multiclass":
        options["merge_rare"] = MERGE_RARE
    full = cmp.load_table(path, "y", seed=config.seed, **options)
    rows = full.y.shape[0]
    dataset = full
    if rows > max_rows:
        dataset = cmp.load_table(path, "y", seed=config.seed, max_rows=max_rows, **options)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cmp.cross_validate(dataset, config)
    seconds = time.perf_counter() - start
    config = result.config
    out = {
        "dataset": name,
        "kind": kind,
        "protocol": protocol,
        "rows": int(dataset.y.shape[0]),
        "rows_in_file": int(rows),
        "positives": dataset.n_positive if kind == "binary" else None,
        "seconds": seconds,
        "warnings": sorted({str(w.message).splitlines()[0] for w in caught}),
        "config": config.as_dict(),
        "records": result.records,
        "verdict": verdict.verdicts(result.records, config),
        "flags": report.flag_lines(result.records, config),
        "tie_notes": report.tie_lines(result.records, config),
    }
    if kind == "multiclass":
        out.update(
            classes={c: int(n) for c, n in zip(dataset.classes, dataset.class_counts, strict=True)},
            rarest=dataset.classes[dataset.rarest_class],
            notes=dataset.notes,
        )
    return out


def _config_of(result):
    fields = dict(result["config"])
    fields["backends"] = tuple(fields["backends"])
    fields["losses"] = tuple(fields["losses"])
    return cmp.CompareConfig(**fields)


def _cell(value, places, bold):
    text = f"{value:.{places}f}"
    return f"**{text}**" if bold else text


def _tables_of(config):
    return _MULTICLASS_TABLES if config.multiclass else _TABLES


def _shown_losses(config):
    """The losses with a row on some backend."""
    present = {loss for _, loss in config.configurations()}
    return [loss for loss in config.losses if loss in present]


def _metric_tables(results, config):
    losses = _shown_losses(config)
    headers = [config.loss_label(loss) for loss in losses]
    lines = []
    for metric, title, places in _tables_of(config):
        larger = metrics_of(config.multiclass)[metric].larger_is_better
        lines += [
            f"**{title}**",
            "",
            "| dataset | backend | " + " | ".join(headers) + " |",
            "|---|---|" + "---:|" * len(losses),
        ]
        for result in results:
            rows = cmp.summarize(result["records"])
            for backend in config.backends:
                by_loss = {r["loss"]: r[f"{metric}_mean"] for r in rows if r["backend"] == backend}
                shown = {loss: round(value, places) for loss, value in by_loss.items()}
                best = max(shown.values()) if larger else min(shown.values())
                bold = metric != "fit_seconds"
                cells = [
                    _cell(by_loss[loss], places, bold and shown[loss] == best)
                    if loss in by_loss
                    else "–"
                    for loss in losses
                ]
                lines.append(f"| {result['dataset']} | {backend} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _rounds_table(results, config):
    losses = _shown_losses(config)
    lines = [
        "**Rounds chosen by early stopping** (median over folds, min–max)"
        + ("; with the setting most folds chose" if config.tune else ""),
        "",
        "| dataset | backend | " + " | ".join(config.loss_label(loss) for loss in losses) + " |",
        "|---|---|" + "---|" * len(losses),
    ]
    for result in results:
        rows = cmp.summarize(result["records"])
        for backend in config.backends:
            cells = []
            for loss in losses:
                row = next((r for r in rows if r["backend"] == backend and r["loss"] == loss), None)
                if row is None:
                    cells.append("–")
                    continue
                text = f"{row['rounds_median']:g} ({row['rounds_min']}–{row['rounds_max']})"
                if config.tune and row.get("settings") and list(row["settings"]) != [""]:
                    top, count = next(iter(row["settings"].items()))
                    text += f"; {top} ({count}/{row['folds']})"
                cells.append(text)
            lines.append(f"| {result['dataset']} | {backend} | " + " | ".join(cells) + " |")
    return lines + [""]


def _verdict_table(results, config):
    ap = "macro AP" if config.multiclass else "AP"
    lines = [
        f"**Verdict** ({'macro ' if config.multiclass else ''}average precision; paired per-fold "
        f"differences to plain logistic, {verdict.TEST_NAME}; "
        f"*clearly better*: p < {verdict.LEVEL:g})",
        "",
        f"| dataset | backend | best loss | {ap} | {ap} of logistic | difference ± s.e. | p "
        "| clearly better |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for result in results:
        for backend, v in result["verdict"].items():
            if v["best_loss"] == verdict.BASELINE:
                diff, p = "–", "–"
            else:
                diff = f"{v['mean_difference']:+.4f} ± {v['standard_error']:.4f}"
                p = f"{v['p_value']:.2g}"
            lines.append(
                f"| {result['dataset']} | {backend} | {config.loss_label(v['best_loss'])} | "
                f"{v['best_mean']:.3f} | {v['baseline_mean']:.3f} | {diff} | {p} | "
                f"{'yes' if v['clearly_better'] else 'no'} |"
            )
    return lines + [""]


def _tally(results, config):
    """Per loss, in how many (dataset, backend) pairs it is clearly better / worse than logistic."""
    challengers = [loss for loss in _shown_losses(config) if loss != verdict.BASELINE]
    if verdict.BASELINE not in config.losses or not challengers:
        return []
    metrics = [m for m, _, _ in _tables_of(config)[:-1]]
    titles = metrics_of(config.multiclass)
    lines = [
        "**Each loss against plain logistic**, every (dataset, backend) pair: *clearly "
        "better / clearly worse* by the same paired test (p < 0.05), out of the pairs.",
        "",
        "| loss | " + " | ".join(titles[m].title for m in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for loss in challengers:
        cells = []
        for metric in metrics:
            larger = titles[metric].larger_is_better
            better = worse = pairs = 0
            for result in results:
                for backend in config.backends:
                    if not any(
                        r["backend"] == backend and r["loss"] == loss for r in result["records"]
                    ):
                        continue  # a loss of one backend only (goss)
                    diffs, n_train, n_test = verdict.paired_differences(
                        result["records"], backend, loss, verdict.BASELINE, metric
                    )
                    mean, _, p = verdict.corrected_resampled_ttest(diffs, n_train, n_test)
                    pairs += 1
                    if p < verdict.LEVEL:
                        better += int((mean > 0) == larger and mean != 0)
                        worse += int((mean < 0) == larger and mean != 0)
            cells.append(f"{better} / {worse} of {pairs}")
        lines.append(f"| {config.loss_label(loss)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _flags(results):
    """The collapsed folds and the tie blocks off their observed rate (the blocks that fit their
    rate stay in the JSON, as in ``boostloss compare``'s output)."""
    lines = []
    for result in results:
        lines += [f"- {result['dataset']}: {line.lstrip('! ')}" for line in result["flags"]]
    return (
        ["No collapsed fold and no miscalibrated tie block.", ""]
        if not lines
        else [
            "**Flags** (collapsed folds; tie blocks whose shared posterior is outside the z = 3 "
            "Wilson interval of their observed positive rate):",
            "",
        ]
        + lines
        + [""]
    )


def markdown(by_protocol, kind="binary"):
    """A block of docs/real-data.md: per protocol, settings, tables, verdicts and flags."""
    lines = [
        f"Run on {datetime.date.today().isoformat()} with `python benchmarks/real_data.py`; "
        "fold means, the best of each row in bold (compared as shown).",
        "",
    ]
    for protocol, results in by_protocol.items():
        if not results:
            continue
        config = _config_of(results[0])
        for result in results:  # the settings in today's words
            for record in result["records"]:
                record["setting"] = config.setting_words(record["loss"], record["settings"])
        title = {
            "fair": "Fair protocol (the default of `boostloss compare`)",
            "tuned": "Fair protocol with `--tune`",
        }[protocol]
        if kind == "multiclass":
            title = "Multi-class: " + title[0].lower() + title[1:]
        lines += [
            f"### {title}",
            "",
            config.protocol_words().replace(f"{config.n_classes}-class ", "") + ".",
            "",
        ]
        if kind == "multiclass":
            lines += _class_lines(results)
        if config.tune:
            lines += [line + "." for line in report.grid_lines(config)] + [""]
        lines += _verdict_table(results, config)
        lines += _tally(results, config)
        lines += _metric_tables(results, config)
        lines += _rounds_table(results, config)
        lines += _flags(results)
        sizes = []
        for r in results:
            count = (
                f"{r['positives']:,} positive"
                if r.get("kind", "binary") == "binary"
                else f"{len(r['classes'])} classes"
            )
            text = f"{r['dataset']} {r['rows']:,} rows / {count}"
            if r["rows"] < r["rows_in_file"]:
                text += f" (a stratified subsample of its {r['rows_in_file']:,} rows)"
            sizes.append(text)
        total = sum(r["seconds"] for r in results)
        times = ", ".join(f"{r['dataset']} {r['seconds']:.0f} s" for r in results)
        lines += [
            f"Data as used: {', '.join(sizes)}. Run time {total / 60:.0f} min in all ({times}).",
            "",
        ]
    return "\n".join(lines).rstrip()


def _class_lines(results):
    """Multi-class: each dataset's classes as used, and the rarest one."""
    lines = []
    for r in results:
        counts = ", ".join(f"{label} {n:,}" for label, n in r["classes"].items())
        lines.append(f"- {r['dataset']}: {counts}; rarest `{r['rarest']}`")
    return lines + [""]


def update_page(block, page=PAGE, kind="binary"):
    """Replace the text between ``kind``'s markers of ``page`` (which must exist) with ``block``."""
    start, end = MARKERS[kind]
    text = page.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"{page} has no {start} ... {end} markers; add them first")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{start}\n{block}\n{end}{tail}", encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", help="comma-separated names (default: every folder)")
    parser.add_argument(
        "--kinds",
        default="binary,multiclass",
        help="comma-separated: binary, multiclass (default: both)",
    )
    parser.add_argument("--protocols", default="fair,tuned", help="comma-separated: fair, tuned")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=15_000,
        help="subsample larger datasets to this many rows (fair protocol)",
    )
    parser.add_argument(
        "--tune-max-rows",
        type=int,
        default=3_000,
        help="subsample larger datasets to this many rows (tuned protocol)",
    )
    parser.add_argument(
        "--cache",
        help="JSON file of finished (dataset, protocol) results: read "
        "and extended, so an interrupted run resumes",
    )
    parser.add_argument(
        "--no-docs",
        "--no-readme",
        dest="no_docs",
        action="store_true",
        help="print only; leave docs/real-data.md alone",
    )
    args = parser.parse_args(argv)
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    cache_path = pathlib.Path(args.cache) if args.cache else None
    cache = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
    print(
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; numpy {np.__version__}",
        flush=True,
    )
    for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
        root = datasets_dir(kind)
        if not root.is_dir():
            variable = "BOOSTLOSS_DATASETS" + ("_MULTICLASS" if kind == "multiclass" else "")
            print(f"{kind}: no datasets at {root} (set {variable}); skipped", flush=True)
            continue
        present = sorted(p.name for p in root.iterdir() if (p / "data.csv.gz").exists())
        names = [n for n in args.datasets.split(",") if n in present] if args.datasets else present
        if not names:
            continue
        by_protocol = {}
        for protocol in protocols:
            limit = args.tune_max_rows if protocol == "tuned" else args.max_rows
            by_protocol[protocol] = []
            for name in names:
                key = f"{protocol}/{name}" if kind == "binary" else f"{protocol}/{kind}/{name}"
                if key not in cache:
                    cache[key] = run_one(name, protocol, limit, kind)
                    if cache_path:
                        cache_path.write_text(json.dumps(cache) + "\n")
                result = cache[key]
                print(
                    f"{protocol} {name}: {result['rows']} rows, {result['seconds']:.0f} s; "
                    + " ".join(
                        f"{b}: {v['best_loss']} "
                        f"{'clearly' if v['clearly_better'] else 'not clearly'}"
                        for b, v in result["verdict"].items()
                    ),
                    flush=True,
                )
                by_protocol[protocol].append(result)
        block = markdown(by_protocol, kind)
        print(block)
        if not args.no_docs:
            update_page(block, kind=kind)
            print(f"{PAGE.relative_to(ROOT)} updated ({kind})")


if __name__ == "__main__":
    main()
