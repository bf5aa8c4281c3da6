"""Tests of compare on a multi-class target, the OHEM grid of --tune, and tie blocks flagged with
their observed rate."""

import csv
import json

import numpy as np
import pandas as pd
import pytest

from boostloss import compare as cmp
from boostloss.cli import main
from boostloss.compare import diagnostics, report, scoring
from boostloss.compare.protocol import cross_validate, planned_fits, sample_weight

FAST = ["--rounds", "5", "--folds", "2", "--patience", "2", "--quiet"]
LABELS = np.array(["ant", "bee", "cat", "dog"])


@pytest.fixture(autouse=True)
def _piped_width(monkeypatch):
    """The output as piped without COLUMNS (170 columns), whatever the shell exports; a test
    that sets COLUMNS itself checks the narrow layouts."""
    monkeypatch.delenv("COLUMNS", raising=False)


def _four_classes(n=160, seed=0):
    """Features that separate 4 imbalanced classes (55/25/12/8%) only partly."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=[0.55, 0.25, 0.12, 0.08])
    y[:4] = [0, 1, 2, 3]  # every class present whatever the seed
    X = rng.normal(size=(n, 3)) + np.eye(4)[y][:, :3] * 1.5
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["label"] = LABELS[y]
    return frame, y


@pytest.fixture(scope="module")
def four_class_csv(tmp_path_factory):
    frame, _ = _four_classes()
    path = tmp_path_factory.mktemp("mc") / "four.csv"
    frame.to_csv(path, index=False)
    return path


# -- the data ---------------------------------------------------------------------------------


def test_a_target_with_three_or_more_values_is_multiclass(four_class_csv):
    dataset = cmp.load_table(four_class_csv, "label")
    _, y = _four_classes()
    assert dataset.classes == list(LABELS) and dataset.n_classes == 4
    np.testing.assert_array_equal(dataset.y, y)
    assert dataset.class_counts.tolist() == np.bincount(y).tolist()
    assert dataset.rarest_class == int(np.argmin(np.bincount(y)))
    # With --positive it stays one class against the rest, as before.
    binary = cmp.load_table(four_class_csv, "label", positive="cat")
    assert binary.classes is None and binary.n_classes == 2
    np.testing.assert_array_equal(binary.y, (y == 2).astype(np.int8))


def test_rare_classes_are_merged_only_when_asked(tmp_path):
    frame = pd.DataFrame(
        {"a": np.arange(40.0), "y": ["x"] * 20 + ["y"] * 14 + ["p"] * 3 + ["q"] * 3}
    )
    path = tmp_path / "rare.csv"
    frame.to_csv(path, index=False)
    dataset = cmp.load_table(path, "y")
    assert dataset.classes == ["p", "q", "x", "y"]
    with pytest.raises(
        cmp.DataError,
        match=r"2 of 4 classes have fewer rows than the 5 folds "
        r"\('p' 3, 'q' 3\).*--merge-rare N",
    ):
        cmp.check_folds(dataset, 5)
    merged = cmp.load_table(path, "y", merge_rare=5)
    assert merged.classes == ["x", "y", "other (p+q)"]
    assert merged.class_counts.tolist() == [20, 14, 6]
    assert "merged into one: 'p' (3), 'q' (3)" in merged.notes[0]
    cmp.check_folds(merged, 5)  # every class now has a row for each fold


def test_too_few_classes_for_the_folds_is_one_line(tmp_path, capsys):
    frame = pd.DataFrame(
        {"a": np.arange(40.0), "y": ["x"] * 20 + ["y"] * 14 + ["p"] * 3 + ["q"] * 3}
    )
    path = tmp_path / "rare.csv"
    frame.to_csv(path, index=False)
    assert main(["compare", str(path), "--target", "y", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer rows than the 5 folds" in err[0] and "--merge-rare" in err[0]
    # Merging the two rare classes into one leaves 3 classes with at least 5 rows each: it runs.
    assert (
        main(
            [
                "compare",
                str(path),
                "--target",
                "y",
                "--merge-rare",
                "5",
                "--backend",
                "lightgbm",
                "--losses",
                "logistic",
                *FAST,
            ]
        )
        == 0
    )
    assert "merged into one" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["--alpha", "0.25"],
            "--alpha 0.25 is a binary weight; with 4 classes pass --alpha none or --alpha balanced",
        ),
        (["--positive", "cat", "--merge-rare", "3"], "--merge-rare is for a multi-class target"),
    ],
)
def test_multiclass_usage_errors(four_class_csv, capsys, argv, expected):
    assert main(["compare", str(four_class_csv), "--target", "label", *argv, *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_balanced_alpha_needs_a_multiclass_target(capsys):
    assert main(["compare", "--alpha", "balanced", *FAST]) == 2
    assert "--alpha balanced is for a multi-class target" in capsys.readouterr().err


# -- metrics ----------------------------------------------------------------------------------


def _probabilities(n=300, k=4, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=np.r_[0.5, np.full(k - 1, 0.5 / (k - 1))])
    logits = rng.normal(size=(n, k)) + 1.2 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def test_multiclass_metrics_match_scikit_learn():
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    y, proba = _probabilities()
    got = scoring.multiclass_metrics(y, proba, rarest=3)
    per_class_ap = [average_precision_score(y == k, proba[:, k]) for k in range(4)]
    assert got["average_precision"] == pytest.approx(np.mean(per_class_ap), abs=1e-12)
    assert got["rarest_ap"] == pytest.approx(per_class_ap[3], abs=1e-12)
    assert got["roc_auc"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert got["log_loss"] == pytest.approx(log_loss(y, proba), abs=1e-12)
    predicted = proba.argmax(axis=1)
    assert got["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(y, predicted), abs=1e-12
    )
    assert got["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro"), abs=1e-12)
    # The per-round versions early stopping uses agree with the table's.
    assert scoring.make_score("ap")(y, proba) == pytest.approx(got["average_precision"], abs=1e-12)
    assert scoring.make_score("auc")(y, proba) == pytest.approx(got["roc_auc"], abs=1e-12)
    assert scoring.make_score("logloss")(y, proba) == pytest.approx(got["log_loss"], abs=1e-12)


def test_score_reads_multiclass_margins_through_the_softmax():
    y, proba = _probabilities(n=50)
    margins = np.log(proba) + 3.0  # any shift per row gives the same softmax
    score = scoring.make_score("logloss")
    assert score.of_predictions(y, margins, margins=True) == pytest.approx(
        score(y, proba), rel=1e-12
    )
    assert score.of_predictions(y, proba, margins=False) == pytest.approx(
        score(y, proba), rel=1e-12
    )


def test_the_weighted_loss_uses_balanced_sample_weights():
    from sklearn.utils.class_weight import compute_sample_weight

    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    config = cmp.CompareConfig(n_classes=3)
    np.testing.assert_allclose(
        sample_weight("weighted", config, y), compute_sample_weight("balanced", y)
    )
    assert sample_weight("logistic", config, y) is None
    assert (
        sample_weight("weighted", cmp.CompareConfig(), np.array([0, 1, 1])) is None
    )  # binary: spw
    sqrt = cmp.CompareConfig(n_classes=3, pos_weight_power=0.5)
    np.testing.assert_allclose(
        sample_weight("weighted", sqrt, y), np.sqrt(compute_sample_weight("balanced", y))
    )


def test_multiclass_grids_and_rows():
    config = cmp.CompareConfig(n_classes=4, tune=True, alpha=None)
    assert config.grid("focal") == [
        {"gamma": g, "alpha": a} for g in (0.5, 1.0, 2.0, 3.0) for a in (None, "balanced")
    ]
    assert config.grid("ghm") == [
        {"bins": b, "momentum": m} for b in (5, 10, 30) for m in (0.0, 0.75)
    ]
    assert [loss for _, loss in config.configurations()] == [
        "logistic",
        "weighted",
        "focal",
        "ghm",
    ] * 2
    # logistic 1 + weighted 2 + focal 8 + ghm 6 settings, each plus a refit, per backend and fold
    assert planned_fits(config) == 2 * 5 * (2 + 3 + 9 + 7)
    assert (
        config.setting_words("focal", {"gamma": 2.0, "alpha": "balanced"})
        == "gamma=2 alpha=balanced"
    )
    assert any(
        "no row for OHEM" in line and "binary only" in line for line in config.absent_lines()
    )


# -- end to end -------------------------------------------------------------------------------


def test_multiclass_compare_end_to_end(four_class_csv, tmp_path, capsys):
    out_json, out_csv, plot = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "p.png"
    argv = ["compare", str(four_class_csv), "--target", "label", *FAST]
    assert main([*argv, "--output", str(out_json), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    flat = " ".join(printed.split())
    for text in (
        "4 classes (ant",
        "Verdict",
        "no row for OHEM (ratio 3): binary only",
        "AP rarest = AP of class 'dog'",
    ):
        assert text in flat, text
    for header in ("macro", "AP", "rarest", "AUC", "ECE", "bal.", "acc.", "F1"):  # headers may wrap
        assert header in printed.split(), header
    doc = json.loads(out_json.read_text())
    _, y = _four_classes()
    assert doc["dataset"]["classes"] == {
        label: int(c) for label, c in zip(LABELS, np.bincount(y), strict=True)
    }
    assert doc["dataset"]["rarest_class"] == "dog" and "positives" not in doc["dataset"]
    assert doc["config"]["n_classes"] == 4 and doc["config"]["alpha"] is None
    assert {r["loss"] for r in doc["folds"]} == {"logistic", "weighted", "focal", "ghm"}
    assert len(doc["folds"]) == 2 * 4 * 2
    for record in doc["folds"]:
        for key in (
            "average_precision",
            "rarest_ap",
            "roc_auc",
            "balanced_accuracy",
            "macro_f1",
            "ece",
        ):
            assert 0.0 <= record[key] <= 1.0, key
        assert record["log_loss"] > 0.0 and "brier" not in record
        assert record["n_train"] + record["n_test"] == 160
    assert {row["probability"] for row in doc["summary"] if row["loss"] == "ghm"} == {"score"}
    assert all({"ece_mean", "ece_std"} <= set(row) for row in doc["summary"])
    assert set(doc["verdict"]) == {"xgboost", "lightgbm"}
    for v in doc["verdict"].values():
        assert v["metric"] == "ap" and v["baseline"] == "logistic" and v["larger_is_better"]
        assert isinstance(v["clearly_better"], bool) and v["pairs"] == 2
    assert plot.stat().st_size > 0

    assert (
        main(
            [
                *argv,
                "--backend",
                "lightgbm",
                "--losses",
                "logistic,weighted",
                "--output",
                str(out_csv),
            ]
        )
        == 0
    )
    with out_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 and {"rarest_ap", "macro_f1", "balanced_accuracy", "ece"} <= set(
        rows[0]
    )


@pytest.mark.parametrize("columns", [100, 80])
def test_multiclass_output_fits_the_terminal_width(four_class_csv, capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["compare", str(four_class_csv), "--target", "label", *FAST]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= columns
    tokens = set(out.split())
    for header in ("macro", "AP", "rarest", "AUC", "ECE", "bal.", "F1", "rounds", "flags"):
        assert header in tokens, header
    assert "S:" in tokens  # GHM-C's probabilities are a score, said once under the table


def test_weighted_multiclass_posterior_undoes_the_balanced_weights(four_class_csv):
    from scipy.special import softmax

    from boostloss.compare.protocol import _predictions, class_weights, make_estimator
    from boostloss.compare.registry import BACKENDS

    dataset = cmp.load_table(four_class_csv, "label")
    config = cmp.CompareConfig(rounds=10).for_dataset(dataset)
    X, y = dataset.X, dataset.y
    weights = class_weights("weighted", config, y)
    np.testing.assert_allclose(weights, len(y) / (4 * np.bincount(y)))
    for backend in BACKENDS:
        estimator = make_estimator(backend, "weighted", config, y)
        estimator.fit(X, y, sample_weight=sample_weight("weighted", config, y))
        proba, posterior = _predictions(estimator, backend, X, weights, multiclass=True)
        margins = BACKENDS[backend].margins(estimator, X)
        np.testing.assert_allclose(
            posterior, softmax(margins - np.log(weights), axis=1), rtol=1e-12, atol=1e-15
        )
        np.testing.assert_allclose(proba, estimator.predict_proba(X), rtol=0, atol=0)
        # The rare classes lose the probability the weights gave them, the common one gains it.
        assert (
            posterior[:, 0].mean() > proba[:, 0].mean()
            and posterior[:, 3].mean() < proba[:, 3].mean()
        )
        # AP, AUC and the argmax columns read the model's own probabilities; log loss and ECE the
        # posterior.
        metrics = scoring.multiclass_metrics(y, proba, 3, posterior)
        on_proba, on_posterior = (
            scoring.multiclass_metrics(y, proba, 3),
            scoring.multiclass_metrics(y, posterior, 3),
        )
        for key in ("average_precision", "rarest_ap", "roc_auc", "balanced_accuracy", "macro_f1"):
            assert metrics[key] == on_proba[key]
        assert (
            metrics["log_loss"] == on_posterior["log_loss"]
            and metrics["ece"] == on_posterior["ece"]
        )


def test_multiclass_tune_records_the_chosen_settings(four_class_csv):
    dataset = cmp.load_table(four_class_csv, "label")
    config = cmp.CompareConfig(
        backends=("lightgbm",),
        losses=("logistic", "focal"),
        folds=2,
        rounds=4,
        patience=2,
        tune=True,
        alpha=None,
    ).for_dataset(dataset)
    result = cross_validate(dataset, config)
    focal = [r for r in result.records if r["loss"] == "focal"]
    assert all(r["settings"] in config.grid("focal") for r in focal)
    assert result.oof_proba[("lightgbm", "focal")].shape == (160, 4)


# -- OHEM's grid ------------------------------------------------------------------------------


def test_tune_tries_ohems_ratios(tmp_path):
    config = cmp.CompareConfig(
        backends=("lightgbm",),
        losses=("logistic", "ohem"),
        folds=2,
        rounds=4,
        patience=2,
        tune=True,
    )
    assert config.grid("ohem") == [{"ohem_ratio": r} for r in (1.0, 3.0, 10.0)]
    assert config.loss_label("ohem") == "OHEM (tuned)"
    assert cmp.CompareConfig(ohem_ratio=10.0).loss_label("ohem") == "OHEM (ratio 10)"
    progress = []
    records = cross_validate(cmp.load_default_dataset(), config, on_fit=progress.append).records
    assert any("ohem fold 1: ratio=10 (3/3)" in line for line in progress)
    ohem = [r for r in records if r["loss"] == "ohem"]
    assert all(r["setting"] in ("ratio=1", "ratio=3", "ratio=10") for r in ohem)
    assert config.as_dict()["ohem_ratio"] == 3.0
    assert "ohem_ratio" not in cmp.CompareConfig(losses=("logistic",)).as_dict()


# -- tie blocks -------------------------------------------------------------------------------


def test_every_tie_block_is_recorded_and_flagged_with_its_rate():
    y = np.array([0] * 19 + [1] + [0] * 10 + [1] * 10 + [0] * 60)
    proba = np.r_[np.full(20, 0.05), np.full(20, 0.5), np.linspace(0.01, 0.2, 60)]
    blocks = diagnostics.tie_blocks(y, proba)
    assert [(b["rows"], b["value"], b["miscalibrated"]) for b in blocks] == [
        (20, 0.05, False),
        (20, 0.5, False),
    ]
    assert blocks[0]["positive_rate"] == pytest.approx(0.05)
    records = [
        {
            "backend": "xgboost",
            "loss": "logistic",
            "repeat": 0,
            "fold": 0,
            "degenerate": None,
            "tie_block": blocks[0],
            "tie_blocks": blocks,
        }
    ]
    config = cmp.CompareConfig(backends=("xgboost",), losses=("logistic",))
    assert report.flag_lines(records, config) == []  # nothing miscalibrated: no warning line
    # The blocks that fit their rate are kept for the JSON, not printed or flagged.
    lines = report.tie_lines(records, config)
    assert lines == [
        "xgboost logistic has a tie block on 1 of 1 folds, its probability within the "
        "observed rate: on fold 1, 20 held-out rows (20% of rows at p = 0.05, 5.0% positive)"
    ]
    row = report.summarize([{**records[0], "average_precision": 0.5}])[0]
    assert row["any_tie_block_folds"] == 1 and row["tie_block_folds"] == 0
    assert report.flag_codes(row) == [] and report.flag_legend([row]) == ""


def test_multiclass_tie_blocks_are_judged_on_their_most_probable_class():
    y = np.array([2] * 10 + [0] * 10 + [1] * 20)
    shared = np.array([0.1, 0.2, 0.7])
    others = np.random.default_rng(0).dirichlet(np.ones(3), size=20)
    proba = np.vstack([np.tile(shared, (20, 1)), others])
    block = diagnostics.tie_block(y, proba)
    assert (
        block["class"] == 2 and block["rows"] == 20 and block["positive_rate"] == pytest.approx(0.5)
    )
    assert block["value"] == pytest.approx(0.7) and not block["miscalibrated"]
    assert (
        diagnostics.tie_block(y, np.tile(shared, (40, 1))) is None
    )  # constant: degenerate instead
    assert diagnostics.degenerate_reason(y, np.tile(shared, (40, 1))).startswith("constant model")


# -- worker processes -------------------------------------------------------------------------


def test_jobs_give_the_same_results_in_worker_processes():
    dataset = cmp.load_default_dataset()
    config = cmp.CompareConfig(
        backends=("lightgbm",), losses=("logistic", "focal"), folds=2, rounds=6, patience=2
    )
    progress = []
    serial = cross_validate(dataset, config).records
    parallel = cross_validate(
        dataset, cmp.CompareConfig(**{**vars(config), "jobs": 2}), on_fit=progress.append
    ).records
    assert len(progress) == planned_fits(config)
    drop = ("fit_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in parallel] == [
        {k: v for k, v in r.items() if k not in drop} for r in serial
    ]
    assert (
        cmp.CompareConfig(jobs=2).as_dict()["jobs"] == 2
        and "jobs" not in cmp.CompareConfig().as_dict()
    )
