"""boostloss.warm_up: it compiles every kernel a training needs, before the training.

The check that matters runs in a fresh interpreter with an empty numba cache: after ``warm_up``,
the first trainings (XGBoost and LightGBM, focal, GHM-C and OHEM, binary and 3-class, small and
large) add no specialisation to any boostloss kernel. A kernel missed by ``warm_up`` (a framework's
margin dtype or layout, the metric, the start, the probabilities, a path only large inputs take)
would be compiled during the training and fail it.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import boostloss
from boostloss import FocalLoss, GHMLoss, OHEMLoss
from boostloss._kernels.softmax import NUMPY_FOCAL_UPTO
from boostloss.losses._validation import WIDEN_UPTO

#: The ``(module, kernel, signature)`` of every specialisation the boostloss kernels hold.
SIGNATURES = textwrap.dedent(
    """
    def signatures():
        import sys
        from numba.core.registry import CPUDispatcher
        found = set()
        for name, module in list(sys.modules.items()):
            if name.startswith("boostloss._kernels.") and module is not None:
                for obj in vars(module).values():
                    if isinstance(obj, CPUDispatcher):
                        found.update((name, obj.__name__, str(s)) for s in obj.signatures)
        return found
    """
)

PROBE = SIGNATURES + textwrap.dedent(
    """
    import json, warnings
    import numpy as np
    from numba.core import event
    import boostloss
    from boostloss import FocalLoss, GHMLoss, OHEMLoss

    compiled = []

    class Count(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__module__)

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", Count()):
        boostloss.warm_up(FocalLoss(), GHMLoss(), OHEMLoss(negative_class=0))
        boostloss.warm_up(FocalLoss(), GHMLoss(), OHEMLoss(negative_class=0), n_classes=3)
    warmed = signatures()

    rng = np.random.default_rng(0)
    after = {}
    # 300 rows, and 40,000: above the sizes below which numpy does part of the work (the margins'
    # finiteness check, GHM-C's histogram, OHEM's selection), which a warm-up on a few rows does
    # not reach.
    for n in (300, 40_000):
        X = rng.normal(size=(n, 4))
        y2 = (X[:, 0] + rng.normal(size=n) > 0.5).astype(int)
        y3 = np.digitize(X[:, 0], [-0.5, 0.5])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for loss in (FocalLoss(), GHMLoss(), OHEMLoss(negative_class=0)):
                for name, make in (
                    ("xgboost", lambda: boostloss.XGBClassifier(
                        loss=loss, n_estimators=3, n_jobs=1)),
                    ("lightgbm", lambda: boostloss.LGBMClassifier(
                        loss=loss, n_estimators=3, n_jobs=1, verbose=-1)),
                ):
                    for y in (y2, y3):
                        model = make().fit(X, y, eval_set=[(X, y)])
                        model.predict_proba(X)
                        model.predict(X)
                        key = f"{name} {len(np.unique(y))} classes {type(loss).__name__} {n}"
                        after[key] = sorted(map(list, signatures() - warmed))
    print(json.dumps({
        "compiled": len([m for m in compiled if m.startswith("boostloss")]),
        "warmed": len(warmed),
        "new": after,
    }))
    """
)


def _fresh_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    (tmp_path / "numba-cache").mkdir()
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    return env


@pytest.mark.slow
def test_warm_up_compiles_what_the_first_trainings_need(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=_fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=os.path.dirname(os.path.dirname(boostloss.__file__)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["compiled"] > 0 and report["warmed"] > 0, report  # an empty cache: it compiled
    assert set(report["new"]) == {
        f"{framework} {k} classes {loss} {n}"
        for framework in ("xgboost", "lightgbm")
        for k in (2, 3)
        for loss in ("FocalLoss", "GHMLoss", "OHEMLoss")
        for n in (300, 40_000)
    }
    missed = {training: new for training, new in report["new"].items() if new}
    assert not missed, f"kernels compiled by a training after warm_up: {missed}"


#: The binary round on float32 margins just above the size up to which they are widened.
F32 = f"float32 ({WIDEN_UPTO + 1},)"
CHECKS = ["check float32", "check float64"]


def K_CLASS(k):  # noqa: N802 - reads like the constants beside it
    """The K-class rounds (both layouts) just above the size of numpy's focal gradients."""
    return [f"float32 ({NUMPY_FOCAL_UPTO + 1}, {k})", f"float64 ({NUMPY_FOCAL_UPTO + 1}, {k})"]


@pytest.mark.parametrize(
    ("loss", "n_rows", "n_classes", "expected"),
    [
        (GHMLoss(), 400, None, []),  # numpy does it all: nothing to compile
        (GHMLoss(), 3_000, None, ["histogram"]),  # above the weighted histogram's limit
        (FocalLoss(), 1_000, None, []),  # numpy's posterior map
        (FocalLoss(), 3_000, None, ["posterior 2"]),
        (FocalLoss(gamma=0.0), 3_000, None, []),  # the sigmoid: no focal map
        (FocalLoss(gamma=0.0), 5_000, None, [F32]),  # float32 margins no longer widened
        (FocalLoss(), 40_000, None, ["check float32", "check float64", F32, "posterior 2"]),
        (FocalLoss(), 500, 3, []),  # numpy's K-class gradients
        (FocalLoss(), 12_000, 3, [*CHECKS, *K_CLASS(3), "posterior 3"]),  # 36,000 margins
        (FocalLoss(gamma=0.5), None, 4, [*CHECKS, *K_CLASS(4), "posterior 4"]),
        (GHMLoss(), None, 3, [*CHECKS, "histogram", *K_CLASS(3)]),  # any size
        (GHMLoss(density="window"), 1_000, None, []),  # numpy's window density
        (GHMLoss(density="window"), 4_000, 3, ["window", *K_CLASS(3)]),
        (GHMLoss(density="window"), 5_000, None, ["window", F32]),
        (GHMLoss(density="window"), None, None, ["check float32", "check float64", "window", F32]),
        (OHEMLoss(), 1_000, None, []),  # sorted by numpy
        (OHEMLoss(), 3_000, None, ["selection"]),  # the radix select's kernels
        (OHEMLoss(), 5_000, None, ["selection", F32]),
        (OHEMLoss(negative_class=0), None, 3, [*CHECKS, "selection", *K_CLASS(3)]),
    ],
)
def test_compile_for_rows_reaches_what_only_larger_trainings_run(
    monkeypatch, loss, n_rows, n_classes, expected
):
    """The kernels behind numpy's small-input paths, for the sizes that reach them."""
    from boostloss import warm
    from boostloss._kernels import binary, posterior, select

    seen = []
    monkeypatch.setattr(
        warm, "gradient_hessian", lambda loss, entry, x, n: seen.append(f"{x.dtype} {x.shape}")
    )
    monkeypatch.setattr(warm, "mean_loss", lambda *args: 0.0)
    monkeypatch.setattr(binary, "_window_beta", lambda *args: seen.append("window"))
    monkeypatch.setattr(binary, "_window_beta_into", lambda *args: seen.append("window"))
    monkeypatch.setattr(
        posterior, "_binary_posterior", lambda *args: seen.append("posterior 2") or 0
    )
    monkeypatch.setattr(
        posterior, "_softmax_posterior", lambda z, *args: seen.append(f"posterior {z.shape[1]}")
    )
    monkeypatch.setattr(binary, "count_nonfinite", lambda x: seen.append(f"check {x.dtype}") or 0)
    monkeypatch.setattr(binary, "_chunk_histograms", lambda *args: seen.append("histogram"))
    monkeypatch.setattr(
        select, "_select", lambda *args, **kwargs: seen.append("selection") or (0, 0.0, 0, 0.0)
    )
    warm._compile_for_rows(loss, n_rows, n_classes, ("xgboost", "lightgbm"))
    assert list(dict.fromkeys(seen)) == expected  # the selection: several calls


def test_warm_up_returns_seconds_and_leaves_the_loss_alone():
    ghm = GHMLoss(bins=10)
    seconds = boostloss.warm_up(ghm, "focal:gamma=2", frameworks="xgboost")
    assert isinstance(seconds, float) and seconds >= 0.0
    assert ghm.state_ is None  # its clone trained, not the loss given


def test_warm_up_of_a_k_class_model():
    assert boostloss.warm_up(FocalLoss(gamma=2.0), n_classes=3, frameworks=["lightgbm"]) >= 0.0


@pytest.mark.parametrize(
    ("kwargs", "losses", "error", "quoted"),
    [
        ({}, (3,), TypeError, "3"),
        ({}, ("nope",), ValueError, "'nope'"),
        ({}, (FocalLoss(gamma=-1.0),), ValueError, "-1.0"),
        ({"n_classes": 2}, (), ValueError, "got 2"),
        ({"n_classes": 3.0}, (), TypeError, "3.0"),
        ({"n_classes": True}, (), TypeError, "True"),
        ({"n_classes": 3}, (FocalLoss(alpha=0.25),), ValueError, "alpha=0.25"),
        ({"frameworks": "catboost"}, (), ValueError, "'catboost'"),
        ({"frameworks": ()}, (), ValueError, "()"),
        ({"frameworks": ["xgboost", 1]}, (), ValueError, "1"),
        ({"frameworks": 7}, (), TypeError, "7"),
    ],
)
def test_bad_arguments_raise_quoting_the_value(kwargs, losses, error, quoted):
    with pytest.raises(error) as info:
        boostloss.warm_up(*losses, **kwargs)
    assert quoted in str(info.value)


def test_import_boostloss_does_not_import_warm_up():
    code = (
        "import sys, boostloss; assert 'boostloss.warm' not in sys.modules; "
        "f = boostloss.warm_up; assert f.__module__ == 'boostloss.warm'; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(boostloss.__file__)),
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.slow
def test_dask_client_run_warms_every_worker():
    distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    pytest.importorskip("xgboost.dask", reason="xgboost.dask needs dask.dataframe")
    import dask.array as da
    import xgboost as xgb

    import boostloss.xgboost as blx

    namespace = {}
    exec(SIGNATURES, namespace)
    signatures = namespace["signatures"]  # defined here: pickled by value for the workers

    def count():
        return len(signatures())

    focal = FocalLoss()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        seconds = client.run(boostloss.warm_up, focal, frameworks="xgboost")
        assert len(seconds) == 2 and all(s >= 0.0 for s in seconds.values())
        warmed = client.run(count)
        assert all(n > 0 for n in warmed.values()), warmed
        rng = np.random.default_rng(0)
        X = rng.normal(size=(2000, 4)).astype(np.float32)
        y = (X[:, 0] + rng.normal(size=2000) > 1.0).astype(np.float32)
        dtrain = xgb.dask.DaskDMatrix(client, da.from_array(X, chunks=500), da.from_array(y, 500))
        xgb.dask.train(
            client,
            {"tree_method": "hist", "max_depth": 3, "base_score": focal.init_score(y)},
            dtrain,
            3,
            obj=blx.objective(focal),
            custom_metric=blx.metric(focal),
            evals=[(dtrain, "train")],
        )
        assert client.run(count) == warmed  # the training compiled nothing more on any worker
