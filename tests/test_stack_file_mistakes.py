"""Issue 13: a stack file that Pulumi would refuse, or read differently, stops `render` and `diff`
with exit code 2, the file, line and column, and no traceback; nothing is written.

The cases run the CLI in-process on a copy of the model project (or the platform's) with
one stack file written per case. One test runs the CLI as a subprocess, since asyncio's
"never retrieved" noise goes to the real stderr when the interpreter collects it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlplatform.configuration import ConfigError
from mlplatform.tools.cli import main
from mlplatform.tools.stackfile.reader import read_stack_config
from tests.support.helpers import ROOT

MODEL_DIR = ROOT / "stacks" / "model"
GOOD = (MODEL_DIR / "Pulumi.fraud-detector-dev.yaml").read_text()

# (id, stack file bytes, "line:column" the message must point at (or "" when the whole
# file is at fault), fragment of the problem)
STACK_FILE_MISTAKES: list[tuple[str, bytes, str, str]] = [
    (
        "duplicate-top-level",
        b"config:\n  mlmodel:environment: dev\n  mlmodel:environment: prod\n",
        ":3:3:",
        'duplicate key "mlmodel:environment"',
    ),
    (
        "duplicate-nested",
        b"config:\n  mlmodel:stable:\n    version: v5\n    image: a:1\n    version: v6\n",
        ":5:5:",
        'duplicate key "version"',
    ),
    (
        "duplicate-in-list-item",
        b"config:\n  mlmodel:allowedClients:\n    - serviceAccount: a\n      namespace: b\n      namespace: c\n",
        ":5:7:",
        'duplicate key "namespace"',
    ),
    (
        "duplicate-in-flow-mapping",
        b"config:\n  mlmodel:serving: {port: 8080, port: 9090}\n",
        ":2:33:",
        'duplicate key "port"',
    ),
    ("tab-indentation", b"config:\n\tmlmodel:environment: dev\n", ":2:1:", "never tabs"),
    ("tab-in-nested-block", b"config:\n  mlmodel:model:\n  \tname: x\n", ":3:3:", "never tabs"),
    ("unclosed-flow-sequence", b"config:\n  mlmodel:steps: [10, 25\n", ":3:1:", "expected ',' or ']'"),
    ("bad-indentation", b"config:\n  mlmodel:model:\n    name: a\n   namespace: b\n", ":4:", "expected <block end>"),
    ("unclosed-quote", b'config:\n  mlmodel:environment: "dev\n', ":3:1:", "found unexpected end of stream"),
    ("latin-1-byte", b"config:\n  mlmodel:environment: d\xe9v\n", ":2:25:", "is not UTF-8 (byte 0xe9)"),
    ("utf-16", "config: {}\n".encode("utf-16"), ":1:1:", "is not UTF-8"),
    ("bare-scalar", b"just some text\n", ":1:1:", "must be a mapping with a `config:` key, but is a scalar"),
    ("top-level-list", b"- config: {}\n", ":1:1:", "but is a list"),
    ("config-is-a-scalar", b"config: 5\n", "", "`config:` must be a mapping of keys to values, but is a scalar"),
    ("config-is-a-list", b"config:\n  - mlmodel:environment: dev\n", "", "but is a list"),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the model project, so each case writes its own stack file."""
    target = tmp_path / "model"
    target.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(MODEL_DIR / name, target / name)
    return target


def _cli(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(argv))
    return code, stdout.getvalue(), stderr.getvalue()


COMMANDS = {
    "render": lambda project, out: ("render", str(project), "bad", "--out", str(out), "--platform-dir", str(ROOT)),
    "diff": lambda project, out: (
        "diff",
        str(project),
        "bad",
        "--set",
        "canary.weight=25",
        "--platform-dir",
        str(ROOT),
    ),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("content", "where", "problem"), [pytest.param(c, w, p, id=i) for i, c, w, p in STACK_FILE_MISTAKES]
)
def test_bad_stack_file_exits_2_naming_file_line_and_column(project, tmp_path, command, content, where, problem):
    """The user is sent to the exact line; no traceback, no half-written render."""
    stack_file = project / "Pulumi.bad.yaml"
    stack_file.write_bytes(content)
    out = tmp_path / "out"
    code, stdout, stderr = _cli(*COMMANDS[command](project, out))
    assert code == 2
    assert f"{stack_file}{where}" in stderr and problem in stderr, stderr
    assert "Traceback" not in stderr + stdout
    assert not out.exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("mlmodl:canary", "did you mean 'mlmodel:canary'?"),
        ("mlplatform:mesh", "belong to the platform project"),
        ("mlplatfrom:cluster", "did you mean"),
    ],
)
def test_foreign_namespace_in_a_stack_file_exits_2(project, tmp_path, command, key, hint):
    """The offline path refuses what `pulumi up` refuses: a key the program would silently ignore."""
    (project / "Pulumi.bad.yaml").write_text(GOOD + f"  {key}:\n    weight: 10\n")
    code, _, stderr = _cli(*COMMANDS[command](project, tmp_path / "out"))
    assert code == 2
    assert f"{key}: " in stderr and hint in stderr, stderr
    assert "Traceback" not in stderr


def test_nested_secure_values_render_as_placeholders_and_stay_secret(tmp_path):
    """A real stack carries `secure:` values (here as `--secret --path` nests them); render accepts
    them as opaque placeholders, says so, and writes none of them without --show-secrets."""
    project = tmp_path / "platform"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    (project / "Pulumi.ex.yaml").write_text(
        "config:\n"
        "  mlplatform:cluster:\n    mode: existing\n    kubeconfig:\n      secure: v1:AAAAbbbbCCCC\n"
        "  mlplatform:mlflow:\n    backend: in-cluster\n    artifactBucket: ml-artifacts\n"
    )
    code, stdout, stderr = _cli("render", str(project), "ex", "--out", str(tmp_path / "out"))
    assert (code, stderr) == (0, "")
    assert "rendered as [secret:<key>] placeholders: mlplatform:cluster.kubeconfig" in stdout
    written = "".join(p.read_text() for p in (tmp_path / "out").rglob("*.yaml"))
    assert "[secret:mlplatform:cluster.kubeconfig]" not in written
    assert yaml.safe_load((tmp_path / "out" / "outputs.yaml").read_text())["kubeconfig"] == "[secret]"
    code, _, _ = _cli("render", str(project), "ex", "--out", str(tmp_path / "shown"), "--show-secrets")
    shown = yaml.safe_load((tmp_path / "shown" / "outputs.yaml").read_text())
    assert (code, shown["kubeconfig"]) == (0, "[secret:mlplatform:cluster.kubeconfig]")


def test_whole_object_secret_offline_says_what_to_do(tmp_path):
    """`pulumi config set --secret cluster '{...}'` cannot be read offline; the message says so
    and names the --path form instead of "Input should be a valid dictionary"."""
    project = tmp_path / "platform"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, project / name)
    (project / "Pulumi.whole.yaml").write_text("config:\n  mlplatform:cluster:\n    secure: v1:AAAAbbbb\n")
    code, _, stderr = _cli("render", str(project), "whole", "--out", str(tmp_path / "out"))
    assert code == 2
    assert "mlplatform:cluster is a secure: value, which an offline run cannot decrypt" in stderr
    assert "pulumi config set --secret --path 'cluster.<field>'" in stderr


def test_secure_values_are_found_at_any_depth(tmp_path):
    """Top level, nested, inside lists: each is a placeholder whose key path is recorded."""
    stack_file = tmp_path / "Pulumi.s.yaml"
    stack_file.write_text(
        "config:\n  aws:secretKey:\n    secure: v1:a\n  cluster:\n    kubeconfig:\n      secure: v1:b\n"
        "  alerts:\n    receivers:\n      - url:\n          secure: v1:c\n"
    )
    config = read_stack_config(stack_file, "mlplatform")
    assert config.secret_paths == [
        "aws:secretKey",
        "mlplatform:cluster.kubeconfig",
        "mlplatform:alerts.receivers[0].url",
    ]
    assert config.values["mlplatform:alerts"]["receivers"][0]["url"] == "[secret:mlplatform:alerts.receivers[0].url]"


def test_unresolvable_stack_reference_prints_only_the_message(tmp_path):
    """No "coroutine was never awaited" or "Task exception was never retrieved" before the error:
    stderr is the one error line (run as a subprocess: asyncio writes that noise at exit)."""
    project = tmp_path / "model"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(MODEL_DIR / name, project / name)
    (project / "Pulumi.bad.yaml").write_text(GOOD.replace("organization/mlplatform/dev", "organization/mlplatform/qa"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlplatform.tools.cli",
            "render",
            str(project),
            "bad",
            "--out",
            str(tmp_path / "out"),
            "--platform-dir",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "error: mlmodel:platformStack = 'organization/mlplatform/qa': the platform stack cannot be answered "
        "offline: "
        f"no stack 'qa' in {ROOT} (stack files found: dev, prod)"
    ], run.stderr


def test_validate_stack_file_applies_the_program_rules_without_running_it(tmp_path):
    """What the rollout verbs call: the same namespace, secret and model checks as `pulumi up`."""
    from mlplatform.model.config import CONFIG_NAMESPACE, ModelStackConfig
    from mlplatform.tools.stackfile.reader import validate_stack_file

    good = tmp_path / "Pulumi.good.yaml"
    good.write_text(GOOD)
    assert validate_stack_file(good, ModelStackConfig, CONFIG_NAMESPACE).stable.version == "v5"
    typo = tmp_path / "Pulumi.typo.yaml"
    typo.write_text(GOOD + "  mlmodl:canary:\n    weight: 10\n")
    with pytest.raises(ConfigError, match=r"mlmodl:canary: .*did you mean 'mlmodel:canary'\?"):
        validate_stack_file(typo, ModelStackConfig, CONFIG_NAMESPACE)
    duplicate = tmp_path / "Pulumi.dup.yaml"
    duplicate.write_text(GOOD + "  mlmodel:environment: prod\n")
    with pytest.raises(
        ConfigError, match=r"Pulumi.dup.yaml:\d+:3: not valid YAML: found duplicate key \"mlmodel:environment\""
    ):
        validate_stack_file(duplicate, ModelStackConfig, CONFIG_NAMESPACE)


def test_rule_needing_the_platform_outputs_exits_2_without_traceback(tmp_path):
    """trafficApi 'smi' on a platform without the SMI extension can only be checked against the
    platform's outputs; it is still a config mistake: exit 2 and one message, never a traceback."""
    platform = tmp_path / "platform"
    model = tmp_path / "model"
    platform.mkdir()
    model.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, platform / name)
        shutil.copy(MODEL_DIR / name, model / name)
    (platform / "Pulumi.nosmi.yaml").write_text(
        (ROOT / "Pulumi.dev.yaml")
        .read_text()
        .replace("  mlplatform:mesh:\n    ha: false\n", "  mlplatform:mesh:\n    ha: false\n    smi: false\n")
    )
    (model / "Pulumi.bad.yaml").write_text(GOOD.replace("organization/mlplatform/dev", "organization/mlplatform/nosmi"))
    code, _, stderr = _cli("render", str(model), "bad", "--out", str(tmp_path / "out"), "--platform-dir", str(platform))
    assert code == 2
    assert stderr.startswith("error: invalid configuration for stack 'bad' (1 problem):")
    assert (
        "mlmodel:trafficApi = 'smi': the platform stack (mlmodel:platformStack = 'organization/mlplatform/nosmi') "
        "offers only ['gateway']" in stderr
    )
    assert len(stderr.splitlines()) == 2 and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
