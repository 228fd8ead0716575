"""The `rollout` commands that need no Prometheus, and the failure paths that must write nothing."""

from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
from pathlib import Path

from mlplatform.tools.rollout import cli
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules
from tests.rollout.conftest import STACK, STACK_TEXT, canary_in, without_canary


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _run(project: Path, *args: str, as_json: bool = True) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    command, *rest = args
    argv = ["rollout", command, STACK, "--project-dir", str(project), *rest] + (["--json"] if as_json else [])
    stream = io.StringIO()
    return cli.run(parser.parse_args(argv), stream=stream), stream.getvalue()


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_unreachable_prometheus_changes_nothing(project: Path, stack_file: Path) -> None:
    """No metrics must never move traffic: `next` exits 3 (unavailable) and the file is byte-identical."""
    code, out = _run(project, "next", "--prometheus-url", _closed_port_url(), "--prometheus-timeout", "2")
    assert code == 3
    assert "cannot reach Prometheus" in _events(out)[-1]["error"]
    assert stack_file.read_text() == STACK_TEXT


def test_prometheus_url_defaults_to_env(project: Path, monkeypatch) -> None:
    """PROMETHEUS_URL configures the gate once for a shell or a CI job."""
    monkeypatch.setenv("PROMETHEUS_URL", "http://prom.example:9090")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["rollout", "next", STACK]).prometheus_url == "http://prom.example:9090"


def test_abort_writes_weight_zero(project: Path, stack_file: Path) -> None:
    """Rollback needs no metrics: abort always works and records the reason."""
    code, out = _run(project, "abort", "--reason", "customer complaints")
    assert code == 0 and _events(out)[-1] == {
        "event": "aborted",
        "previous": 10,
        "weight": 0,
        "reason": "customer complaints",
        "written": True,
    }
    assert canary_in(stack_file).weight == 0


def test_next_after_abort_is_refused(project: Path, stack_file: Path) -> None:
    """An aborted canary does not creep back into traffic by a stray `next`."""
    _run(project, "abort", "--reason", "x")
    code, out = _run(project, "next", "--prometheus-url", _closed_port_url())
    assert code == 1 and "was aborted" in _events(out)[-1]["reason"]


def test_start_with_image_and_model_uri(project: Path, stack_file: Path) -> None:
    """`start` without the registry takes the image and model URI as given, at the first step."""
    stack_file.write_text(without_canary())
    code, out = _run(
        project,
        "start",
        "--version",
        "v7",
        "--image",
        "ghcr.io/example/fd:2.0.0",
        "--model-uri",
        "models:/fraud_detector/7",
    )
    assert code == 0, out
    canary = canary_in(stack_file)
    assert (canary.version, canary.image, canary.model_uri, canary.weight) == (
        "v7",
        "ghcr.io/example/fd:2.0.0",
        "models:/fraud_detector/7",
        10,
    )


def test_start_needs_a_model_source(project: Path, stack_file: Path) -> None:
    """Without --image/--model-uri or --from-registry there is nothing to deploy: a usage error, exit 2."""
    stack_file.write_text(without_canary())
    code, out = _run(project, "start", "--version", "v7")
    assert code == 2 and "--from-registry" in _events(out)[-1]["error"]
    assert stack_file.read_text() == without_canary()


def test_promote_below_100_refused_before_querying(project: Path) -> None:
    """Promotion is only offered at 100%; the refusal does not need Prometheus."""
    code, out = _run(project, "promote", "--prometheus-url", _closed_port_url())
    assert code == 1 and "promote only at 100%" in _events(out)[-1]["reason"]


def test_invalid_file_is_an_error_naming_the_key(project: Path, stack_file: Path) -> None:
    """A broken stack file stops every command with the config error, file untouched."""
    broken = STACK_TEXT.replace("weight: 10", "weight: 120")
    stack_file.write_text(broken)
    code, out = _run(project, "abort", "--reason", "x", as_json=False)
    assert code == 2 and "mlmodel:canary.weight = 120" in out
    assert stack_file.read_text() == broken


def test_status_without_canary_needs_no_prometheus(project: Path, stack_file: Path) -> None:
    """Status of a stack at rest shows stable and no gate."""
    stack_file.write_text(without_canary())
    code, out = _run(project, "status", "--prometheus-url", _closed_port_url(), as_json=False)
    assert code == 0
    assert "stable  v5" in out and "canary  none" in out


def test_commit_records_the_edit_in_git(project: Path, stack_file: Path) -> None:
    """--commit makes the step a Git commit of the stack file alone, with a message saying what moved."""
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "config", "user.name", "t"], cwd=project, check=True)
    subprocess.run(["git", "config", "user.email", "t@example.com"], cwd=project, check=True)
    (project / "other.txt").write_text("unrelated")
    subprocess.run(["git", "add", "."], cwd=project, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=project, check=True)
    (project / "other.txt").write_text("changed, not to be committed")
    subprocess.run(["git", "add", "other.txt"], cwd=project, check=True)
    code, _ = _run(project, "abort", "--reason", "p99 900ms", "--commit")
    assert code == 0
    log = subprocess.run(
        ["git", "log", "-1", "--format=%B", "--name-only"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    assert "abort canary v6 (10% -> 0%)" in log and "reason: p99 900ms" in log
    assert log.strip().endswith(stack_file.name)
    assert "other.txt" not in log


def test_dwell_per_step_comes_from_config(stack_file: Path) -> None:
    """watch dwells analysis.dwellMinutes[step] unless --dwell-seconds overrides it."""
    config = stackfile.load(stack_file).config
    assert rules.dwell_seconds(config, 10, None) == 5 * 60
    assert rules.dwell_seconds(config, 50, None) == 15 * 60
    assert rules.dwell_seconds(config, 30, None) == 10 * 60  # a hand-set weight dwells like the step below
    assert rules.dwell_seconds(config, 50, 0.0) == 0.0
