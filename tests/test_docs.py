"""The README stays short and every relative link of the Markdown documentation resolves."""

import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_LIMIT = 12_288  # bytes

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _prose(text):
    """``text`` without fenced code blocks and inline code (links there are not links)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text):
    """Targets of the Markdown links and images of ``text``, outside code."""
    return _LINK.findall(_prose(text))


def anchors(text):
    """GitHub's anchors of the headings of ``text``: lower case, no punctuation, '-' for spaces."""
    slugs = []
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        slugs.append(slug)
    return set(slugs)


def broken_links(page):
    """``(target, reason)`` of every relative link of ``page`` that does not resolve."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append((target, "no such file"))
        elif (
            fragment
            and resolved.suffix == ".md"
            and fragment not in anchors(resolved.read_text(encoding="utf-8"))
        ):
            broken.append((target, "no such heading"))
    return broken


def test_readme_is_at_most_12_kb():
    size = README.stat().st_size
    assert size <= README_LIMIT, (
        f"README.md is {size} bytes; move text to docs/ (limit {README_LIMIT})"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_docs_exist_and_are_reachable_from_the_readme():
    index = DOCS / "index.md"
    assert "docs/index.md" in links(README.read_text(encoding="utf-8"))
    listed = {
        pathlib.Path(t.partition("#")[0]).name for t in links(index.read_text(encoding="utf-8"))
    }
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert len(pages) >= 7
    assert pages <= listed, f"pages not listed in docs/index.md: {sorted(pages - listed)}"


def test_the_checker_sees_broken_links_and_ignores_code(tmp_path):
    (tmp_path / "there.md").write_text("# A title, with punctuation!\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-title-with-punctuation) [web](https://example.org/x)\n"
        "[gone](missing.md) [bad anchor](there.md#nope) ![img](pic.png)\n"
        "`[not a link](code.md)`\n```\n[nor this](fence.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        ("missing.md", "no such file"),
        ("there.md#nope", "no such heading"),
        ("pic.png", "no such file"),
    ]


def _real_data_module():
    spec = importlib.util.spec_from_file_location("real_data", ROOT / "benchmarks" / "real_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_data_benchmark_rewrites_its_docs_page(tmp_path):
    real_data = _real_data_module()
    assert real_data.PAGE == DOCS / "real-data.md"
    text = real_data.PAGE.read_text(encoding="utf-8")
    assert text.count(real_data.START) == 1 and text.count(real_data.END) == 1
    assert text.index(real_data.START) < text.index(real_data.END)
    assert real_data.START not in README.read_text(encoding="utf-8")

    copy = tmp_path / "real-data.md"
    copy.write_text(text, encoding="utf-8")
    real_data.update_page("NEW TABLES", copy)
    head, rest = text.split(real_data.START, 1)
    tail = rest.split(real_data.END, 1)[1]
    assert copy.read_text(encoding="utf-8") == (
        f"{head}{real_data.START}\nNEW TABLES\n{real_data.END}{tail}"
    )

    copy.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="markers"):
        real_data.update_page("NEW TABLES", copy)


# ------------------------------------------------------------------------------------------------
# The documentation site (mkdocs.yml): CI builds it with `mkdocs build --strict`; these checks
# need no mkdocs and say earlier what that build would refuse or silently leave out.
# ------------------------------------------------------------------------------------------------

MKDOCS = ROOT / "mkdocs.yml"
REFERENCE = DOCS / "reference"


def nav_pages():
    """The pages mkdocs.yml's nav lists, relative to docs/."""
    text = MKDOCS.read_text(encoding="utf-8")
    nav = text.split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", nav, re.MULTILINE)


def test_the_site_lists_every_page_and_every_listed_page_exists():
    listed = nav_pages()
    assert len(listed) == len(set(listed))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert set(listed) == pages


def test_the_api_reference_covers_the_public_modules_and_they_import():
    directives = {}
    for page in sorted(REFERENCE.glob("*.md")):
        for name in re.findall(r"^::: (\S+)$", page.read_text(encoding="utf-8"), re.MULTILINE):
            directives[name] = page.name
    public = {
        "boostloss",
        "boostloss.losses",
        "boostloss.losses.ohem",
        "boostloss.estimators",
        "boostloss.xgboost",
        "boostloss.lightgbm",
        "boostloss.dask",
        "boostloss.spark",
        "boostloss.cuda",
        "boostloss.compare",
        "boostloss.cli",
    }
    assert public <= set(directives), sorted(public - set(directives))
    for name in directives:
        if name in ("boostloss.dask", "boostloss.spark"):
            continue  # they import Dask / PySpark (not everywhere); griffe reads their source
        module = importlib.import_module(name)
        for exported in getattr(module, "__all__", []):
            assert isinstance(exported, str) and hasattr(module, exported), (name, exported)


def test_the_adapters_export_the_same_four_factories():
    import boostloss.lightgbm as bll
    import boostloss.xgboost as blx
    from boostloss._frameworks import adapters as _adapters

    for module in (blx, bll):
        assert set(_adapters.FACTORIES) <= set(module.__all__)
        assert all(callable(getattr(module, name)) for name in _adapters.FACTORIES)


def test_the_reference_shows_sphinx_roles_and_math_as_markdown_code():
    pytest.importorskip("griffe")  # the docs extra
    spec = importlib.util.spec_from_file_location(
        "sphinx_markup", DOCS / "_build" / "sphinx_markup.py"
    )
    markup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(markup)
    docstring = (
        "Uses :func:`objective` and :py:class:`~boostloss.losses.FocalLoss`, a :ratio: `3`,\n"
        "with :math:`\\alpha_t`:\n"
        "\n"
        "    .. math::\n"
        "\n"
        "        FL = -\\alpha_t\n"
        "            (1 - p_t)^\\gamma\n"
        "\n"
        "    Then text.\n"
    )
    assert markup.convert(docstring) == (
        "Uses `objective` and `FocalLoss`, a :ratio: `3`,\n"
        "with `\\alpha_t`:\n"
        "\n"
        "    ```text\n"
        "    FL = -\\alpha_t\n"
        "        (1 - p_t)^\\gamma\n"
        "    ```\n"
        "\n"
        "    Then text.\n"
    )
