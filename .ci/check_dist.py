"""CI: the built distributions hold what they should, and only that.

Usage: python .ci/check_dist.py DIST_DIR (the output folder of ``python -m build``).

- The wheel holds every module of the package that git tracks, ``boostloss/py.typed`` and its
  ``*.dist-info`` files: nothing missing, nothing else (no tests, no stray files), and its
  metadata names the distribution, the version of ``boostloss/__init__.py`` and the license.
- The sdist holds every file git tracks in the package, tests, docs, examples and benchmarks,
  and the top-level files the build and the docs read.
"""

import ast
import pathlib
import subprocess
import sys
import tarfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
DISTRIBUTION = "focal-ghm-boost"
SDIST_TREES = ("boostloss/", "tests/", "docs/", "examples/", "benchmarks/")
SDIST_FILES = {"README.md", "CHANGELOG.md", "LICENSE", "mkdocs.yml", "pyproject.toml"}


def tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True)
    return set(out.stdout.splitlines())


def version():
    tree = ast.parse((ROOT / "boostloss" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("boostloss/__init__.py sets no __version__")


def one(folder, pattern):
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one {pattern} in {folder}, found {[p.name for p in found]}")
    return found[0]


def main(folder):
    folder = pathlib.Path(folder)
    files = tracked()
    problems = []
    stem = f"{DISTRIBUTION.replace('-', '_')}-{version()}"

    wheel = one(folder, f"{stem}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"{stem}.dist-info/METADATA").decode("utf-8")
    package = {name for name in files if name.startswith("boostloss/") and name.endswith(".py")}
    package.add("boostloss/py.typed")
    dist_info = {name for name in names if name.startswith(f"{stem}.dist-info/")}
    if missing := sorted(package - names):
        problems.append(f"the wheel lacks {missing}")
    if extra := sorted(names - package - dist_info):
        problems.append(f"the wheel holds files that are not the package's: {extra}")
    for line in (f"Name: {DISTRIBUTION}", f"Version: {version()}",
                 "License-Expression: BSD-3-Clause"):
        if line not in metadata.splitlines():
            problems.append(f"the wheel's METADATA lacks the line {line!r}")
    if not {f"{stem}.dist-info/licenses/LICENSE", f"{stem}.dist-info/entry_points.txt"} <= names:
        problems.append("the wheel's dist-info lacks the license or the console script")

    sdist = one(folder, f"{stem}.tar.gz")
    with tarfile.open(sdist) as archive:
        prefix = f"{stem}/"
        in_sdist = {m.name[len(prefix):] for m in archive.getmembers() if m.isfile()}
    wanted = {name for name in files if name.startswith(SDIST_TREES)} | SDIST_FILES
    if missing := sorted(wanted - in_sdist):
        problems.append(f"the sdist lacks {missing}")
    if stray := sorted(name for name in in_sdist if "__pycache__" in name or name.endswith(".pyc")):
        problems.append(f"the sdist holds compiled files: {stray}")

    if problems:
        print("\n".join(f"check_dist: {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"check_dist: {wheel.name}: {len(package)} package files and {len(dist_info)} metadata "
          f"files; {sdist.name}: {len(in_sdist)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
