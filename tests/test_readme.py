"""README.md is the user's manual: it must match the code it documents."""

from __future__ import annotations

import re

from mlplatform.tools.docs import render_readme
from tests.support.helpers import ROOT

README = (ROOT / "README.md").read_text()


def test_config_reference_matches_the_models():
    """The config tables are generated from the pydantic models; stale tables mislead users."""
    assert render_readme(README) == README, "run `python -m mlplatform.tools.docs` to refresh README.md"


def test_ci_runs_the_documented_test_command():
    """CI must run exactly what README tells a newcomer to run."""
    ci_script = (ROOT / ".ci" / "run").read_text()
    documented = re.search(r"```bash\n(make test)\n```", README)
    assert documented is not None
    # The command may be piped on (.ci/run keeps its output to check pytest's summary).
    assert re.search(rf"^{re.escape(documented.group(1))}( \S.*)?$", ci_script, re.M), ci_script
