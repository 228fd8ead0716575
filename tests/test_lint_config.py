"""`make lint`, the pre-commit hooks and CI run one set of checks.

Three copies of the same commands drift apart silently: a hook that checks less than CI
lets a commit through that CI then fails, and one that checks more blocks a commit CI
would take. These tests read the three files and compare what they run.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The Makefile's variables as the hooks spell them: the hooks run from the checkout's root.
MAKE_VARIABLES = {"$(VENV)": "venv", "$(PY)": "venv/bin/python"}


def _make_recipe(target: str) -> list[str]:
    """The command lines of a Makefile target, its variables expanded."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        command = line.strip()
        for variable, value in MAKE_VARIABLES.items():
            command = command.replace(variable, value)
        recipe.append(command)
    return recipe


def _hooks() -> list[dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return [hook | {"repo": repo["repo"]} for repo in config["repos"] for hook in repo["hooks"]]


def _as_hook_runs_it(hook: dict) -> str:
    """The hook's command as `make lint` would write it: a hook given the staged files runs
    on them, where `make lint` names the whole tree (`.`)."""
    return hook["entry"] + (" ." if hook.get("pass_filenames", True) else "")


def test_pre_commit_runs_what_make_lint_runs() -> None:
    """Every `make lint` command is a hook, and every hook a `make lint` command."""
    assert sorted(_as_hook_runs_it(hook) for hook in _hooks()) == sorted(_make_recipe("lint"))


def test_hooks_use_the_pinned_tools_offline() -> None:
    """A local, system hook runs the venv's pinned tool; a remote hook would download its own
    copy, at another version and not at all without the network."""
    for hook in _hooks():
        assert hook["repo"] == "local", hook
        assert hook["language"] == "system", hook
        assert hook["entry"].startswith("venv/bin/"), hook


def test_the_lint_tools_are_pinned() -> None:
    """A new ruff or pyright release brings new findings; CI must not turn red on its own."""
    pins = {
        match.group(1): match.group(2)
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if (match := re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line))
    }
    tools = {command.split()[0].removeprefix("venv/bin/") for command in _make_recipe("lint")}
    assert tools <= pins.keys(), f"not pinned in requirements-dev.txt: {sorted(tools - pins.keys())}"


def test_ci_lints_before_the_tests() -> None:
    """CI runs `make lint`, and before `make test`: a style failure should not wait for the suite."""
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    lint = next((i for i, line in enumerate(commands) if line == "make lint"), None)
    test = next((i for i, line in enumerate(commands) if line.startswith("make test")), None)
    assert lint is not None, ".ci/run does not run `make lint`"
    assert test is not None and lint < test, ".ci/run must run `make lint` before `make test`"
