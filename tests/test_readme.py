"""README.md is the front door and docs/ the manual: both must match the code they document.

The reference moved from README into docs/ (built with MkDocs, `make docs-check` in CI);
these tests keep README short, every page reachable, the generated tables current and every
documented command real.
"""

from __future__ import annotations

import re

import pytest
import yaml

from mlplatform.tools.docs import REFERENCE_PAGE, render_reference
from tests.support.helpers import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
# Drafts other branches leave for the integrator (docs/_incoming/<branch>.md): not pages.
INCOMING = "_incoming"
README_MAX_LINES = 250


class _MkdocsLoader(yaml.SafeLoader):
    """mkdocs.yml names Python objects (`!!python/name:...`); read them as their names."""


_MkdocsLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: f"{suffix}")


def _mkdocs() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_MkdocsLoader)


def _nav_pages(nav: list) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def _doc_pages() -> set[str]:
    return {
        path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md") if INCOMING not in path.relative_to(DOCS).parts
    }


def test_config_reference_matches_the_models():
    """The config tables are generated from the pydantic models; stale tables mislead users."""
    page = ROOT / REFERENCE_PAGE
    text = page.read_text()
    assert render_reference(text) == text, f"run `python -m mlplatform.tools.docs` to refresh {REFERENCE_PAGE}"


def test_ci_runs_the_documented_test_command():
    """CI must run exactly what README tells a newcomer to run."""
    ci_script = (ROOT / ".ci" / "run").read_text()
    documented = re.search(r"```bash\n(make test)\n```", README)
    assert documented is not None
    # The command may be piped on (.ci/run keeps its output to check pytest's summary).
    assert re.search(rf"^{re.escape(documented.group(1))}( \S.*)?$", ci_script, re.M), ci_script


def test_ci_builds_the_docs_strictly():
    """A broken link or anchor must fail CI: .ci/run builds the site with --strict."""
    ci_script = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^make docs-check$", ci_script, re.M), ci_script
    recipe = re.search(r"^docs-check:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None and "mkdocs build --strict" in recipe.group(1), makefile


def test_readme_fits_on_a_screen_or_two():
    """README is the front door: what it is, a first command, deploy, the rollout loop, layout, links."""
    lines = README.count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move reference material to docs/"


def test_every_docs_page_is_in_the_nav():
    """A page outside the nav is reachable only by guessing its URL."""
    nav = _nav_pages(_mkdocs()["nav"])
    assert len(nav) == len(set(nav)), nav
    assert set(nav) == _doc_pages()


def test_incoming_drafts_are_not_built():
    """Drafts in docs/_incoming/ wait for the integrator; they must not break the strict build."""
    excluded = _mkdocs()["exclude_docs"].split()
    assert f"{INCOMING}/" in excluded


def test_the_site_build_fetches_nothing():
    """The build runs in CI and air-gapped: no plugin that downloads (privacy, social, optimize), no web fonts."""
    config = _mkdocs()
    plugins = [p if isinstance(p, str) else next(iter(p)) for p in config.get("plugins", [])]
    assert plugins == ["search"], plugins
    assert config["theme"]["font"] is False


def _documented_make_targets() -> set[tuple[str, str]]:
    """Every `make TARGET` in a code span or a fenced block of README and the docs pages."""
    found = set()
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = path.read_text()
        spans = re.findall(r"`(?:sudo )?make ([\w-]+)[^`]*`", text)
        blocks = re.findall(r"^(?:sudo )?make ([\w-]+)", text, re.M)
        found.update((path.name, target) for target in spans + blocks)
    return found


@pytest.mark.parametrize(("page", "target"), sorted(_documented_make_targets()))
def test_documented_make_targets_exist(page, target):
    """A command the docs give a newcomer must run."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{page} documents `make {target}`"


def test_readme_links_point_at_existing_pages():
    """README is read on GitHub, outside the site's strict build: its links to docs/ are checked here."""
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", README)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link


def test_the_home_page_includes_the_readme_sections():
    """docs/index.md includes README's intro and architecture diagram (one copy), by their markers."""
    index = (DOCS / "index.md").read_text()
    for section in re.findall(r'^--8<-- "README\.md:(\w+)"$', index, re.M):
        assert f"<!-- --8<-- [start:{section}] -->" in README, section
        assert f"<!-- --8<-- [end:{section}] -->" in README, section
    assert "```mermaid" in README.split("[start:architecture]", 1)[1].split("[end:architecture]", 1)[0]


# A repository path in a code span, e.g. `mlplatform/tools/docs.py`.
_REPO_PATH = re.compile(r"`((?:mlplatform|tests|bench|scripts|stacks|docs|e2e|\.github|\.ci)/[\w./-]+)`")


def test_every_documented_page_path_exists():
    """The pages name files by path; a path that moved (as in the two-wings restructure) misleads."""
    missing = []
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for name in _REPO_PATH.findall(path.read_text()):
            if "<" in name or "*" in name:
                continue
            if not (ROOT / name).exists():
                missing.append(f"{path.name}: {name}")
    assert not missing, missing


def test_docs_pages_do_not_link_outside_the_site():
    """A link from docs/ to ../README.md or a source file is dead on the built site."""
    for path in _doc_pages():
        text = (DOCS / path).read_text()
        assert not re.search(r"\]\(\.\./", text), path
