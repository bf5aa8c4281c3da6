"""Tests of compare's fair protocol: metrics, early stopping, tuning, repeats, the verdict, the
flags, and that no library warning reaches the user."""

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from boostloss import compare as cmp
from boostloss.cli import main
from boostloss.compare import diagnostics, report, scoring, verdict
from boostloss.compare.protocol import cross_validate, make_estimator, planned_fits
from boostloss.compare.registry import BACKENDS, LOSSES

FAST = ["--rounds", "8", "--folds", "2", "--patience", "3", "--quiet"]


@pytest.fixture(autouse=True)
def _piped_width(monkeypatch):
    """The output as piped without COLUMNS (170 columns), whatever the shell exports; a test
    that sets COLUMNS itself checks the narrow layouts."""
    monkeypatch.delenv("COLUMNS", raising=False)


# -- metrics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ties", [False, True])
def test_fast_metrics_match_scikit_learn(ties):
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.1).astype(int)
    proba = rng.random(500) * 0.6 + 0.3 * y
    if ties:
        proba = np.round(proba, 1)  # many tied scores: one threshold each
    assert scoring.average_precision(y, proba) == pytest.approx(
        average_precision_score(y, proba), abs=1e-12
    )
    assert scoring.roc_auc(y, proba) == pytest.approx(roc_auc_score(y, proba), abs=1e-12)
    assert scoring.log_loss(y, proba) == pytest.approx(log_loss(y, proba), abs=1e-12)


def test_score_reads_margins_as_probabilities_after_the_sigmoid():
    score = scoring.make_score("logloss")
    y = np.array([0, 1, 1, 0])
    margins = np.array([-2.0, 0.5, 3.0, 1.0])
    assert score.of_predictions(y, margins, margins=True) == pytest.approx(
        scoring.log_loss(y, 1.0 / (1.0 + np.exp(-margins)))
    )
    assert not score.maximize and scoring.make_score("ap").maximize
    assert score.better(0.1, 0.2) and not score.better(0.2, 0.1) and score.better(5.0, None)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        scoring.make_score("f1")


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("loss", ["logistic", "focal"])
def test_early_stopping_scores_the_probabilities_every_loss_alike(backend, loss):
    # Log loss is not invariant to the sigmoid: the score recorded at the chosen round must be the
    # log loss of the probabilities predict_proba gives with that many trees, for the built-in
    # objective (the backend hands the metric probabilities) and a custom one (raw margins).
    dataset = cmp.load_default_dataset()
    X, y = dataset.X, dataset.y
    train, valid = np.arange(0, 400, 2), np.arange(1, 400, 2)
    config = cmp.CompareConfig(rounds=40)
    estimator = make_estimator(backend, loss, config, y[train])
    # As the protocol builds it: a boostloss loss's metric judges its predict_proba of the margins.
    score = scoring.make_score("logloss").for_model(estimator.get_params().get("loss"))
    rounds = BACKENDS[backend].fit_early_stopped(
        estimator, X.iloc[train], y[train], X.iloc[valid], y[valid], score, 5
    )
    assert 1 <= rounds <= 40
    history = (
        estimator.evals_result()["validation_0"]
        if backend == "xgboost"
        else estimator.evals_result_["valid_0"]
    )["logloss"]
    assert np.argmin(history) + 1 == rounds
    proba = estimator.predict_proba(X.iloc[valid], **BACKENDS[backend].first_trees(rounds))[:, 1]
    assert history[rounds - 1] == pytest.approx(scoring.log_loss(y[valid], proba), rel=1e-5)


# -- the protocol -----------------------------------------------------------------------------


def _small_dataset(n=300, seed=1):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = ((X["a"] + 0.8 * rng.normal(size=n)) > 1.3).astype(np.int8).to_numpy()
    return cmp.Dataset(name="small", X=X, y=y)


def test_early_stopping_picks_rounds_and_refits_with_them():
    dataset = _small_dataset()
    config = cmp.CompareConfig(
        backends=("lightgbm", "xgboost"),
        losses=("logistic", "ghm"),
        folds=3,
        rounds=300,
        patience=10,
    )
    seen = []
    result = cross_validate(dataset, config, on_fit=seen.append, keep_first_fold=True)
    assert len(seen) == planned_fits(config) == 2 * 2 * 3 * 2
    assert sum("refit" in text for text in seen) == 12
    for record in result.records:
        assert 1 <= record["rounds"] < 300  # stopped early, never at the ceiling on this noise
        assert record["validation_score"] is not None and record["settings"] == {}
    first = [r for r in result.records if r["fold"] == 0 and r["repeat"] == 0]
    for record in first:
        estimator = result.first_fold[(record["backend"], record["loss"])]
        assert estimator.get_params()["n_estimators"] == record["rounds"]


def test_no_early_stopping_trains_the_fixed_rounds(tmp_path):
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "compare",
                "--no-early-stopping",
                "--rounds",
                "4",
                "--folds",
                "2",
                "--quiet",
                "--backend",
                "lightgbm",
                "--losses",
                "logistic,focal",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert {r["rounds"] for r in doc["folds"]} == {4}
    assert all(r["validation_score"] is None for r in doc["folds"])
    assert "fixed rounds" in doc["protocol"]["final_model"]


def test_repeats_give_distinct_splits():
    dataset = _small_dataset()
    config = cmp.CompareConfig(
        backends=("lightgbm",), losses=("logistic",), folds=2, repeats=3, rounds=5, patience=2
    )
    records = cross_validate(dataset, config).records
    assert [(r["repeat"], r["fold"]) for r in records] == [
        (i, j) for i in range(3) for j in range(2)
    ]
    assert len({round(r["average_precision"], 12) for r in records}) > 2
    rows = cmp.summarize(records)
    assert rows[0]["folds"] == 6


def test_tune_tries_the_grid_and_records_the_choice(tmp_path, capsys):
    config = cmp.CompareConfig(
        backends=("lightgbm",),
        losses=("logistic", "weighted", "ghm"),
        folds=2,
        rounds=6,
        patience=2,
        tune=True,
    )
    progress = []
    cross_validate(_small_dataset(), config, on_fit=progress.append)
    assert "lightgbm weighted fold 1: spw=sqrt(ratio) (1/2)" in progress
    assert "lightgbm ghm fold 2: bins=30 momentum=0.75 (6/6)" in progress
    assert len(progress) == planned_fits(config) == 2 * ((1 + 1) + (2 + 1) + (6 + 1))

    out = tmp_path / "r.json"
    argv = [
        "compare",
        "--tune",
        "--backend",
        "lightgbm",
        "--losses",
        "logistic,weighted,ghm",
        "--output",
        str(out),
        "--rounds",
        "6",
        "--folds",
        "2",
        "--patience",
        "2",
        "--quiet",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "GHM-C grid (6): bins=5 momentum=0, bins=5 momentum=0.75" in text
    assert "setting (folds)" in text and "lightgbm GHM-C settings by fold: 1: bins=" in text
    doc = json.loads(out.read_text())
    assert doc["protocol"]["tuning_grids"]["weighted"] == [
        {"pos_weight_power": 0.5},
        {"pos_weight_power": 1.0},
    ]
    for record in doc["folds"]:
        if record["loss"] == "ghm":
            assert set(record["settings"]) == {"bins", "momentum"}
            assert (
                record["setting"]
                == f"bins={record['settings']['bins']} momentum={record['settings']['momentum']:g}"
            )
        if record["loss"] == "logistic":
            assert record["settings"] == {} and record["setting"] == ""


def test_grids_are_the_issue_grids():
    focal = LOSSES["focal"].grid
    assert len(focal) == 16
    assert {p["gamma"] for p in focal} == {0.5, 1.0, 2.0, 3.0}
    assert {p["alpha"] for p in focal} == {None, 0.25, 0.5, 0.75}
    assert {(p["bins"], p["momentum"]) for p in LOSSES["ghm"].grid} == {
        (b, m) for b in (5, 10, 30) for m in (0.0, 0.75)
    }
    y = np.array([0] * 16 + [1] * 4)
    for power, expected in ((0.5, 2.0), (1.0, 4.0)):
        config = cmp.CompareConfig(pos_weight_power=power)
        assert (
            make_estimator("xgboost", "weighted", config, y).get_params()["scale_pos_weight"]
            == expected
        )
    assert cmp.CompareConfig().grid("focal") == [{}]
    assert cmp.CompareConfig(tune=True).grid("logistic") == [{}]


def test_inner_split_needs_rows_of_both_classes():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40)})
    y = np.zeros(40, dtype=np.int8)
    y[:2] = 1
    dataset = cmp.Dataset(name="tiny", X=X, y=y)
    config = cmp.CompareConfig(backends=("lightgbm",), losses=("logistic",), folds=2, rounds=3)
    with pytest.raises(cmp.DataError, match="--no-early-stopping"):
        cross_validate(dataset, config)


# -- the verdict ------------------------------------------------------------------------------


def test_corrected_resampled_ttest_by_hand():
    from scipy.stats import t as student_t

    d = np.array([0.02, 0.01, 0.03, 0.015, 0.025])
    mean, se, p = verdict.corrected_resampled_ttest(d, n_train=400, n_test=100)
    expected_se = math.sqrt((1 / 5 + 100 / 400) * d.var(ddof=1))
    assert mean == pytest.approx(0.02) and se == pytest.approx(expected_se)
    assert p == pytest.approx(2 * student_t.sf(0.02 / expected_se, 4))
    naive_se = d.std(ddof=1) / math.sqrt(5)
    assert se > naive_se  # the correction for overlapping training sets widens the error
    assert verdict.corrected_resampled_ttest(np.zeros(5), 4, 1)[2] == 1.0


def _records(values, backend="b"):
    records = []
    for loss, per_fold in values.items():
        for fold, value in enumerate(per_fold):
            records.append(
                {
                    "backend": backend,
                    "loss": loss,
                    "repeat": 0,
                    "fold": fold,
                    "average_precision": value,
                    "log_loss": 1 - value,
                    "roc_auc": value,
                    "n_train": 400,
                    "n_test": 100,
                }
            )
    return records


def test_verdict_says_clearly_better_only_for_a_consistent_gain():
    config = cmp.CompareConfig(backends=("b",), losses=("logistic", "focal", "ghm"), folds=5)
    base = np.array([0.50, 0.60, 0.55, 0.70, 0.65])
    clear = verdict.verdicts(
        _records(
            {"logistic": base, "focal": base + [0.05, 0.06, 0.05, 0.055, 0.06], "ghm": base - 0.1}
        ),
        config,
    )["b"]
    assert clear["best_loss"] == "focal" and clear["clearly_better"] is True
    assert clear["mean_difference"] == pytest.approx(0.055) and clear["p_value"] < 0.05
    assert clear["test"] == verdict.TEST_NAME and clear["pairs"] == 5
    sentence = verdict.verdict_sentence("b", clear, config)
    assert sentence.startswith("b: focal (gamma=2, alpha=0.25) has the best AP")
    assert sentence.endswith("clearly better than plain logistic.")

    noisy = verdict.verdicts(
        _records(
            {"logistic": base, "focal": base + [0.2, -0.15, 0.1, -0.05, 0.0], "ghm": base - 0.1}
        ),
        config,
    )["b"]
    assert noisy["best_loss"] == "focal" and noisy["clearly_better"] is False
    assert "not clearly better" in verdict.verdict_sentence("b", noisy, config)

    same = verdict.verdicts(
        _records({"logistic": base, "focal": base - 0.01, "ghm": base - 0.1}), config
    )["b"]
    assert same["best_loss"] == "logistic" and same["clearly_better"] is False
    assert "plain logistic loss has the best AP" in verdict.verdict_sentence("b", same, config)

    # Log loss: smaller is better, so the same gain reads as a negative difference.
    ll = cmp.CompareConfig(backends=("b",), losses=("logistic", "focal"), metric="logloss")
    v = verdict.verdicts(
        _records({"logistic": base, "focal": base + [0.05, 0.06, 0.05, 0.055, 0.06]}), ll
    )["b"]
    assert v["best_loss"] == "focal" and v["mean_difference"] < 0 and v["clearly_better"]
    assert v["larger_is_better"] is False


def test_verdict_without_logistic_says_what_to_add():
    config = cmp.CompareConfig(backends=("b",), losses=("focal", "ghm"))
    v = verdict.verdicts(_records({"focal": [0.5, 0.6], "ghm": [0.4, 0.5]}), config)["b"]
    assert v["baseline"] is None and not v["clearly_better"]
    assert "add logistic to --losses" in verdict.verdict_sentence("b", v, config)


def test_cli_prints_and_writes_the_verdict(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["compare", "--losses", "logistic,focal", "--output", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "Verdict (average precision, Nadeau-Bengio corrected resampled t-test" in text
    assert text.count("than plain logistic") + text.count("no other loss beats it") == 2
    doc = json.loads(out.read_text())
    assert set(doc["verdict"]) == {"xgboost", "lightgbm"}
    for v in doc["verdict"].values():
        assert {
            "best_loss",
            "metric",
            "mean_difference",
            "standard_error",
            "p_value",
            "clearly_better",
        } <= set(v)
        assert isinstance(v["clearly_better"], bool) and v["metric"] == "ap"
    assert all("rounds" in r and "tie_block" in r and "degenerate" in r for r in doc["folds"])


# -- flags ------------------------------------------------------------------------------------


def test_degenerate_folds():
    y = np.array([0] * 90 + [1] * 10)
    assert diagnostics.degenerate_reason(y, np.full(100, 0.1)).startswith("constant model")
    rng = np.random.default_rng(0)
    spread = np.zeros(100, dtype=int)
    spread[5::10] = 1  # positives evenly through the ranking
    assert diagnostics.degenerate_reason(spread, np.linspace(0.01, 0.99, 100)).startswith(
        "ranks at chance"
    )
    good = np.where(y == 1, 0.9, 0.1) + rng.normal(scale=0.01, size=100)
    assert diagnostics.degenerate_reason(y, good) is None


def test_tie_blocks_and_their_calibration():
    y = np.array([1] * 2 + [0] * 38 + [1] * 20 + [0] * 40)
    proba = np.r_[np.full(40, 0.45), np.linspace(0.2, 0.9, 60)]
    block = diagnostics.tie_block(y, proba)
    assert block["rows"] == 40 and block["share"] == pytest.approx(0.4)
    assert block["positive_rate"] == pytest.approx(0.05) and block["miscalibrated"] is True
    calibrated = diagnostics.tie_block(y, np.r_[np.full(40, 0.05), np.linspace(0.2, 0.9, 60)])
    assert calibrated["miscalibrated"] is False
    assert diagnostics.tie_block(y, np.linspace(0, 1, 100)) is None  # no value shared
    assert diagnostics.tie_block(y, np.full(100, 0.3)) is None  # constant: degenerate instead
    low, high = diagnostics.wilson_interval(2, 40)
    assert low < 0.05 < high


def test_flag_lines_name_the_configuration():
    config = cmp.CompareConfig(backends=("lightgbm",), losses=("weighted", "ghm"))
    records = [
        {
            "backend": "lightgbm",
            "loss": "weighted",
            "repeat": 0,
            "fold": 2,
            "degenerate": "constant model (p = 0.5 for every row)",
            "tie_block": None,
        },
        {
            "backend": "lightgbm",
            "loss": "ghm",
            "repeat": 0,
            "fold": 0,
            "degenerate": None,
            "tie_block": {
                "value": 0.465,
                "rows": 300,
                "share": 0.3,
                "positive_rate": 0.004,
                "miscalibrated": True,
            },
        },
    ]
    lines = report.flag_lines(records, config)
    assert lines[0] == (
        "! lightgbm weighted logistic collapsed on fold 3 of 1: constant model "
        "(p = 0.5 for every row)"
    )
    assert lines[1].startswith("! lightgbm GHM-C (10 bins) predicts one probability for a block")
    assert "300 held-out rows (30%) share p = 0.465 while 0.4% of them are positive" in lines[1]


# -- no warning reaches the user --------------------------------------------------------------


@pytest.fixture(scope="module")
def big_mixed_csv(tmp_path_factory):
    """100,000 rows; column 'code' holds integers for 90% of the file, then text codes."""
    n = 100_000
    rng = np.random.default_rng(0)
    code = np.where(
        np.arange(n) < 90_000,
        rng.integers(0, 50, n).astype(str),
        np.char.add("X", rng.integers(0, 5, n).astype(str)),
    )
    x = rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "code": code, "y": (x + rng.normal(size=n) > 2).astype(int)})
    path = tmp_path_factory.mktemp("big") / "big.csv"
    frame.to_csv(path, index=False)
    return path


def test_mixed_column_is_read_whole_without_a_warning(big_mixed_csv):
    # pandas' chunked reader would warn (DtypeWarning) and type the column per chunk.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = cmp.load_table(big_mixed_csv, "y")
        second = cmp.load_table(big_mixed_csv, "y")
    codes = first.X["code"]
    assert isinstance(codes.dtype, pd.CategoricalDtype)
    assert set(codes.cat.categories) == {str(i) for i in range(50)} | {f"X{i}" for i in range(5)}
    pd.testing.assert_frame_equal(first.X, second.X)
    assert first.notes == []  # 10% text codes: a categorical column, not numbers with a few typos


def test_mostly_numeric_column_gets_a_note(tmp_path):
    frame = pd.DataFrame({"x": [str(v) for v in range(200)], "y": [0, 1] * 100})
    frame.loc[5, "x"] = "?"
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    notes = cmp.load_table(path, "y").notes
    assert (
        len(notes) == 1
        and "column 'x' holds numbers but 1 of 200 values are not (e.g. '?')" in notes[0]
    )
    assert cmp.load_table(path, "y", na_values=["?"]).notes == []


def test_cli_on_the_big_csv_prints_no_warning(big_mixed_csv):
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::Warning",
            "-m",
            "boostloss.cli",
            "compare",
            str(big_mixed_csv),
            "--target",
            "y",
            "--max-rows",
            "3000",
            "--backend",
            "lightgbm",
            "--losses",
            "logistic,focal",
            *FAST,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Warning" not in proc.stdout and "site-packages" not in proc.stdout
    assert "Verdict" in proc.stdout


def test_library_warnings_become_one_line_each(monkeypatch, capsys):
    import boostloss.cli as cli
    from boostloss.compare import protocol

    real = protocol._fold_metrics

    def warning_metrics(y_true, proba, posterior):
        warnings.warn("y_pred contains classes not in y_true", UserWarning, stacklevel=2)
        return real(y_true, proba, posterior)

    monkeypatch.setattr(protocol, "_fold_metrics", warning_metrics)
    assert cli.main(["compare", "--backend", "lightgbm", "--losses", "logistic", *FAST]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "boostloss compare: note: python warned (2 times): y_pred contains classes not in y_true"
    ]


def test_a_loss_absent_on_a_backend_leaves_no_warning():
    """GOSS has no XGBoost row: the verdict skips it instead of averaging nothing."""
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::Warning",
            "-m",
            "boostloss.cli",
            "compare",
            "--backend",
            "xgboost",
            "--losses",
            "logistic,goss",
            "--quiet",
            *FAST,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "no xgboost row for logistic + GOSS" in proc.stdout
    assert "the plain logistic loss has the best" in proc.stdout


# -- calibration: the expected calibration error ----------------------------------------------


def test_expected_calibration_error_by_hand():
    # 15 equal-width bins, bin m = floor(15 p) (p = 1 in the last). Bin 0 holds 0.02 and 0.06
    # (mean 0.04, 1 positive of 2: |0.04 - 0.5| = 0.46), bin 7 holds 0.5 twice (0 positive of 2:
    # 0.5), bin 14 holds 0.97 and 1.0 (2 of 2 positive: |0.985 - 1| = 0.015).
    y = np.array([0, 1, 0, 0, 1, 1])
    p = np.array([0.02, 0.06, 0.5, 0.5, 0.97, 1.0])
    expected = (2 * 0.46 + 2 * 0.5 + 2 * 0.015) / 6
    assert scoring.expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-15)
    predicted, observed, counts = scoring.calibration_bins(y, p)
    np.testing.assert_allclose(predicted, [0.04, 0.5, 0.985])
    np.testing.assert_allclose(observed, [0.5, 0.0, 1.0])
    assert counts.tolist() == [2, 2, 2]
    # A model that predicts each bin's observed rate has ECE 0; the bins are the definition's.
    assert scoring.expected_calibration_error([0, 1, 0, 0], [0.25] * 4) == 0.0
    assert scoring.expected_calibration_error(y, p, bins=1) == pytest.approx(
        abs(p.mean() - y.mean())
    )


def test_top_label_ece_for_k_classes_by_hand():
    # Top labels: rows 0-1 predict class 0 at 0.6 (bin 9; 1 of 2 right: 0.1), rows 2-3 class 2
    # at 0.9 (bin 13; 2 of 2 right: 0.1).
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.6, 0.3, 0.1], [0.6, 0.2, 0.2], [0.05, 0.05, 0.9], [0.0, 0.1, 0.9]])
    assert scoring.expected_calibration_error(y, proba) == pytest.approx(0.1, abs=1e-15)


# -- calibration: the class-weighted rows' posterior ------------------------------------------


def _known_rate(n, seed=0):
    """Features and labels drawn from a logistic model with a ~6% positive rate."""
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    q = expit(-3.5 + 1.2 * X["a"].to_numpy() - 0.8 * X["b"].to_numpy())
    return cmp.Dataset(name="known", X=X, y=(rng.random(n) < q).astype(np.int8)), q


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_weighted_posterior_is_the_prior_odds_correction_of_the_margins(backend):
    from scipy.special import expit

    from boostloss.compare.protocol import _predictions, class_weights

    dataset, _ = _known_rate(600)
    X, y = dataset.X, dataset.y
    config = cmp.CompareConfig(rounds=20)
    weights = class_weights("weighted", config, y)
    s = (y.size - y.sum()) / y.sum()
    assert weights.tolist() == pytest.approx([1.0, s])
    estimator = make_estimator(backend, "weighted", config, y).fit(X, y)
    proba, posterior = _predictions(estimator, backend, X, weights)
    margins = BACKENDS[backend].margins(estimator, X)
    # float64 before the shift: numpy < 2 keeps float32 - float64 scalar in float32
    margins = np.asarray(margins, dtype=np.float64)
    np.testing.assert_allclose(posterior, expit(margins - np.log(s)), rtol=1e-12, atol=0)
    np.testing.assert_allclose(proba, estimator.predict_proba(X)[:, 1], rtol=0, atol=0)
    assert np.all(posterior < proba)  # spw > 1 lifts every probability; the correction undoes it
    # A monotone map: the ranking metrics are the same on either, the probability ones are not.
    on_proba, on_posterior = scoring.binary_metrics(y, proba), scoring.binary_metrics(y, posterior)
    for key in ("average_precision", "roc_auc"):
        assert on_posterior[key] == pytest.approx(on_proba[key], abs=1e-12)
    assert scoring.binary_metrics(y, proba, posterior) == {
        **on_posterior,
        "average_precision": on_proba["average_precision"],
        "roc_auc": on_proba["roc_auc"],
    }
    # Unweighted losses: no correction.
    assert (
        class_weights("logistic", config, y) is None and class_weights("focal", config, y) is None
    )


def test_weighted_posterior_recovers_the_logistic_log_loss():
    # On data with a known rate the class-weighted model's sigmoid is the reweighted data's
    # posterior, far off; its corrected posterior lands near the logistic model's (measured:
    # within 4-6% with compare's default trees, which fit the 16x weighted positives harder).
    dataset, q = _known_rate(10_000)
    config = cmp.CompareConfig(
        losses=("logistic", "weighted"), folds=2, rounds=40, early_stopping=False
    )
    result = cross_validate(dataset, config)
    rows = {(r["backend"], r["loss"]): r for r in cmp.summarize(result.records)}
    truth = scoring.log_loss(dataset.y, q)
    for backend in BACKENDS:
        logistic, weighted = rows[(backend, "logistic")], rows[(backend, "weighted")]
        raw = scoring.log_loss(dataset.y, result.oof_proba[(backend, "weighted")])
        corrected = scoring.log_loss(dataset.y, result.oof_posterior[(backend, "weighted")])
        assert raw > 1.7 * truth  # the uncorrected sigmoid
        assert weighted["log_loss_mean"] == pytest.approx(logistic["log_loss_mean"], rel=0.1)
        assert corrected == pytest.approx(truth, rel=0.15)
        assert weighted["ece_mean"] < 0.04 and logistic["ece_mean"] < 0.04
        assert (
            scoring.expected_calibration_error(dataset.y, result.oof_proba[(backend, "weighted")])
            > 0.1
        )
        # The ranking columns are the model's own probabilities', unchanged by the correction.
        assert scoring.average_precision(
            dataset.y, result.oof_proba[(backend, "weighted")]
        ) == pytest.approx(
            scoring.average_precision(dataset.y, result.oof_posterior[(backend, "weighted")]),
            abs=1e-12,
        )
    assert (
        result.oof_posterior[("xgboost", "logistic")] is result.oof_proba[("xgboost", "logistic")]
    )


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_focal_rows_are_judged_on_the_focal_posterior(backend):
    # The loss's predict_proba of the margins (the inverse of the focal minimiser): the early
    # stopping score on log loss and the table's log loss, Brier and ECE; AP and ROC-AUC unchanged.
    from boostloss.compare.protocol import _predictions

    dataset, _ = _known_rate(1500)
    X, y = dataset.X, dataset.y
    train, valid = np.arange(0, 1500, 2), np.arange(1, 1500, 2)
    config = cmp.CompareConfig(rounds=60)
    estimator = make_estimator(backend, "focal", config, y[train])
    loss = estimator.get_params()["loss"]
    score = scoring.make_score("logloss").for_model(loss)
    rounds = BACKENDS[backend].fit_early_stopped(
        estimator, X.iloc[train], y[train], X.iloc[valid], y[valid], score, 5
    )
    history = (
        estimator.evals_result()["validation_0"]
        if backend == "xgboost"
        else estimator.evals_result_["valid_0"]
    )["logloss"]
    first = BACKENDS[backend].first_trees(rounds)
    margins = BACKENDS[backend].margins(estimator, X.iloc[valid], **first)
    posterior = loss.predict_proba(margins)[:, 1]
    assert history[rounds - 1] == pytest.approx(scoring.log_loss(y[valid], posterior), rel=1e-5)
    proba, got = _predictions(estimator, backend, X.iloc[valid], None, **first)
    np.testing.assert_allclose(got, posterior, rtol=1e-12)
    metrics = scoring.binary_metrics(y[valid], proba, got)
    assert metrics["average_precision"] == pytest.approx(
        scoring.average_precision(y[valid], got), abs=1e-12
    )
    assert metrics["roc_auc"] == pytest.approx(scoring.roc_auc(y[valid], got), abs=1e-12)
    # The estimators' predict_proba is that posterior too; gamma=2, alpha=0.25 pulls the margin's
    # sigmoid away from the rate, and the map brings it back.
    np.testing.assert_allclose(proba, posterior, rtol=1e-12)
    sigmoid = 1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=np.float64)))
    assert metrics["log_loss"] < scoring.log_loss(y[valid], sigmoid)
    assert metrics["ece"] < scoring.expected_calibration_error(y[valid], sigmoid)


def test_early_stopping_on_log_loss_judges_the_weighted_posterior():
    from scipy.special import expit

    y = np.array([0, 0, 0, 1, 0, 1])
    margins = np.array([-1.0, 0.2, -0.5, 2.0, 1.5, 0.3])
    s = 4.0
    score = scoring.make_score("logloss").for_model(None, class_weights=(1.0, s))
    expected = scoring.log_loss(y, expit(margins - np.log(s)))
    # XGBoost and LightGBM hand a built-in objective's metric probabilities.
    assert score.of_predictions(y, expit(margins), margins=False) == pytest.approx(
        expected, rel=1e-12
    )
    assert score.of_model(y, expit(margins), expit(margins - np.log(s))) == pytest.approx(expected)
    # Ranking scores ignore the class weights; unweighted models are scored as before.
    ap = scoring.make_score("ap").for_model(None, class_weights=(1.0, s))
    assert ap.to_posterior is None and ap.of_predictions(
        y, margins, margins=True
    ) == scoring.average_precision(y, margins)
    assert scoring.make_score("logloss").for_model(None, None) == scoring.make_score("logloss")


# -- the printed report -----------------------------------------------------------------------


def _record(loss, fold, blocks=(), degenerate=None, backend="lightgbm", **metrics):
    values = {
        "average_precision": 0.5,
        "roc_auc": 0.7,
        "log_loss": 0.3,
        "brier": 0.1,
        "ece": 0.05,
        "fit_seconds": 0.1,
        **metrics,
    }
    return {
        "backend": backend,
        "loss": loss,
        "repeat": 0,
        "fold": fold,
        **values,
        "rounds": 10,
        "degenerate": degenerate,
        "tie_block": blocks[0] if blocks else None,
        "tie_blocks": list(blocks),
        "n_train": 80,
        "n_test": 20,
    }


def _print(records, config, width=100):
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    with console.capture() as capture:
        report.print_table(console, _small_dataset(), config, report.summarize(records), records)
    return capture.get()


def test_tie_notes_only_for_blocks_off_their_rate_and_a_legend_of_the_codes_used():
    config = cmp.CompareConfig(
        backends=("lightgbm",), losses=("logistic", "weighted", "ghm"), folds=2
    )
    fits = {"value": 0.05, "rows": 20, "share": 0.2, "positive_rate": 0.05, "miscalibrated": False}
    off = {"value": 0.45, "rows": 30, "share": 0.3, "positive_rate": 0.0, "miscalibrated": True}
    records = [
        _record("logistic", 0, [fits]),
        _record("logistic", 1, [fits]),
        _record("weighted", 0),
        _record("weighted", 1, degenerate="constant model (p = 0.1 for every row)"),
        _record("ghm", 0, [off]),
        _record("ghm", 1),
    ]
    text = _print(records, config)
    flat = " ".join(text.split())
    assert (
        "within the observed rate" not in flat and "0.05 while" not in flat
    )  # fits its rate: no note
    assert (
        "! lightgbm GHM-C (10 bins) predicts one probability for a block of rows on 1 of 2 folds"
        in flat
    )
    assert "! lightgbm weighted logistic collapsed on fold 2 of 2" in flat
    rows = report.summarize(records)
    assert [report.flag_codes(row) for row in rows] == [[], ["C1"], ["T1", "S"]]
    legend = flat[flat.index("flags: ") :]
    for code, words in report.FLAG_CODES.items():
        assert (words.split(":")[0] + ":" in legend) is True, code  # C, T and S are all used
    # Only the codes used: a run with no collapsed fold, no off-rate block and no score.
    plain = _print(
        [_record("logistic", 0, [fits]), _record("logistic", 1)],
        cmp.CompareConfig(backends=("lightgbm",), losses=("logistic",), folds=2),
    )
    assert "flags:" not in plain and "!" not in plain
    assert report.flag_legend(rows[2:]).startswith("Tn: ") and "Cn:" not in report.flag_legend(
        rows[2:]
    )


@pytest.mark.parametrize("width", [100, 80])
def test_the_table_fits_the_console(width):
    losses = ("logistic", "weighted", "focal", "ghm", "ohem", "goss")
    config = cmp.CompareConfig(losses=losses, folds=2)
    records = [
        _record(loss, fold, backend=backend, average_precision=0.5 + 0.01 * i)
        for backend in ("xgboost", "lightgbm")
        for i, loss in enumerate(losses)
        for fold in (0, 1)
        if (backend, loss) != ("xgboost", "goss")
    ]
    text = _print(records, config, width)
    assert max(len(line) for line in text.splitlines()) <= width
    # Every word of the loss labels whole (they wrap at spaces only), each metric's mean and spread.
    tokens = set(text.split())
    assert {word for loss in losses for word in config.loss_label(loss).split()} <= tokens
    assert {"0.5000", "0.5300", "0.5500*", "±0.0000", "0.0500*"} <= tokens


def test_the_figure_has_a_reliability_diagram_beside_each_precision_recall_panel():
    pytest.importorskip("matplotlib")
    from boostloss.compare.plot import draw_compare_figure

    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.2).astype(np.int8)
    proba = {
        (b, loss): np.clip(0.2 + 0.5 * (y - 0.2) + rng.normal(scale=0.1, size=200), 0, 1)
        for b in ("xgboost", "lightgbm")
        for loss in ("logistic", "ghm")
    }
    labels = {"logistic": "logistic", "ghm": "GHM-C (10 bins)"}
    fig = draw_compare_figure(y, proba, {}, "xgboost", labels, scores={"ghm"})
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert [t.split("\n")[0] for t in titles] == [
        "xgboost: precision-recall",
        "xgboost: reliability, positive class",
        "lightgbm: precision-recall",
        "lightgbm: reliability, positive class",
    ]
    legend = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    ece = scoring.expected_calibration_error(y, proba[("xgboost", "ghm")])
    logistic_ece = scoring.expected_calibration_error(y, proba[("xgboost", "logistic")])
    assert legend == [
        "calibrated",
        f"logistic (ECE {logistic_ece:.3f})",
        f"GHM-C (10 bins) (score) (ECE {ece:.3f})",
    ]


# -- a first run on a fresh install: the kernels compile beside the built-in losses ------------


def _without_times(records):
    """The records as text without the fit times (NaN equal to NaN)."""
    kept = [{k: v for k, v in r.items() if k != "fit_seconds"} for r in records]
    return json.dumps(kept, sort_keys=True, default=str)


def test_builtin_losses_train_first_and_the_table_keeps_its_order(monkeypatch):
    from boostloss.compare import protocol

    dataset = _small_dataset()
    config = cmp.CompareConfig(
        backends=("lightgbm", "xgboost"),
        losses=("logistic", "focal", "weighted"),
        folds=2,
        rounds=5,
        patience=2,
    )
    helped, trained, real = [], [], protocol._configuration
    monkeypatch.setattr(
        protocol, "_compile_beside", lambda X, y, c, pairs, n_rows: helped.append(pairs)
    )

    def spy(dataset, config, score, backend, loss, *rest):
        trained.append((backend, loss))
        return real(dataset, config, score, backend, loss, *rest)

    monkeypatch.setattr(protocol, "_configuration", spy)
    records = cross_validate(dataset, config).records
    custom = [("lightgbm", "focal"), ("xgboost", "focal")]
    assert helped == [custom]
    builtin = [pair for pair in config.configurations() if pair not in custom]
    assert trained == builtin + custom
    assert [(r["backend"], r["loss"]) for r in records] == [
        pair for pair in config.configurations() for _ in range(2)
    ]


def test_the_compiling_helper_changes_no_result(monkeypatch):
    from boostloss.compare import protocol

    dataset = _small_dataset()
    config = cmp.CompareConfig(
        backends=("lightgbm",), losses=("logistic", "focal", "ghm"), folds=2, rounds=6, patience=2
    )
    monkeypatch.setattr(protocol, "_free_cores", lambda config: 1)
    started = []
    real = protocol._compile_beside

    def spy(*args):
        helper = real(*args)
        started.append(helper)
        return helper

    monkeypatch.setattr(protocol, "_compile_beside", spy)
    with_helper = cross_validate(dataset, config).records
    assert started and started[0] is not None
    process, path = started[0]
    assert process.returncode is not None and not os.path.exists(path)  # ended, input removed
    monkeypatch.setattr(protocol, "_compile_beside", lambda *args: None)
    alone = cross_validate(dataset, config).records
    assert _without_times(with_helper) == _without_times(alone)


def test_no_helper_without_a_free_core_or_a_custom_loss(monkeypatch):
    from boostloss.compare import protocol

    dataset = _small_dataset()
    X, y = protocol._tiny_data(dataset)
    config = cmp.CompareConfig(backends=("lightgbm",), losses=("focal",))
    monkeypatch.setattr(protocol, "_free_cores", lambda config: 0)
    assert protocol._compile_beside(X, y, config, [("lightgbm", "focal")], 400) is None
    monkeypatch.setattr(protocol, "_free_cores", lambda config: 1)
    assert protocol._compile_beside(X, y, config, [], 400) is None
    assert not protocol._is_custom(config, "logistic", y)
    assert protocol._is_custom(config, "focal", y)
