"""The CI helpers read stack files with the one strict reader: a key given twice fails them too."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.tools.ci import active_canaries, check_registry, deploy_matrix
from mlplatform.tools.stackfile.reader import StackFileError
from tests.rollout.conftest import STACK_TEXT

DUPLICATE = STACK_TEXT + "  mlmodel:environment: prod\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    model = tmp_path / "stacks" / "model"
    model.mkdir(parents=True)
    (model / "Pulumi.yaml").write_text("name: mlmodel\nruntime: python\n")
    (model / "Pulumi.fd.yaml").write_text(DUPLICATE)
    return tmp_path


def test_active_canaries_refuses_a_duplicate_key(repo: Path) -> None:
    """A lax reader would watch a stack whose file the Pulumi CLI refuses, with a guessed environment."""
    with pytest.raises(StackFileError, match=r"Pulumi.fd.yaml:\d+:3: not valid YAML: found duplicate key"):
        active_canaries.active(repo)


def test_deploy_matrix_refuses_a_duplicate_key(repo: Path) -> None:
    """The environment decides which GitHub environment (and reviewers) a deploy runs in: never a guess."""
    with pytest.raises(StackFileError, match='duplicate key "mlmodel:environment"'):
        deploy_matrix.stack_environment(repo, "stacks/model", "fd")


def test_check_registry_refuses_a_duplicate_key() -> None:
    """The registry gate must see the model URI the Pulumi CLI would see, or refuse."""
    with pytest.raises(StackFileError, match=r"Pulumi.fd.yaml:\d+:3"):
        check_registry.new_model_uris("stacks/model/Pulumi.fd.yaml", None, DUPLICATE)


def test_active_canaries_still_lists_a_valid_file(repo: Path) -> None:
    (repo / "stacks" / "model" / "Pulumi.fd.yaml").write_text(STACK_TEXT)
    assert active_canaries.active(repo) == [{"project": "stacks/model", "stack": "fd", "environment": "dev"}]
