"""A griffe extension for the API reference (mkdocs.yml: the Python handler's ``extensions``).

The docstrings are numpydoc, written for Sphinx: they name objects with roles
(``:func:`objective```) and set formulas with ``:math:`...``` and ``.. math::`` blocks, which the
Markdown renderer of mkdocstrings would show literally. :func:`convert` rewrites them before the
docstrings are parsed: a role becomes inline code of its name, a math block a code block of its
formula (LaTeX, as written).
"""

import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|math):`([^`]+)`")
_MATH_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n"          # the directive
    r"(?P<body>(?:[ \t]*\n|(?P=indent)[ \t]+\S.*\n?)+)",  # blank lines and lines indented deeper
    re.MULTILINE,
)


def _name(target):
    # Sphinx shows ":func:`~a.b.c`" as "c".
    return target[1:].rpartition(".")[2] if target.startswith("~") else target


def _block(match):
    indent = match.group("indent")
    body = textwrap.dedent(match.group("body").strip("\n"))
    lines = ["```text", *body.split("\n"), "```"]
    return "\n".join(indent + line if line else line for line in lines) + "\n\n"


def convert(text):
    """``text`` with Sphinx's roles and math blocks as Markdown code."""
    text = _MATH_BLOCK.sub(_block, text)
    return _ROLE.sub(lambda match: f"`{_name(match.group(1))}`", text)


class SphinxMarkup(griffe.Extension):
    """Rewrites every docstring with :func:`convert` as griffe loads it."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
