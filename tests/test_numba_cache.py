"""numba's on-disk cache when the package is installed read-only.

Each test copies the package (sources only, no cache files) into a temporary directory, makes it
read-only, and runs a fresh interpreter that imports it from there with ``NUMBA_CACHE_DIR`` unset.
Root ignores file permissions, so for root the ``__pycache__`` folder is additionally replaced by a
plain file, which no user can create a directory in: numba's in-tree cache is unusable either way.
"""

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest
from numba.core import config as numba_config

import boostloss

PACKAGE = pathlib.Path(boostloss.__file__).resolve().parent

PROBE = textwrap.dedent(
    """
    import numpy as np
    {setup}
    from boostloss import FocalLoss, GHMLoss
    y = np.array([0, 1, 1, 0])
    x = np.array([-1.0, 0.5, 2.0, 0.0])
    for loss in (FocalLoss(), GHMLoss(momentum=0.5), GHMLoss(density="window")):
        grad, hess = loss.gradient_hessian(y, x)
        assert np.isfinite(grad).all() and (hess > 0).all()
    import boostloss
    print("imported from", boostloss.__file__)
    """
)


def _make_read_only(root):
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _restore_write(root):
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def read_only_install(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(
        PACKAGE,
        site / "boostloss",
        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"),
    )
    package = site / "boostloss"
    probe_file = package / ".write-probe"
    try:
        probe_file.touch()
        writable_anyway = True  # root (or a filesystem without permissions)
        probe_file.unlink()
    except OSError:
        writable_anyway = False
    if writable_anyway:
        for where in (package, package / "_kernels"):
            (where / "__pycache__").write_text("not a directory: numba cannot cache here\n")
    _make_read_only(site)
    yield site
    _restore_write(site)


def run_probe(site, home, setup=""):
    env = {k: val for k, val in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env.pop("NUMBA_CACHE_DIR", None)
    env.update(
        PYTHONPATH=str(site),
        HOME=str(home),
        XDG_CACHE_HOME=str(pathlib.Path(home) / ".cache"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONWARNINGS="default",
        TMPDIR=str(site.parent / "tmp"),
    )
    (site.parent / "tmp").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        cwd=site.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _assert_clean(result, site):
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported from {site}" in result.stdout
    assert "Warning" not in result.stderr and "numba" not in result.stderr.lower(), result.stderr[
        -3000:
    ]


@pytest.mark.slow
def test_read_only_install_caches_in_user_dir(read_only_install, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    first = run_probe(read_only_install, home)
    _assert_clean(first, read_only_install)
    cached = list((home / ".cache" / "numba").rglob("*.nbi"))
    assert cached, "numba should fall back to the user-wide cache directory"
    # The second process loads from that cache, silently.
    _assert_clean(run_probe(read_only_install, home), read_only_install)
    assert not list(read_only_install.rglob("*.nbi"))


@pytest.fixture
def unwritable_home(tmp_path):
    # A path under a regular file: no directory can be created there, not even by root.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return blocker / "home"


@pytest.mark.slow
def test_fallback_helper_makes_a_fully_read_only_setup_work(read_only_install, unwritable_home):
    """With no writable cache anywhere, importing the kernels inside ``writable_cache`` works."""
    setup = textwrap.dedent(
        """
        import importlib.util, os, sys
        spec = importlib.util.spec_from_file_location(
            "_blnc", os.path.join(os.environ["PYTHONPATH"], "boostloss", "_kernels", "cache.py"))
        helper = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(helper)
        with helper.writable_cache(
                os.path.join(os.environ["PYTHONPATH"], "boostloss", "_kernels")) as where:
            assert where is not None and "boostloss-numba-cache" in where, where
            import boostloss
        from numba.core import config
        assert not config.CACHE_DIR, config.CACHE_DIR
        """
    )
    _assert_clean(run_probe(read_only_install, unwritable_home, setup=setup), read_only_install)


@pytest.mark.slow
def test_fully_read_only_setup_imports(read_only_install, unwritable_home):
    _assert_clean(run_probe(read_only_install, unwritable_home), read_only_install)


def test_fallback_not_used_when_numba_has_a_cache(tmp_path, monkeypatch):
    from boostloss._kernels import cache as _numba_cache

    monkeypatch.setattr(numba_config, "CACHE_DIR", "")
    # A writable package directory: numba's in-tree cache works, nothing to do.
    assert _numba_cache.fallback_cache_dir(str(tmp_path)) is None
    with _numba_cache.writable_cache(str(tmp_path)) as where:
        assert where is None and numba_config.CACHE_DIR == ""


def test_fallback_used_and_restored_when_nothing_is_writable(tmp_path, monkeypatch):
    from boostloss._kernels import cache as _numba_cache

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setattr(numba_config, "CACHE_DIR", "")
    monkeypatch.setattr(_numba_cache, "_numba_user_cache_dir", lambda: str(blocker / "user"))
    with _numba_cache.writable_cache(str(blocker / "pkg")) as where:
        assert where is not None and where == numba_config.CACHE_DIR
        assert _numba_cache._writable(where)
        info = os.stat(where)
        assert not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    assert numba_config.CACHE_DIR == ""


def test_fallback_refuses_a_directory_others_can_write(tmp_path, monkeypatch):
    from boostloss._kernels import cache as _numba_cache

    monkeypatch.setattr(_numba_cache.tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"boostloss-numba-cache-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)
    chosen = _numba_cache._private_temp_dir()
    assert chosen is not None and pathlib.Path(chosen) != shared
    assert pathlib.Path(chosen).parent == tmp_path


def test_import_creates_no_file_and_loads_no_kernel(tmp_path):
    """``import boostloss`` (and making losses) touches no file: the numba cache is set up late."""
    site = tmp_path / "site"
    shutil.copytree(
        PACKAGE,
        site / "boostloss",
        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"),
    )
    for name in ("numba-cache", "home", "xdg"):
        (tmp_path / name).mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    env = {k: val for k, val in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
    )
    code = textwrap.dedent(
        """
        import sys
        import boostloss
        from boostloss import FocalLoss, GHMLoss, make_loss
        FocalLoss(gamma=1.0).get_params(); GHMLoss(); make_loss("focal:gamma=2")
        assert boostloss.__file__.startswith(sys.argv[1]), boostloss.__file__
        kernels = [m for m in sys.modules if m.startswith("boostloss._kernels.")
                   and m.rsplit(".", 1)[1] not in ("cache", "constants", "threads")]
        assert not kernels, kernels
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before
