"""Resource type tokens in the tests are spelled once, in `tests/support/types.py`."""

from __future__ import annotations

import ast
import re

from tests.support import types
from tests.support.helpers import ROOT

TOKEN = re.compile(
    r"^(kubernetes|aws|tls|random|pulumi|mlplatform):[A-Za-z0-9_./-]+:[A-Z][A-Za-z0-9]*$|^pulumi:providers:\w+$"
)


def test_no_test_spells_a_type_token() -> None:
    """A token as a string literal anywhere else in tests/ is a second spelling to keep in step."""
    home = ROOT / "tests" / "support" / "types.py"
    spelled = {
        f"{path.relative_to(ROOT)}:{node.lineno}": node.value
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path != home
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and TOKEN.match(node.value)
    }
    assert spelled == {}


def test_the_home_holds_the_tokens() -> None:
    """The check above matches what `types` holds, so it could see a stray token."""
    tokens = [v for k, v in vars(types).items() if k.isupper()]
    assert len(tokens) > 60 and all(TOKEN.match(t) for t in tokens)
    assert len(set(tokens)) == len(tokens)
