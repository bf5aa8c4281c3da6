"""A writable place for numba's cache of the compiled kernels, wherever the package is installed.

The kernels are compiled with ``cache=True``. numba looks for a cache directory when a kernel is
*defined* (at import), in this order: ``NUMBA_CACHE_DIR``, the ``__pycache__`` folder next to the
source, the user-wide cache (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``). A read-only install
(a system site-packages, a read-only container image) falls through to the user-wide cache, which
works; but when that is not writable either (read-only ``HOME``, serverless runtimes where only the
temporary directory is writable), numba raises ``RuntimeError: cannot cache function ...: no locator
available`` and ``import boostloss`` fails.

:func:`writable_cache` wraps the import of the kernels, which :func:`kernels` does lazily, at the
first computation (``import boostloss`` touches no file and imports no numba kernel): only in that
last case it points numba at a private directory under the system temporary directory while the
kernels are defined, and restores numba's setting afterwards (the kernels keep their cache
location; nothing else changes).
"""

import contextlib
import importlib
import os
import stat
import sys
import tempfile

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _writable(path):
    """numba's own test: the directory can be created and a file written in it."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _numba_user_cache_dir():
    from numba.misc.appdirs import AppDirs

    return AppDirs(appname="numba", appauthor=False).user_cache_dir


def _private_temp_dir():
    """A per-user cache directory under the temporary directory, or a fresh one if it is not safe.

    numba's cache files are loaded with pickle: a directory that another user could have created or
    can write to is never used.
    """
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        path = os.path.join(tempfile.gettempdir(), f"boostloss-numba-cache-{getuid()}")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            info = os.lstat(path)
            if (
                stat.S_ISDIR(info.st_mode)
                and info.st_uid == getuid()
                and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                and _writable(path)
            ):
                return path
        except OSError:
            pass
    try:
        return tempfile.mkdtemp(prefix="boostloss-numba-cache-")
    except OSError:
        return None


def fallback_cache_dir(package_dir):
    """None when numba has a writable cache location of its own; else a private writable directory.

    Returns None also when no directory at all can be written (numba will then raise its own error).
    """
    from numba.core import config

    if config.CACHE_DIR and _writable(config.CACHE_DIR):  # type: ignore[attr-defined]
        return None
    if _writable(os.path.join(package_dir, "__pycache__")):
        return None
    if _writable(_numba_user_cache_dir()):
        return None
    return _private_temp_dir()


@contextlib.contextmanager
def writable_cache(package_dir):
    """Define numba kernels inside this block to give them a writable cache directory.

    >>> with writable_cache(os.path.dirname(__file__)):      # doctest: +SKIP
    ...     from . import binary
    """
    from numba.core import config

    fallback = fallback_cache_dir(package_dir)
    if fallback is None:
        yield None
        return
    previous = config.CACHE_DIR  # type: ignore[attr-defined]
    config.CACHE_DIR = fallback  # type: ignore[attr-defined]
    try:
        yield fallback
    finally:
        config.CACHE_DIR = previous  # type: ignore[attr-defined]


def kernels(module="binary"):
    """The kernel module ``boostloss._kernels.<module>``, imported (its numba cache located) on
    first use."""
    name = "boostloss._kernels." + module
    loaded = sys.modules.get(name)
    if loaded is None:
        with writable_cache(_PACKAGE_DIR):
            loaded = importlib.import_module(name)
    return loaded
