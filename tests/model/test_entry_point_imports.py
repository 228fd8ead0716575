"""The model stack's entry point imports what it uses and nothing heavy that it does not.

Every `pulumi preview` and `up` of a model stack starts a new interpreter, so each
module it imports is paid for on every rollout step. The entry point runs here, under
the offline engine's mocks, in a fresh interpreter; what it executed is read from
`sys.modules` (pulumi_kubernetes's groups are lazy modules until first touched, so
those count only once loaded).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.model.helpers import MODEL_STACK_DIR, PLATFORM_OUTPUTS, PLATFORM_STACK, with_canary
from tests.support.helpers import ROOT

# Heavy and unused by a model stack on a platform in mode existing (no IRSA): the AWS, TLS and
# random SDKs, the platform project's pydantic config models and program, the tools wing, the
# Automation API, and the pulumi_kubernetes groups a model stack never declares from.
NOT_IMPORTED = (
    "pulumi_aws",
    "pulumi_tls",
    "pulumi_random",
    "mlplatform.platform.config",
    "mlplatform.platform.cluster_config",
    "mlplatform.platform.mesh_config",
    "mlplatform.platform.monitoring_config",
    "mlplatform.platform.registry_config",
    "mlplatform.platform.program",
    "mlplatform.tools.rollout",
    "pulumi_kubernetes.helm",
    "pulumi_kubernetes.yaml",
    "pulumi_kubernetes.kustomize",
    "pulumi_kubernetes.rbac",
    "pulumi_kubernetes.storage",
)

_PROBE = """
import json, sys
from mlplatform.tools.offline.engine import run_entry_point

def loaded():
    return {name for name, module in list(sys.modules.items()) if type(module).__name__ != "_LazyModule"}

before = loaded()
run_entry_point(__import__("pathlib").Path(sys.argv[1]), stack="fraud-detector-dev", config=json.loads(sys.argv[2]),
                stack_references=json.loads(sys.argv[3]))
print(json.dumps({"harness": sorted(before), "program": sorted(loaded() - before)}))
"""


def _imports(platform_overrides: dict) -> tuple[set[str], set[str]]:
    config = {f"mlmodel:{key}": value for key, value in with_canary(10, team="team-fraud").items()}
    config["mlmodel:training"] = {
        "runId": "r1",
        "image": "ghcr.io/example/fraud-train:1.0.0",
        "dataSource": {"type": "s3", "path": "s3://example-data/x/"},
    }
    references = {PLATFORM_STACK: {**PLATFORM_OUTPUTS, **platform_overrides}}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(MODEL_STACK_DIR), json.dumps(config), json.dumps(references)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    return set(found["harness"]), set(found["program"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == name or m.startswith(name + ".") for name in NOT_IMPORTED))


def test_a_model_stack_in_mode_existing_imports_no_listed_heavy_module():
    harness, program = _imports({"workloadIdentity": {"kind": "none"}})
    assert _heavy(harness) == [], "the harness imports them itself: the check would see nothing"
    assert _heavy(program) == []
    # What it does use is loaded: the check reads real imports.
    assert {"pulumi_kubernetes.core.v1", "pulumi_kubernetes.batch.v1", "mlplatform.model.program"} <= program


def test_with_irsa_the_aws_sdk_is_imported_where_it_is_used():
    """The other side: a platform with IRSA and an S3 dataset gives the run an IAM role, so pulumi_aws loads."""
    _, program = _imports({})
    assert "pulumi_aws" in program
