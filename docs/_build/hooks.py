"""mkdocs hooks for the documentation site (mkdocs.yml: ``hooks``).

The docstrings name other objects with Sphinx's roles (``:func:`objective```), which the Python
handler of mkdocstrings renders literally (``:func:`` before the code); the role is dropped, the
name stays as code.
"""

import re

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):(?=<code>)")


def on_page_content(html, page, config, files):
    return _ROLE.sub("", html)
