"""Rollout steps as edits of the stack file: reviewable, comment-preserving, validated, atomic."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules
from tests.rollout.conftest import STACK, STACK_TEXT, with_weight, without_canary
from tests.support.helpers import ROOT

IMAGE = "ghcr.io/example/fraud-detector-serving:1.1.0"


def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_weight_step_is_a_one_line_diff(stack_file: Path) -> None:
    """A rollout step must show up in the PR as exactly the weight line, comment kept."""
    stackfile.apply_edit(stack_file, stackfile.set_weight(25))
    assert _changed_lines(STACK_TEXT, stack_file.read_text()) == [
        "-    weight: 10  # the first step",
        "+    weight: 25  # the first step",
    ]


def test_comments_and_key_order_survive_every_edit(stack_file: Path) -> None:
    """Reviewers rely on the file's comments and layout; edits must not reflow it."""
    for weight in (25, 50, 75, 100):
        stackfile.apply_edit(stack_file, stackfile.set_weight(weight))
    text = stack_file.read_text()
    # The number is replaced in place: the rest of the line is kept byte for byte.
    assert _changed_lines(STACK_TEXT, text) == [
        "-    weight: 10  # the first step",
        "+    weight: 100  # the first step",
    ]
    keys = [
        line.split(":")[0] + ":" + line.split(":")[1] for line in text.splitlines() if line.startswith("  mlmodel:")
    ]
    assert keys == [
        "  mlmodel:platformStack",
        "  mlmodel:environment",
        "  mlmodel:model",
        "  mlmodel:stable",
        "  mlmodel:canary",
        "  mlmodel:allowedClients",
        "  mlmodel:analysis",
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "stacks" / "model").glob("Pulumi.*-*.yaml")), ids=lambda p: p.name)
def test_repository_stack_files_round_trip_unchanged(path: Path) -> None:
    """The real stack files must survive a load/dump untouched, or every step would reformat them."""
    text = path.read_text()
    assert stackfile._dump(stackfile.parse(path, text), like=text) == text


def test_invalid_edit_is_refused_and_file_is_byte_identical(stack_file: Path) -> None:
    """A weight the stack model rejects must never reach the file."""
    before = stack_file.read_bytes()
    with pytest.raises(stackfile.StackFileError, match=r"mlmodel:canary\.weight = 150"):
        stackfile.apply_edit(stack_file, stackfile.set_weight(150))
    assert stack_file.read_bytes() == before


def test_invalid_file_is_reported_and_left_alone(stack_file: Path) -> None:
    """A broken file is the user's to fix; the tool names the bad key and writes nothing."""
    broken = STACK_TEXT.replace("weight: 10", "weight: ten")
    stack_file.write_text(broken)
    with pytest.raises(ConfigError, match=r"mlmodel:canary\.weight = 'ten'"):
        stackfile.apply_edit(stack_file, stackfile.set_weight(25))
    assert stack_file.read_text() == broken


def test_unparsable_yaml_is_a_clear_error(stack_file: Path) -> None:
    """A YAML syntax error must name the file rather than raise a parser traceback."""
    stack_file.write_text("config:\n  mlmodel:stable: [unclosed\n")
    with pytest.raises(stackfile.StackFileError, match="not valid YAML"):
        stackfile.load(stack_file)


def test_no_temp_files_are_left_behind(stack_file: Path) -> None:
    """The atomic write's temp file is renamed over the target, not left beside it."""
    stackfile.apply_edit(stack_file, stackfile.set_weight(25))
    with pytest.raises(stackfile.StackFileError):
        stackfile.apply_edit(stack_file, stackfile.set_weight(0 - 1))
    assert sorted(p.name for p in stack_file.parent.iterdir()) == [stack_file.name]


def test_dry_run_writes_nothing(stack_file: Path) -> None:
    """`next --dry-run` must leave the file as it was while reporting the new config."""
    result = stackfile.apply_edit(stack_file, stackfile.set_weight(25), dry_run=True)
    assert rules.require_canary(result.after).weight == 25 and not result.written
    assert stack_file.read_text() == STACK_TEXT


def test_start_inserts_canary_after_stable_at_first_step(stack_file: Path) -> None:
    """A new canary lands next to stable, at the first step, with the rest untouched."""
    stack_file.write_text(without_canary())
    result = stackfile.apply_edit(stack_file, stackfile.start_canary("v6", IMAGE, "models:/fraud_detector/6"))
    assert rules.require_canary(result.after).weight == 10
    assert _changed_lines(without_canary(), stack_file.read_text()) == [
        "+  mlmodel:canary:",
        "+    version: v6",
        f"+    image: {IMAGE}",
        "+    modelUri: models:/fraud_detector/6",
        "+    weight: 10",
    ]


def test_start_refused_while_a_canary_takes_traffic(stack_file: Path) -> None:
    """Two rollouts at once would silently replace the canary under test."""
    with pytest.raises(rules.Refused, match="rollout is under way: canary v6 at 10%"):
        stackfile.apply_edit(stack_file, stackfile.start_canary("v7", IMAGE, "models:/fraud_detector/7"))
    assert stack_file.read_text() == STACK_TEXT


def test_start_refuses_the_stable_version(stack_file: Path) -> None:
    """The stack model's rule (canary differs from stable) is enforced before writing."""
    stack_file.write_text(without_canary())
    with pytest.raises(stackfile.StackFileError, match=r"must differ from stable\.version"):
        stackfile.apply_edit(stack_file, stackfile.start_canary("v5", IMAGE, "models:/fraud_detector/7"))
    assert stack_file.read_text() == without_canary()


def test_abort_sets_weight_zero_with_reason(stack_file: Path) -> None:
    """Rollback is weight 0, and the file says why for whoever reads it next."""
    result = stackfile.apply_edit(stack_file, stackfile.abort("p99 900ms"))
    assert rules.require_canary(result.after).weight == 0
    assert _changed_lines(STACK_TEXT, stack_file.read_text()) == [
        "-    weight: 10  # the first step",
        "+    weight: 0  # aborted: p99 900ms",
    ]


def test_promote_moves_canary_into_stable(stack_file: Path) -> None:
    """Promotion: stable takes the canary's version, image and model; the canary block goes."""
    stack_file.write_text(
        with_weight(100).replace(
            "image: ghcr.io/example/fraud-detector-serving:1.0.0\n    modelUri: models:/fraud_detector/6",
            f"image: {IMAGE}\n    modelUri: models:/fraud_detector/6",
        )
    )
    result = stackfile.apply_edit(stack_file, stackfile.promote())
    assert result.after.canary is None
    assert (result.after.stable.version, result.after.stable.image, result.after.stable.model_uri) == (
        "v6",
        IMAGE,
        "models:/fraud_detector/6",
    )
    assert "# stable takes whatever the canary does not" in stack_file.read_text()


def test_promote_refused_below_100(stack_file: Path) -> None:
    """Promoting early would skip the last gated steps."""
    with pytest.raises(rules.Refused, match="at 10%; promote only at 100%"):
        stackfile.apply_edit(stack_file, stackfile.promote())
    assert stack_file.read_text() == STACK_TEXT


def test_set_weight_without_canary_is_refused(stack_file: Path) -> None:
    """A weight with no canary is meaningless; the error points to `rollout start`."""
    stack_file.write_text(without_canary())
    with pytest.raises(rules.Refused, match="rollout start"):
        stackfile.apply_edit(stack_file, stackfile.set_weight(25))


def test_stack_path_defaults_to_model_project() -> None:
    """`<stack>` resolves to the model project's stack file unless --project-dir says otherwise."""
    assert stackfile.stack_path(STACK) == Path("stacks/model") / f"Pulumi.{STACK}.yaml"
    assert stackfile.stack_path(STACK, "/x") == Path("/x") / f"Pulumi.{STACK}.yaml"


def test_start_keeps_crlf_and_the_document_marker(stack_file: Path) -> None:
    """A block edit goes through a YAML round trip, which must not rewrite every line ending."""
    text = ("---\n" + without_canary()).replace("\n", "\r\n")
    stack_file.write_bytes(text.encode())
    stackfile.apply_edit(stack_file, stackfile.start_canary("v6", IMAGE, "models:/fraud_detector/6"))
    after = stack_file.read_bytes().decode()
    assert after.startswith("---\r\n") and after.count("\n") == after.count("\r\n")
    assert after.count("\r\n") == text.count("\r\n") + 5
