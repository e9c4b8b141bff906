"""The documentation site's contract, checked without mkdocs (mkdocs build --strict checks the rendering).

- Every public name (the ``__all__`` of each public package) has an API entry, a ``::: dotted.path`` line in a
  page of docs/api/ that names it and resolves to the very same object: a name added later is flagged until it
  is documented.
- Every entry resolves (a renamed or removed name leaves no stale entry).
- Every internal link and image in docs/ and README.md points to a file that exists (figures are the
  experiments' own outputs, served from analysis/figures/ at docs/figures/); the README, which is also the
  site's home page, links only into docs/ and analysis/figures/, the two places the site rewrites.
- Every page in docs/ is in mkdocs.yml's nav.
- The README stays a front page (at most 250 lines) with the two commands, and CI builds the site.
"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = (
    "orthoconv",
    "orthoconv.nn",
    "orthoconv.spectral",
    "orthoconv.verify",
    "orthoconv.networks",
    "orthoconv.data",
    "orthoconv.certify",
    "orthoconv.wasserstein",
    "orthoconv.training",
)
ENTRY = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
CODE = re.compile(r"`[^`\n]*`")


def pages():
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)


def api_entries() -> list[str]:
    return [m for page in sorted((DOCS / "api").glob("*.md")) for m in ENTRY.findall(page.read_text())]


def resolve(path: str):
    """The object a ``:::`` entry names, as mkdocstrings reads it: the longest importable module prefix,
    then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(path)


def missing_entries(entries: list[str]) -> list[str]:
    """``package.name`` for every public name that no entry documents (same last name, same object)."""
    resolved = [(e.rsplit(".", 1)[-1], resolve(e)) for e in entries]
    missing = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if not any(last == name and target is obj for last, target in resolved):
                missing.append(f"{package}.{name}")
    return missing


def internal_links(page: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", page.read_text()))
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, mailto:, or an anchor on the same page (mkdocs checks anchors)
        targets.append(target.split("#", 1)[0])
    return targets


def test_every_public_name_has_an_api_entry():
    missing = missing_entries(api_entries())
    assert not missing, f"public names without a '::: path' entry in docs/api/*.md: {missing}"


def test_a_name_without_its_entry_is_flagged():
    entries = api_entries()
    assert "orthoconv.nn.BCOP" in entries
    without = [e for e in entries if e != "orthoconv.nn.BCOP"]
    assert {"orthoconv.BCOP", "orthoconv.nn.BCOP"} <= set(missing_entries(without))
    # an entry naming another object of the same name does not count (spectral.apply is a function
    # that shadows its submodule of that name)
    wrong = [e for e in entries if e != "orthoconv.math.spectral.apply.apply"] + ["orthoconv.math.spectral.apply"]
    assert "orthoconv.spectral.apply" in missing_entries(wrong)


def test_every_api_entry_resolves():
    stale = []
    for entry in api_entries():
        try:
            resolve(entry)
        except (ImportError, AttributeError):
            stale.append(entry)
    assert not stale, f"API entries that name nothing: {stale}"


@pytest.mark.parametrize("page", [ROOT / "README.md", *pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_internal_links_and_images_exist(page):
    targets = internal_links(page)
    broken = [t for t in targets if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"
    if page.name == "README.md":
        outside = [t for t in targets if not t.startswith(("docs/", "analysis/figures/"))]
        assert not outside, f"README.md (the site's home page) links outside docs/ and analysis/figures/: {outside}"


def test_the_link_checker_sees_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        'See [a](a.md#part), ![fig](figures/f.png "title") and [b](https://example.org), [c](#here).\n'
        "`[not](code.md)` and\n```python\nx = [1](2)\n[fenced](fenced.md)\n```\n[d](../d.md)\n"
    )
    assert internal_links(page) == ["a.md", "figures/f.png", "../d.md"]


def test_figures_are_the_experiments_own_outputs():
    assert (DOCS / "figures").resolve() == (ROOT / "analysis" / "figures").resolve()


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    absent = [str(p.relative_to(DOCS)) for p in pages() if str(p.relative_to(DOCS)) not in config]
    assert not absent, f"pages missing from mkdocs.yml's nav: {absent}"


def test_the_readme_is_a_front_page_with_both_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert 'pip install torch==2.13.0 -e ".[test]" && python -m pytest' in readme  # .ci/run runs this line
    assert "orthoconv report" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install torch==2.13.0 -e ".[test]" && python -m pytest' in ci
    assert "mkdocs build --strict" in ci
