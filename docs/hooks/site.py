"""mkdocs hooks of the orthoconv site (mkdocs.yml ``hooks:``).

- The home page is the repository's README.md: its links, written for the repository (``docs/X.md``,
  ``analysis/figures/X.png``), are rewritten to the site's (``X.md``, ``figures/X.png``), so the front page
  exists once.
- Sphinx roles left in docstrings (``:func:`name```) are dropped from the rendered API pages, keeping the
  code span.
"""

import re
from pathlib import Path

_README = Path(__file__).resolve().parents[2] / "README.md"
_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|exc|obj|py:\w+):(?=<code>)")


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    page.meta.setdefault("hide", ["toc"])  # the real outputs and the tour are wide; the README is short
    text = _README.read_text(encoding="utf-8")
    text = text.replace("](docs/", "](").replace("](analysis/figures/", "](figures/")
    return text


def on_page_content(html, page, config, files):
    return _ROLE.sub("", html)
