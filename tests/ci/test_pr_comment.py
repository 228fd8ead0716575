"""The PR comment builder (mlplatform/tools/ci/pr_comment.py) on recorded engine output.

The previews in tests/ci/recorded/ were recorded by the e2e tier with the real CLI
(recorded/README.md says how); the builder must read them as the engine wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlplatform.tools.ci.pr_comment import (
    BUDGET,
    GITHUB_LIMIT,
    MARKER,
    Preview,
    StackReport,
    existing_comment,
    main,
    read_preview,
    render,
)

RECORDED = Path(__file__).parent / "recorded"
STEP = RECORDED / "mlmodel--churn-plan.preview.json"
DIFF = json.loads((RECORDED / "mlmodel--fraud-detector-prod.diff.json").read_text())
VIOLATIONS = sorted(p for p in RECORDED.glob("*.preview.json") if p != STEP)
assert VIOLATIONS, "tests/ci/recorded/ holds recorded previews with violations (README.md says how)"
LOG = "https://github.com/example/mlplatform/actions/runs/1/job/2"


def test_a_recorded_weight_step_reads_as_two_updates_and_no_violation() -> None:
    preview = read_preview(STEP.read_text())
    assert preview.result == "succeeded"
    assert preview.counts["update"] == 2
    assert sorted(name for op, name in preview.steps if op == "update") == [
        "InferenceService churn-inference-service",
        "TrafficSplit churn-split",
    ]
    assert preview.violations == [] and preview.has_policy_results


@pytest.mark.parametrize("recorded", VIOLATIONS, ids=lambda p: p.name)
def test_a_recorded_violation_fails_the_stack_and_names_the_rule(recorded: Path) -> None:
    preview = read_preview(recorded.read_text())
    assert preview.violations, recorded.name
    comment = render([StackReport("policy-fixture/x", preview)], LOG)
    for violation in preview.violations:
        assert f"`{violation['policy']}`" in comment
    if preview.mandatory:
        assert preview.result == "failed"
        assert "| `policy-fixture/x` | failed |" in comment


def test_the_comment_holds_counts_blast_radius_policy_and_the_gate_verdict() -> None:
    verdict = {
        "outcome": "pass",
        "statistic": {"successRate": 0.998, "p99LatencyMs": 41},
        "reason": "canary within bounds of stable over 3 windows",
    }
    comment = render([StackReport("mlmodel/churn-plan", read_preview(STEP.read_text()), DIFF, verdict)], LOG)
    assert comment.startswith(MARKER + "\n")
    assert "| `mlmodel/churn-plan` | ok | 0 | 2 | 0 | 0 | 0 mandatory, 0 advisory |" in comment
    assert "spec.backends[1].weight 10 -> 25" in comment
    assert "no pod template changes" in comment
    assert "**Canary gate**: **pass**; statistic: successRate 0.998, p99LatencyMs 41; reason: canary within" in comment
    assert f"[job log]({LOG})" in comment


def test_the_plain_json_document_is_read_and_says_it_has_no_policy_results() -> None:
    document = {
        "steps": [{"op": "update", "urn": "urn:pulumi:s::p::kubernetes:apps/v1:Deployment::web"}],
        "changeSummary": {"update": 1, "same": 4},
        "diagnostics": [],
    }
    preview = read_preview(json.dumps(document, indent=2))
    assert preview.counts == {"update": 1, "same": 4} and not preview.has_policy_results
    assert "carries no policy results" in render([StackReport("p/s", preview)], LOG)


def test_a_huge_preview_stays_under_githubs_limit_and_points_at_the_log() -> None:
    steps = [("update", f"Deployment web-{i:05d}-" + "x" * 60) for i in range(3000)]
    violations = [
        {
            "policy": "images-pinned",
            "level": "mandatory",
            "resource": f"Deployment web-{i}",
            "message": "image 'x:latest' uses the moving tag 'latest' " * 3,
        }
        for i in range(2000)
    ]
    reports = [StackReport(f"p/s{i}", Preview("failed", {"update": 3000}, steps, violations)) for i in range(5)]
    comment = render(reports, LOG)
    assert len(comment) <= BUDGET < GITHUB_LIMIT
    assert comment.startswith(MARKER)
    assert f"[job log]({LOG})" in comment
    assert "| `p/s4` | failed |" in comment, "every stack keeps its summary row"


def test_the_earlier_comment_is_found_by_its_marker(tmp_path: Path, capsys) -> None:
    pages = [[{"id": 1, "body": "LGTM"}], [{"id": 7, "body": MARKER + "\n## Pulumi preview"}]]
    assert existing_comment([c for page in pages for c in page]) == 7
    (tmp_path / "comments.json").write_text("".join(json.dumps(p) for p in pages))
    assert main(["existing-comment", "--comments", str(tmp_path / "comments.json")]) == 0
    assert capsys.readouterr().out.strip() == "7"


def test_build_reads_a_directory_of_stack_outputs(tmp_path: Path) -> None:
    (tmp_path / "mlmodel--churn-plan.preview.json").write_text(STEP.read_text())
    (tmp_path / "mlmodel--churn-plan.diff.json").write_text(json.dumps(DIFF))
    (tmp_path / "mlmodel--churn-plan.verdict.json").write_text(json.dumps({"outcome": "hold", "reason": "dwell"}))
    out = tmp_path / "comment.md"
    assert main(["build", "--dir", str(tmp_path), "--log-url", LOG, "--out", str(out)]) == 0
    text = out.read_text()
    assert "### `mlmodel/churn-plan`" in text and "**Canary gate**: **hold**; reason: dwell" in text
    assert main(["build", "--dir", str(tmp_path / "empty"), "--out", str(out)]) == 2


def test_the_judges_record_as_the_rollout_stores_it_is_shown() -> None:
    """The record `rollout` keeps in the InferenceService status (GateVerdict.to_record): outcome, when, the
    measured values that are known, and the reasons."""
    record = {
        "outcome": "pass",
        "window": {"since": "2026-12-04T20:00:00Z", "checkedAt": "2026-12-04T20:05:00Z"},
        "measured": {"successRate": 0.999, "p99LatencyMs": 31.0, "accuracy": None},
        "reasons": ["success rate 0.999 within bounds", "p99 31 ms under 500 ms"],
    }
    comment = render([StackReport("mlmodel/x", read_preview(STEP.read_text()), verdict=record)], LOG)
    assert (
        "**Canary gate**: **pass**; checked at 2026-12-04T20:05:00Z; statistic: successRate 0.999, "
        "p99LatencyMs 31.0; reason: success rate 0.999 within bounds; p99 31 ms under 500 ms"
    ) in comment


def test_annotate_names_each_violation_and_fails_a_failed_preview(capsys) -> None:
    """The job log's view: one `::error::` per mandatory violation naming its rule, exit 1; a clean preview
    prints its counts and exits 0; a missing file is an error, never a pass."""
    jump = RECORDED / "mlmodel--churn-plan-jump.preview.json"
    assert main(["annotate", str(jump)]) == 1
    out = capsys.readouterr().out
    assert "::error title=policy canary-weight-step (mandatory)::TrafficSplit churn-split: " in out
    assert "from 10 to 60" in out
    assert main(["annotate", str(STEP)]) == 0
    # The live record's read (the aborted-canary check) is counted apart from the changes.
    assert "preview succeeded: 2 to update; 27 unchanged, 1 read; policy: 0 mandatory, 0 advisory" in (
        capsys.readouterr().out
    )
    assert main(["annotate", str(RECORDED / "missing.preview.json")]) == 1


def test_a_stack_whose_job_left_no_output_still_gets_its_row(tmp_path: Path) -> None:
    """Every preview job may fail before `pulumi preview` writes anything (a missing variable, the
    login): the comment still names each stack of the matrix, and says why it has no preview."""
    (tmp_path / "previews").mkdir()
    (tmp_path / "previews" / STEP.name).write_text(STEP.read_text())
    matrix = json.dumps(
        {"include": [{"project": "stacks/model", "stack": "churn-plan"}, {"project": ".", "stack": "dev"}]}
    )
    out = tmp_path / "comment.md"
    argv = ["build", "--dir", str(tmp_path / "previews"), "--out", str(out), "--log-url", LOG]
    assert main([*argv, "--expect", matrix, "--root", str(Path(__file__).parents[2])]) == 0
    text = out.read_text()
    assert "| `mlmodel/churn-plan` | ok | 0 | 2 |" in text
    assert "| `mlplatform/dev` | no output | - | - | - | - | - |" in text
    assert "**Preview**: no preview output: the job ended before `pulumi preview` wrote it" in text

    # Not one preview came back: still a comment, not a failed comment job.
    empty = tmp_path / "none"
    assert main(["build", "--dir", str(empty), "--out", str(out), "--expect", matrix, "--root", "."]) == 0
    assert out.read_text().count("| no output |") == 2
