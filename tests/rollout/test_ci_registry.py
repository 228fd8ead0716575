"""The CI registry steps: PR CI's threshold gate on new model URIs, and the deploy job's alias moves.

The fast tests use a recording fake with the `Registry` methods the steps call;
the integration tests at the bottom run both against a real MLflow server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlplatform.tools.ci import check_registry, move_aliases
from mlplatform.tools.rollout.registry import CHALLENGER, CHAMPION, BelowThreshold, MetricCheck, RegistryVersion
from mlplatform.tools.stackfile import editor as stackfile
from tests.rollout.conftest import STACK, STACK_TEXT, with_weight, without_canary

MODEL_DIR = "stacks/model"


class FakeRegistry:
    """Versions with (accuracy, f1) and aliases, behaving like `Registry` for the calls the steps make."""

    def __init__(self, metrics: dict[str, tuple[float, float]], aliases: dict[str, str] | None = None):
        self.metrics = metrics
        self.aliases = dict(aliases or {})
        self.checked: list[tuple[str, str, str]] = []

    def check(self, name, version, environment):
        self.checked.append((name, version, environment))
        stage = "production" if environment == "prod" else "staging"
        accuracy, f1 = self.metrics[version]
        floor = {"production": (0.90, 0.85), "staging": (0.85, 0.80)}[stage]
        result = RegistryVersion(
            name,
            version,
            "run",
            {"accuracy": accuracy, "f1": f1},
            stage,
            [MetricCheck("accuracy", accuracy, floor[0]), MetricCheck("f1", f1, floor[1])],
        )
        if not result.passed:
            raise BelowThreshold(result)
        return result

    def alias_version(self, name, alias):
        return self.aliases.get(alias)

    def set_alias(self, name, alias, version):
        self.aliases[alias] = version

    def delete_alias(self, name, alias):
        del self.aliases[alias]


# -- which URIs are new --------------------------------------------------------
def test_only_uris_new_at_head_are_checked():
    """A canary that becomes stable was checked when it entered; only URIs the base lacked are new."""
    promoted = without_canary(STACK_TEXT).replace("models:/fraud_detector/5", "models:/fraud_detector/6")
    assert check_registry.new_model_uris("f.yaml", STACK_TEXT, promoted) == []
    moved = STACK_TEXT.replace("models:/fraud_detector/6", "models:/fraud_detector/7")
    assert check_registry.new_model_uris("f.yaml", STACK_TEXT, moved) == [
        check_registry.NewModelUri("f.yaml", "mlmodel:canary", "models:/fraud_detector/7", "dev")
    ]


def test_a_new_stack_file_has_every_uri_new():
    found = check_registry.new_model_uris("f.yaml", None, STACK_TEXT)
    assert [(f.key, f.model_uri) for f in found] == [
        ("mlmodel:stable", "models:/fraud_detector/5"),
        ("mlmodel:canary", "models:/fraud_detector/6"),
    ]


def test_below_threshold_and_unregistered_uris_fail():
    """A hand edit to a weak version, or to a URI outside the registry, fails the PR with the reason."""
    found = [
        check_registry.NewModelUri("a.yaml", "mlmodel:canary", "models:/fraud_detector/6", "prod"),
        check_registry.NewModelUri("a.yaml", "mlmodel:stable", "s3://bucket/model", "prod"),
        check_registry.NewModelUri("b.yaml", "mlmodel:canary", "models:/fraud_detector/7", "dev"),
    ]
    registry = FakeRegistry({"6": (0.87, 0.82), "7": (0.87, 0.82)})
    code, lines = check_registry.check(found, registry)
    assert code == check_registry.EXIT_FAILED
    assert lines[0].startswith("FAIL a.yaml canary.modelUri models:/fraud_detector/6") and "production" in lines[0]
    assert lines[1].startswith("FAIL a.yaml stable.modelUri s3://bucket/model: not models:/")
    assert lines[2].startswith("ok   b.yaml canary.modelUri models:/fraud_detector/7: meets the staging")
    assert registry.checked == [("fraud_detector", "6", "prod"), ("fraud_detector", "7", "dev")]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True
    )


def test_collect_reads_the_diff_against_the_base(tmp_path):
    """Only model stack files changed since the merge base are read; other files are ignored."""
    (tmp_path / MODEL_DIR).mkdir(parents=True)
    stack = tmp_path / MODEL_DIR / f"Pulumi.{STACK}.yaml"
    stack.write_text(STACK_TEXT)
    (tmp_path / MODEL_DIR / "Pulumi.yaml").write_text("name: model\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    _git(tmp_path, "checkout", "-q", "-b", "pr")
    assert check_registry.collect(tmp_path, "main") == []
    stack.write_text(STACK_TEXT.replace("models:/fraud_detector/6", "models:/fraud_detector/8"))
    (tmp_path / "README.md").write_text("docs\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "hand edit")
    assert check_registry.collect(tmp_path, "main") == [
        check_registry.NewModelUri(
            f"{MODEL_DIR}/Pulumi.{STACK}.yaml", "mlmodel:canary", "models:/fraud_detector/8", "dev"
        )
    ]


# -- alias moves ---------------------------------------------------------------
def _config(tmp_path: Path, text: str):
    path = tmp_path / f"Pulumi.{STACK}.yaml"
    path.write_text(text)
    return stackfile.load(path).config


def test_aliases_follow_the_applied_stack_file(tmp_path):
    """Mid-canary: champion on stable, challenger on the canary."""
    registry = FakeRegistry({}, {CHAMPION: "4"})
    lines = move_aliases.apply(move_aliases.plan(_config(tmp_path, STACK_TEXT)), registry)
    assert registry.aliases == {CHAMPION: "5", CHALLENGER: "6"}
    assert lines == ["fraud_detector@champion: 4 -> version 5", "fraud_detector@challenger: absent -> version 6"]


@pytest.mark.parametrize("text", [with_weight(0), without_canary()], ids=["aborted", "promoted-or-none"])
def test_challenger_goes_when_no_canary_takes_traffic(tmp_path, text):
    registry = FakeRegistry({}, {CHAMPION: "5", CHALLENGER: "6"})
    move_aliases.apply(move_aliases.plan(_config(tmp_path, text)), registry)
    assert registry.aliases == {CHAMPION: "5"}


def test_unregistered_stable_uri_is_an_error(tmp_path):
    config = _config(tmp_path, STACK_TEXT.replace("models:/fraud_detector/5", "runs:/abc/model"))
    with pytest.raises(move_aliases.NotInRegistry, match="stable modelUri runs:/abc/model"):
        move_aliases.plan(config)


# -- against a real MLflow -----------------------------------------------------
@pytest.mark.integration
def test_gate_and_aliases_against_mlflow(tracking_uri, tmp_path):  # noqa: F811  the fixture, imported below
    """Versions 1 (0.95/0.90) and 3 (0.80/0.70) of the real registry: 3 fails dev, 1 passes prod; aliases move."""
    from mlplatform.tools.rollout.registry import Registry

    registry = Registry(tracking_uri)
    found = [
        check_registry.NewModelUri("a.yaml", "mlmodel:canary", "models:/fraud_detector/3", "dev"),
        check_registry.NewModelUri("a.yaml", "mlmodel:stable", "models:/fraud_detector/1", "prod"),
    ]
    code, lines = check_registry.check(found, registry)
    assert code == check_registry.EXIT_FAILED
    assert lines[0].startswith("FAIL") and "accuracy: 0.8000 (threshold >= 0.85) FAIL" in lines[0]
    assert lines[1].startswith("ok")

    text = STACK_TEXT.replace("fraud_detector/5", "fraud_detector/1").replace("fraud_detector/6", "fraud_detector/2")
    move_aliases.apply(move_aliases.plan(_config(tmp_path, text)), registry)
    assert (
        registry.alias_version("fraud_detector", CHAMPION),
        registry.alias_version("fraud_detector", CHALLENGER),
    ) == ("1", "2")
    move_aliases.apply(move_aliases.plan(_config(tmp_path, with_weight(0, text))), registry)
    assert registry.alias_version("fraud_detector", CHALLENGER) is None


# The real MLflow server fixture (module-scoped, one server for this module's tests).
from tests.rollout.test_registry_mlflow import tracking_uri  # noqa: E402,F401


# -- the entry points' exit codes ---------------------------------------------------
def test_check_registry_main_exit_codes(tmp_path, monkeypatch, capsys):
    """No new URI: 0 without asking MLflow; a new URI and no tracking URI: 2, with the reason."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / MODEL_DIR).mkdir(parents=True)
    stack = tmp_path / MODEL_DIR / f"Pulumi.{STACK}.yaml"
    stack.write_text(STACK_TEXT)
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    assert check_registry.main(["--base", "main", "--root", str(tmp_path)]) == check_registry.EXIT_OK
    stack.write_text(STACK_TEXT.replace("fraud_detector/6", "fraud_detector/9"))
    _git(tmp_path, "commit", "-q", "-am", "edit")
    assert check_registry.main(["--base", "main~1", "--root", str(tmp_path)]) == check_registry.EXIT_ERROR
    assert "no MLflow tracking URI" in capsys.readouterr().err


def test_move_aliases_main_refuses_an_unregistered_uri(tmp_path, capsys):
    path = tmp_path / f"Pulumi.{STACK}.yaml"
    path.write_text(STACK_TEXT.replace("models:/fraud_detector/5", "runs:/abc/model"))
    assert move_aliases.main([str(path), "--tracking-uri", "http://127.0.0.1:9"]) == move_aliases.EXIT_FAILED
    assert "not models:/" in capsys.readouterr().err
