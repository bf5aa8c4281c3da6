"""Tests of ``boostloss compare``: success paths, output files, and every kind of bad input."""

import csv
import gzip
import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from boostloss import compare as cmp
from boostloss.cli import main

FAST = ["--rounds", "3", "--folds", "2", "--quiet"]
ONE_CONFIG = [*FAST, "--backend", "lightgbm", "--losses", "logistic"]


@pytest.fixture(autouse=True)
def _piped_width(monkeypatch):
    """The output as piped without COLUMNS (170 columns), whatever the shell exports; a test
    that sets COLUMNS itself checks the narrow layouts."""
    monkeypatch.delenv("COLUMNS", raising=False)


def _mixed_frame(n=240, seed=0):
    """Numeric and string features with missing values; target 'churn' in {'yes', 'no'}."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    city = rng.choice(["paris", "lyon", "nice"], size=n).astype(object)
    score = 1.5 * x1 + (city == "nice") + rng.normal(scale=0.5, size=n)
    churn = np.where(score > np.quantile(score, 0.85), "yes", "no")
    x1[rng.random(n) < 0.1] = np.nan
    city[rng.random(n) < 0.1] = None
    return pd.DataFrame({"x1": x1, "x2": x2, "city": city, "churn": churn})


@pytest.fixture
def mixed_csv(tmp_path):
    path = tmp_path / "mixed.csv"
    _mixed_frame().to_csv(path, index=False)
    return path


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# -- success paths ----------------------------------------------------------------------------


def test_default_dataset_is_deterministic_and_imbalanced():
    first = cmp.load_default_dataset()
    second = cmp.load_default_dataset()
    assert first.X.shape == (400, 30)
    assert first.n_positive == 43
    np.testing.assert_array_equal(first.y, second.y)
    pd.testing.assert_frame_equal(first.X, second.X)


def test_default_run_prints_every_loss_on_both_backends(capsys):
    assert main(["compare", *FAST]) == 0
    out = capsys.readouterr().out
    assert "breast_cancer" in out and "400 rows" in out
    for text in (
        "xgboost",
        "lightgbm",
        "weighted logistic",
        "focal (gamma=2, alpha=0.25)",
        "GHM-C",
    ):
        assert text in out
    assert "ROC-AUC" in out and "Brier" in out and "ECE" in out
    # One mark per column at least: the best of each of the six metrics.
    table = [line for line in out.splitlines() if line.startswith(("xgboost ", "lightgbm "))]
    assert len(table) == 11 and sum(line.count("*") for line in table) >= 6


@pytest.mark.parametrize("columns", [100, 80])
def test_default_output_fits_the_terminal_width(capsys, monkeypatch, tmp_path, columns):
    from boostloss.compare import report

    monkeypatch.setenv("COLUMNS", str(columns))
    out_json = tmp_path / "r.json"
    assert main(["compare", "--output", str(out_json), *FAST]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    # The flag legend explains exactly the codes the table uses (GHM-C and OHEM are scores: S).
    rows = json.loads(out_json.read_text())["summary"]
    used = {code[0] for row in rows for code in report.flag_codes(row)}
    assert "S" in used
    flat = " ".join(out.split())
    explained = {
        code for code, words in report.FLAG_CODES.items() if words.split(":")[0] + ":" in flat
    }
    assert explained == used
    assert "within the observed rate" not in flat  # no note for a tie block that fits its rate
    assert flat.count("! ") == sum(row["tie_block_folds"] > 0 for row in rows) + sum(
        row["degenerate_folds"] > 0 for row in rows
    )


def test_csv_with_string_categories_and_missing_values(mixed_csv, tmp_path, capsys):
    out_json = tmp_path / "results.json"
    argv = [
        "compare",
        str(mixed_csv),
        "--target",
        "churn",
        "--positive",
        "yes",
        "--losses",
        "logistic,focal",
        "--output",
        str(out_json),
        *FAST,
    ]
    assert main(argv) == 0
    doc = json.loads(out_json.read_text())
    assert doc["dataset"]["categorical_features"] == ["city"]
    assert doc["dataset"]["rows"] == 240
    assert doc["dataset"]["positives"] == 36
    assert doc["config"]["losses"] == ["logistic", "focal"]
    assert list(doc["config"]) == [
        "backends",
        "losses",
        "folds",
        "repeats",
        "rounds",
        "learning_rate",
        "seed",
        "metric",
        "early_stopping",
        "patience",
        "validation_fraction",
        "tune",
        "gamma",
        "alpha",
        "bins",
        "momentum",
        "pos_weight_power",
        "n_jobs",
    ]
    assert doc["config"]["backends"] == ["xgboost", "lightgbm"] and doc["config"]["rounds"] == 3
    assert len(doc["folds"]) == 2 * 2 * 2  # backends x losses x folds
    for record in doc["folds"]:
        assert 0.0 <= record["average_precision"] <= 1.0
        assert 0.0 <= record["roc_auc"] <= 1.0
        assert record["log_loss"] > 0.0 and 0.0 <= record["brier"] <= 1.0
        assert 0.0 <= record["ece"] <= 1.0
        assert record["n_train"] + record["n_test"] == 240
    assert len(doc["summary"]) == 4
    assert doc["protocol"]["calibration"]["ece_bins"] == 15
    assert "positive class's posterior" in doc["protocol"]["calibration"]["ece"]
    for row in doc["summary"]:
        assert {"ece_mean", "ece_std", "log_loss_mean", "brier_mean"} <= set(row)
        assert row["probability"] == "posterior"  # logistic and focal; GHM-C and OHEM: "score"
    # No temporary file is left next to the result.
    assert _files(tmp_path) == ["mixed.csv", "results.json"]
    assert "wrote" in capsys.readouterr().out


def test_gzip_csv_and_csv_output(tmp_path):
    frame = _mixed_frame()
    frame["target"] = (frame.pop("churn") == "yes").astype(int)
    data = tmp_path / "data.csv.gz"
    with gzip.open(data, "wt") as handle:
        frame.to_csv(handle, index=False)
    out_csv = tmp_path / "folds.csv"
    assert (
        main(["compare", str(data), "--target", "target", "--output", str(out_csv), *ONE_CONFIG])
        == 0
    )
    with out_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert {r["fold"] for r in rows} == {"0", "1"}
    assert rows[0]["dataset"] == "data.csv.gz"
    assert {
        "backend",
        "loss",
        "average_precision",
        "roc_auc",
        "log_loss",
        "brier",
        "ece",
        "fit_seconds",
    } <= set(rows[0])
    assert all(r["backend"] == "lightgbm" and r["loss"] == "logistic" for r in rows)


def test_positive_picks_a_numeric_class(tmp_path):
    frame = _mixed_frame()
    frame["grade"] = np.where(frame.pop("churn") == "yes", 3, np.arange(240) % 2 + 1)
    data = tmp_path / "grades.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "compare",
                str(data),
                "--target",
                "grade",
                "--positive",
                "3",
                "--output",
                str(out),
                *ONE_CONFIG,
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["dataset"]["positives"] == 36


def test_load_table_categories_and_drop(mixed_csv):
    dataset = cmp.load_table(mixed_csv, "churn", positive="yes", drop=["x2"])
    assert list(dataset.X.columns) == ["x1", "city"]
    assert isinstance(dataset.X["city"].dtype, pd.CategoricalDtype)
    assert set(dataset.X["city"].cat.categories) == {"paris", "lyon", "nice"}
    assert dataset.X["city"].isna().any() and dataset.X["x1"].isna().any()
    assert dataset.y.dtype == np.int8 and dataset.n_positive == 36


def test_max_rows_keeps_the_positive_rate(mixed_csv):
    dataset = cmp.load_table(mixed_csv, "churn", positive="yes", max_rows=120)
    assert dataset.X.shape[0] == 120
    assert dataset.n_positive == 18


def test_na_values_become_missing(tmp_path):
    frame = _mixed_frame()
    frame.loc[:9, "city"] = "unknown"
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    dataset = cmp.load_table(path, "churn", positive="yes", na_values=["unknown"])
    assert "unknown" not in set(dataset.X["city"].cat.categories)
    assert dataset.X["city"].iloc[:10].isna().all()


def test_plot_file_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "compare.png"
    assert main(["compare", "--plot", str(png), "--losses", "logistic,ghm", *FAST]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    assert _files(tmp_path) == ["compare.png"]


def test_summary_and_best_marks():
    records = [
        {
            "backend": "b",
            "loss": "l1",
            "fold": 0,
            "average_precision": 0.5,
            "roc_auc": 0.9,
            "log_loss": 0.3,
            "brier": 0.1,
            "fit_seconds": 1.0,
        },
        {
            "backend": "b",
            "loss": "l1",
            "fold": 1,
            "average_precision": 0.7,
            "roc_auc": 0.7,
            "log_loss": 0.1,
            "brier": 0.1,
            "fit_seconds": 3.0,
        },
        {
            "backend": "b",
            "loss": "l2",
            "fold": 0,
            "average_precision": 0.9,
            "roc_auc": 0.6,
            "log_loss": 0.5,
            "brier": 0.1,
            "fit_seconds": 1.0,
        },
    ]
    rows = cmp.summarize(records)
    assert [r["loss"] for r in rows] == ["l1", "l2"]
    assert rows[0]["average_precision_mean"] == pytest.approx(0.6)
    assert rows[0]["average_precision_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert rows[1]["average_precision_std"] == 0.0
    best = cmp.best_per_metric(rows)
    assert best["average_precision"] == {1}
    assert best["roc_auc"] == {0}
    assert best["log_loss"] == {0}
    assert best["brier"] == {0, 1}
    assert best["fit_seconds"] == {1}
    # Compared as shown: means 0.2 and 0.5 both round to 0 at 0 decimals, a tie.
    assert cmp.best_per_metric(rows, decimals={"log_loss": 0})["log_loss"] == {0, 1}


def test_weighted_logistic_uses_the_class_ratio():
    pytest.importorskip("boostloss.estimators")
    y = np.array([0] * 9 + [1] * 3)
    config = cmp.CompareConfig()
    for backend in cmp.BACKENDS:
        estimator = cmp.make_estimator(backend, "weighted", config, y)
        assert estimator.get_params()["scale_pos_weight"] == pytest.approx(3.0)
        assert estimator.get_params()["loss"] is None


def test_staged_probabilities_use_the_first_trees():
    pytest.importorskip("boostloss.estimators")
    dataset = cmp.load_default_dataset()
    config = cmp.CompareConfig(rounds=4)
    for backend in cmp.BACKENDS:
        estimator = cmp.make_estimator(backend, "focal", config, dataset.y)
        estimator.fit(dataset.X, dataset.y)
        staged = cmp.staged_probabilities(estimator, backend, dataset.X, [1, 4])
        assert list(staged) == [1, 4]
        np.testing.assert_allclose(staged[4], estimator.predict_proba(dataset.X)[:, 1], rtol=1e-6)
        assert not np.allclose(staged[1], staged[4])
        assert np.all((staged[1] > 0.0) & (staged[1] < 1.0))


# -- one registry, one config -----------------------------------------------------------------


def test_config_is_derived_from_the_parsed_arguments():
    from boostloss.cli import _build_parser, config_from_args

    args = _build_parser().parse_args(["compare"])
    assert config_from_args(args) == cmp.CompareConfig()
    assert cmp.CompareConfig().rounds == 1000 and cmp.CompareConfig().early_stopping
    # Without early stopping the fixed-rounds protocol keeps its 200 rounds unless told otherwise.
    assert (
        config_from_args(_build_parser().parse_args(["compare", "--no-early-stopping"])).rounds
        == 200
    )
    argv = [
        "compare",
        "--backend",
        "lightgbm",
        "--losses",
        "ghm,focal",
        "--folds",
        "3",
        "--rounds",
        "7",
        "--learning-rate",
        "0.3",
        "--seed",
        "5",
        "--gamma",
        "1.5",
        "--alpha",
        "none",
        "--bins",
        "20",
        "--n-jobs",
        "2",
        "--repeats",
        "2",
        "--metric",
        "logloss",
        "--patience",
        "9",
        "--validation-fraction",
        "0.3",
        "--tune",
        "--momentum",
        "0.5",
        "--no-early-stopping",
    ]
    config = config_from_args(_build_parser().parse_args(argv))
    assert config == cmp.CompareConfig(
        backends=("lightgbm",),
        losses=("ghm", "focal"),
        folds=3,
        rounds=7,
        learning_rate=0.3,
        seed=5,
        gamma=1.5,
        alpha=None,
        bins=20,
        n_jobs=2,
        repeats=2,
        metric="logloss",
        patience=9,
        validation_fraction=0.3,
        tune=True,
        momentum=0.5,
        early_stopping=False,
    )
    assert config.loss_label("focal") == "focal (tuned)"
    untuned = cmp.CompareConfig(gamma=1.5, alpha=None, bins=20)
    assert untuned.loss_label("focal") == "focal (gamma=1.5, alpha=none)"
    assert untuned.loss_label("ghm") == "GHM-C (20 bins)"


def test_parser_and_protocol_read_one_registry(monkeypatch, capsys):
    from boostloss.cli import _build_parser
    from boostloss.compare import registry

    assert main(["compare", "--help"]) == 0
    out = capsys.readouterr().out
    assert ",".join(registry.LOSSES) in out and "{" + ",".join(registry.BACKENDS) + ",both}" in out
    # A loss added to the registry is accepted by --losses and built by the protocol.
    spec = registry.LossSpec(
        title="extra", summary="an extra loss", build=registry.LOSSES["focal"].build
    )
    monkeypatch.setitem(registry.LOSSES, "extra", spec)
    args = _build_parser().parse_args(["compare", "--losses", "extra,logistic"])
    config = cmp.CompareConfig.from_options({**vars(args), "rounds": 5})
    assert config.losses == ("extra", "logistic") and config.loss_label("extra") == "extra"
    if importlib.util.find_spec("xgboost") is not None:
        estimator = cmp.make_estimator("xgboost", "extra", config, np.array([0, 1, 1]))
        assert type(estimator.get_params()["loss"]).__name__ == "FocalLoss"
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        cmp.make_estimator("xgboost", "hinge", config, np.array([0, 1]))
    with pytest.raises(ValueError, match="unknown backend 'catboost'"):
        cmp.make_estimator("catboost", "logistic", config, np.array([0, 1]))


def test_data_errors_describe_values_as_validation_does(tmp_path):
    from boostloss.losses._validation import describe_values

    path = tmp_path / "d.csv"
    pd.DataFrame({"a": range(16), "y": list(range(8)) * 2}).to_csv(path, index=False)
    with pytest.raises(cmp.DataError) as excinfo:
        cmp.load_table(path, "y")
    assert f"(values: {describe_values(np.arange(8))});" in str(excinfo.value)
    assert "and 3 more" in str(excinfo.value)


def test_cli_parser_imports_no_backend():
    code = (
        "import sys, boostloss.cli as c; c._build_parser().format_help(); "
        "print(sorted(m for m in ('xgboost', 'lightgbm', 'matplotlib', 'boostloss.estimators', "
        "'boostloss.compare.protocol', 'boostloss.compare.data') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- bad input --------------------------------------------------------------------------------


def _write_bytes(name, data):
    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


def _write_frame(name, frame):
    def make(tmp_path):
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return path

    return make


_BAD_INPUTS = {
    "missing file": (lambda tmp_path: tmp_path / "nope.csv", ["--target", "y"], "file not found"),
    "missing target column": (
        _write_frame("d.csv", pd.DataFrame({"a": [1, 2], "y": [0, 1]})),
        ["--target", "label"],
        "target column 'label' not found",
    ),
    "target option absent": (
        _write_frame("d.csv", pd.DataFrame({"a": [1, 2], "y": [0, 1]})),
        [],
        "--target COLUMN is required",
    ),
    "non-binary target": (
        _write_frame("d.csv", pd.DataFrame({"a": range(9), "y": [0, 1, 2] * 3})),
        ["--target", "y"],
        "pass --positive",
    ),
    "string target without positive": (
        _write_frame("d.csv", pd.DataFrame({"a": range(6), "y": ["no", "yes"] * 3})),
        ["--target", "y"],
        "pass --positive",
    ),
    "unknown positive label": (
        _write_frame("d.csv", pd.DataFrame({"a": range(6), "y": ["no", "yes"] * 3})),
        ["--target", "y", "--positive", "maybe"],
        "--positive 'maybe' is not a value",
    ),
    "single class": (
        _write_frame("d.csv", pd.DataFrame({"a": range(6), "y": [0] * 6})),
        ["--target", "y"],
        "single class",
    ),
    "too few positives for the folds": (
        _write_frame("d.csv", pd.DataFrame({"a": range(20), "y": [1] + [0] * 19})),
        ["--target", "y", "--folds", "3"],
        "lower --folds",
    ),
    "constant features": (
        _write_frame(
            "d.csv", pd.DataFrame({"a": [1.0] * 40, "b": ["x"] * 40, "y": [1] * 10 + [0] * 30})
        ),
        ["--target", "y"],
        "no feature column",
    ),
    "empty file": (_write_bytes("empty.csv", b""), ["--target", "y"], "is empty"),
    "header only": (_write_bytes("header.csv", b"a,y\n"), ["--target", "y"], "no data rows"),
    "binary content": (
        _write_bytes("image.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50),
        ["--target", "y"],
        "cannot read",
    ),
    "unsupported suffix": (
        _write_bytes("book.xlsx", b"PK\x03\x04"),
        ["--target", "y"],
        "unsupported file type",
    ),
    "corrupt gzip": (
        _write_bytes("data.csv.gz", b"not gzip at all"),
        ["--target", "y"],
        "cannot read",
    ),
    "directory": (lambda tmp_path: tmp_path, ["--target", "y"], "is a directory"),
}


@pytest.mark.parametrize("case", list(_BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    make, extra, expected = _BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    data = make(work)
    before = _files(work)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    argv = [
        "compare",
        str(data),
        "--output",
        str(out_dir / "r.json"),
        "--plot",
        str(out_dir / "p.png"),
        *ONE_CONFIG,
        *extra,
    ]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("boostloss compare: error:")
    assert expected in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert _files(out_dir) == []
    assert _files(work) == before


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["compare", "--folds", "1"], "--folds must be at least 2"),
        (["compare", "--output", "results.txt"], "must end in .json or .csv"),
        (["compare", "--plot", "curves.jpg"], "must end in .png"),
        (["compare", "--output", "no/such/dir/r.json"], "does not exist"),
        (["compare", "--alpha", "2"], "expected a number in (0, 1) or 'none'"),
        (["compare", "--losses", "hinge"], "unknown loss 'hinge'"),
        (["compare", "--backend", "catboost"], "invalid choice"),
        (["compare", "--rounds", "0"], "expected a positive integer"),
        (["compare", "--metric", "f1"], "invalid choice"),
        (["compare", "--validation-fraction", "1"], "expected a number in (0, 1)"),
        (["compare", "--repeats", "0"], "expected a positive integer"),
        (["compare", "--target", "y"], "need a DATA file"),
    ],
)
def test_usage_errors_are_one_line(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err
    assert _files(tmp_path) == []


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "compare" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["compare", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--target",
        "--positive",
        "--backend",
        "--losses",
        "--folds",
        "--rounds",
        "--output",
        "--plot",
        "--quiet",
        "--gamma",
        "--alpha",
        "--bins",
        "--tune",
        "--repeats",
        "--metric",
        "--no-early-stopping",
        "--patience",
    ):
        assert option in out


def test_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    import boostloss.cli as cli

    def broken_plot(path, *args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cli, "_write_plot", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        main(
            [
                "compare",
                "--output",
                str(tmp_path / "r.json"),
                "--plot",
                str(tmp_path / "p.png"),
                *ONE_CONFIG,
            ]
        )
    assert _files(tmp_path) == []


# -- the installed console script -------------------------------------------------------------


def test_console_script_runs(tmp_path):
    script = shutil.which("boostloss")
    if script is None:
        pytest.skip("the boostloss console script is not on PATH (pip install -e .)")
    out = tmp_path / "r.json"
    ok = subprocess.run(
        [script, "compare", "--output", str(out), *ONE_CONFIG],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert "lightgbm" in ok.stdout and out.exists()
    bad = subprocess.run(
        [script, "compare", str(tmp_path / "missing.csv"), "--target", "y"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "file not found" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_module_entry_point_matches(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "boostloss.cli", "compare", "--folds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "--folds must be at least 2" in proc.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_on_a_terminal_and_quiet(quiet, monkeypatch, capsys):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats the captured stream as a terminal
    argv = [
        "compare",
        "--rounds",
        "3",
        "--folds",
        "2",
        "--backend",
        "lightgbm",
        "--losses",
        "logistic",
    ]
    assert main(argv + (["--quiet"] if quiet else [])) == 0
    err = capsys.readouterr().err
    if quiet:
        assert err == ""
    else:
        # Two trainings per fold: early stopping on the inner split, then the refit.
        assert "lightgbm logistic fold 2: refit" in err and "4/4" in err


def test_parquet_input(tmp_path):
    pytest.importorskip("pyarrow")
    data = tmp_path / "mixed.parquet"
    _mixed_frame().to_parquet(data)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "compare",
                str(data),
                "--target",
                "churn",
                "--positive",
                "yes",
                "--output",
                str(out),
                *ONE_CONFIG,
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["dataset"]["categorical_features"] == ["city"]
    assert doc["dataset"]["positives"] == 36


def test_semicolon_csv(tmp_path):
    data = tmp_path / "semi.csv"
    _mixed_frame().to_csv(data, index=False, sep=";")
    dataset = cmp.load_table(data, "churn", positive="yes")
    assert list(dataset.X.columns) == ["x1", "x2", "city"]


def test_version_names_the_release_the_distribution_and_the_copy_that_runs(capsys):
    import pathlib

    import boostloss

    assert main(["--version"]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert line.startswith(f"boostloss {boostloss.__version__} (focal-ghm-boost) from ")
    assert str(pathlib.Path(boostloss.__file__).resolve().parent) in line
    assert main(["--help"]) == 0
    assert "pip install focal-ghm-boost" in capsys.readouterr().out


def test_version_is_the_packages_metadata_when_installed():
    # The build takes the version from boostloss.__version__ (pyproject.toml, dynamic): an
    # installed copy's metadata says the same.
    import importlib.metadata

    import boostloss

    try:
        installed = importlib.metadata.version("focal-ghm-boost")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("focal-ghm-boost is not installed (pip install -e .)")
    assert installed == boostloss.__version__


def test_progress_line_says_when_numba_compiles():
    """The progress bar's text comes from CompileWatch.note: 'compiling ...' after a second of a
    real numba compilation (numba's compile event), the step's description otherwise."""
    from numba import njit
    from numba.core import event

    from boostloss.cli import CompileWatch

    now = [0.0]
    watch = CompileWatch(clock=lambda: now[0])
    seen = []

    class Listener(event.Listener):
        def on_start(self, ev):
            watch.on_start(ev)
            seen.append(watch.note("training"))  # at once: not yet a second
            now[0] += 2.0
            seen.append(watch.note("training"))

        def on_end(self, ev):
            watch.on_end(ev)

    @njit  # not cached: compiles on every run of the test
    def add_one(a):
        return a + 1

    with event.install_listener("numba:compile", Listener()):
        assert add_one(1) == 2
    assert seen[0] == "training"
    assert seen[1].startswith("compiling numba kernels (2 s;"), seen
    assert watch.depth == 0 and watch.note("xgboost focal: fold 1/5") == "xgboost focal: fold 1/5"
