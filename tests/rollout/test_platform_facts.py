"""The rollout tool reads the platform's facts from the platform stack's outputs, never from a default of its own."""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
from pathlib import Path

import pytest

from mlplatform.tools.rollout import cli, context
from mlplatform.tools.rollout.gate import GateVerdict, Thresholds
from mlplatform.tools.rollout.platform import Platform, PlatformOutputError, port_forward_hint
from mlplatform.tools.service_proxy import ServiceProxy
from tests.model.helpers import PLATFORM_OUTPUTS
from tests.rollout.conftest import STACK, STACK_TEXT, without_canary
from tests.support.helpers import ROOT

IN_CLUSTER_PROMETHEUS = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
# Every output the platform exports (the rollout validates the whole contract), with the facts it uses marked.
OUTPUTS = {
    **PLATFORM_OUTPUTS,
    "namespaces": {**PLATFORM_OUTPUTS["namespaces"], "serving": "serving-from-platform"},
    "prometheusUrl": IN_CLUSTER_PROMETHEUS,
    "mlflowTrackingUri": "http://mlflow.mlflow.svc.cluster.local:5000",
}
NO_NAMESPACE = STACK_TEXT.replace("    namespace: mlserve-test\n", "")


@pytest.fixture
def gate_calls(monkeypatch) -> list[dict]:
    """What the gate was asked: Prometheus URL and hint, namespace and Deployment."""
    calls: list[dict] = []

    def evaluate(client, analysis, *, namespace, deployment, stable_deployment, **window):
        calls.append(
            {
                "url": client.url,
                "hint": client.hint,
                "transport": client.transport,
                "namespace": namespace,
                "deployment": deployment,
            }
        )
        return GateVerdict(
            healthy=False,
            namespace=namespace,
            deployment=deployment,
            interval="20s",
            requests=0,
            success_rate=None,
            p99_latency_ms=None,
            accuracy=None,
            stable_success_rate=None,
            thresholds=Thresholds(20, 0.99, 500, None, False),
            reasons=["not enough traffic"],
        )

    monkeypatch.setattr(context, "evaluate", evaluate)
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    return calls


def _run(project: Path, *argv: str) -> tuple[int, list[dict]]:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    command, *rest = argv
    stream = io.StringIO()
    args = parser.parse_args(["rollout", command, STACK, "--project-dir", str(project), "--json", *rest])
    return cli.run(args, stream=stream), [json.loads(line) for line in stream.getvalue().splitlines()]


def _outputs_file(tmp_path: Path, outputs: dict) -> Path:
    path = tmp_path / "platform-outputs.json"
    path.write_text(json.dumps(outputs))
    return path


def _kubeconfig(tmp_path: Path, monkeypatch) -> None:
    """A kubeconfig for an API server on 127.0.0.1 that the stubbed gate never dials."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))


def test_namespace_and_prometheus_come_from_the_platform(
    project, stack_file, tmp_path, gate_calls, monkeypatch
) -> None:
    """Without model.namespace or flags, the gate queries the platform's serving namespace, and its
    Prometheus through the API server's service proxy of the kubeconfig's cluster."""
    _kubeconfig(tmp_path, monkeypatch)
    stack_file.write_text(NO_NAMESPACE)
    code, events = _run(project, "next", "--platform-outputs", str(_outputs_file(tmp_path, OUTPUTS)))
    assert code == 1  # the stub gate says no traffic
    (call,) = gate_calls
    assert call["namespace"] == "serving-from-platform"
    assert call["url"] == (
        "https://127.0.0.1:6443/api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy"
    )
    assert isinstance(call["transport"], ServiceProxy)
    assert events[0]["event"] == "platform" and events[0]["platformStack"] == "organization/mlplatform/dev"


def test_explicit_values_win_and_skip_the_platform(project, stack_file, gate_calls, monkeypatch) -> None:
    """model.namespace and $PROMETHEUS_URL (a laptop's port-forward) need no platform lookup at all."""
    monkeypatch.setenv("PROMETHEUS_URL", "http://127.0.0.1:19090")
    code, events = _run(project, "next", "--platform-outputs", "/nonexistent/outputs.json")
    assert code == 1
    (call,) = gate_calls
    assert (call["url"], call["namespace"], call["deployment"]) == (
        "http://127.0.0.1:19090",
        "mlserve-test",
        "fraud-detector-v6",
    )
    assert not [e for e in events if e["event"] == "platform"]
    code, _ = _run(project, "next", "--namespace", "other", "--prometheus-url", "http://127.0.0.1:29090")
    assert gate_calls[-1]["namespace"] == "other" and gate_calls[-1]["url"] == "http://127.0.0.1:29090"


@pytest.mark.parametrize(
    ("outputs", "missing"),
    [
        (
            {**OUTPUTS, "namespaces": {k: v for k, v in OUTPUTS["namespaces"].items() if k != "serving"}},
            "namespaces.serving",
        ),
        ({k: v for k, v in OUTPUTS.items() if k != "prometheusUrl"}, "prometheusUrl"),
    ],
)
def test_a_missing_output_is_exit_2_naming_the_platform_stack(
    project, stack_file, tmp_path, gate_calls, outputs: dict, missing: str
) -> None:
    """No silent default: a missing output stops the command and says which stack lacks which key."""
    stack_file.write_text(NO_NAMESPACE)
    code, events = _run(project, "next", "--platform-outputs", str(_outputs_file(tmp_path, outputs)))
    assert code == 2 and gate_calls == []
    assert events[-1]["error"].startswith(f"platform stack 'organization/mlplatform/dev' has no output `{missing}`")


def test_bad_outputs_file_is_exit_2(project, stack_file, tmp_path, gate_calls) -> None:
    """A broken --platform-outputs file is named with its position, like a broken stack file."""
    stack_file.write_text(NO_NAMESPACE)
    bad = tmp_path / "outputs.json"
    bad.write_text("{not json")
    code, events = _run(project, "next", "--platform-outputs", str(bad))
    assert code == 2 and f"--platform-outputs {bad}:1:2: not JSON" in events[-1]["error"]


def test_a_logged_in_pulumi_is_asked(project, stack_file, tmp_path, gate_calls, monkeypatch) -> None:
    """With no file, `pulumi stack output --json --stack <platformStack>` answers when pulumi is logged in."""
    _kubeconfig(tmp_path, monkeypatch)
    stack_file.write_text(NO_NAMESPACE)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pulumi.log"
    fake = bin_dir / "pulumi"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'if [ "$1" = whoami ]; then echo tester; exit 0; fi\n'
        # `cat`, not `echo`: sh's echo would turn the kubeconfig's `\\n` into a line break.
        f"cat {_outputs_file(tmp_path, OUTPUTS)}\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, events = _run(project, "next")
    assert code == 1 and gate_calls[0]["namespace"] == "serving-from-platform"
    assert "stack output --json --stack organization/mlplatform/dev" in log.read_text()
    assert "pulumi stack output" in events[0]["source"]


def test_offline_render_of_the_referenced_platform_stack(monkeypatch) -> None:
    """No file and no pulumi: the platform stack is rendered from this repository, as `mlplatform diff` does."""
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    platform = Platform(reference="organization/mlplatform/dev", project_dir=ROOT / "stacks" / "model")
    assert platform.serving_namespace() == "ml-serving"
    assert platform.prometheus_url().startswith("http://") and ".svc" in platform.prometheus_url()


def test_no_platform_anywhere_is_a_clear_error(tmp_path, monkeypatch) -> None:
    """Outside the repository with no pulumi and no file, the error says what to pass."""
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    platform = Platform(reference="organization/mlplatform/dev", project_dir=tmp_path)
    with pytest.raises(PlatformOutputError, match=r"no platform project found above .*--platform-outputs"):
        platform.serving_namespace()


def test_port_forward_hint_is_derived_from_the_url() -> None:
    """The hint names the platform's own service, so it cannot drift from what the platform deploys."""
    assert port_forward_hint(
        "http://mlflow.mlflow.svc.cluster.local:5000", "MLFLOW_TRACKING_URI", "--tracking-uri"
    ) == (
        "http://mlflow.mlflow.svc.cluster.local:5000 is in-cluster only; run `kubectl -n mlflow port-forward "
        "svc/mlflow 5000` and pass --tracking-uri http://127.0.0.1:5000 (or set MLFLOW_TRACKING_URI)"
    )
    assert port_forward_hint("http://127.0.0.1:9090", "PROMETHEUS_URL", "--prometheus-url") == (
        "pass --prometheus-url or set PROMETHEUS_URL to a URL this machine can reach"
    )


def test_tracking_uri_precedence(project, stack_file, tmp_path, monkeypatch) -> None:
    """--tracking-uri, then $MLFLOW_TRACKING_URI, then the platform output mlflowTrackingUri."""
    stack_file.write_text(NO_NAMESPACE)
    outputs = _outputs_file(tmp_path, OUTPUTS)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))

    def uri(*flags: str) -> str:
        args = parser.parse_args(
            ["rollout", "promote", STACK, "--project-dir", str(project), "--platform-outputs", str(outputs), *flags]
        )
        ctx = context.Context(path=stack_file, out=context.Output(True, io.StringIO()), args=args)
        return ctx.tracking_uri(ctx.load().config)

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert uri() == OUTPUTS["mlflowTrackingUri"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert uri() == "http://127.0.0.1:5000"
    assert uri("--tracking-uri", "http://127.0.0.1:5555") == "http://127.0.0.1:5555"


def test_status_prints_the_state_when_the_platform_is_missing(project, stack_file, tmp_path, gate_calls) -> None:
    """status still shows stable, canary and weight; the gate error names the platform stack; exit 2."""
    stack_file.write_text(NO_NAMESPACE)
    outputs = _outputs_file(tmp_path, {"prometheusUrl": IN_CLUSTER_PROMETHEUS})
    code, events = _run(project, "status", "--platform-outputs", str(outputs))
    assert code == 2 and gate_calls == []
    status = events[-1]
    assert status["event"] == "status" and status["weight"] == 10
    assert "platform stack 'organization/mlplatform/dev' has no output `namespaces`" in status["gateError"]


def test_the_status_store_is_the_record_of_the_platforms_crd_group(project, stack_file, tmp_path, monkeypatch) -> None:
    """Without --status-file the rollout state goes to the InferenceService record of the platform's CRD group
    (its `crdGroup` output), in the serving namespace, named after the model."""
    from mlplatform.tools import kube
    from mlplatform.tools.rollout import state
    from mlplatform.tools.stackfile import editor as stackfile

    monkeypatch.setattr(kube.KubeClient, "discover", classmethod(lambda cls, **_: "the-client"))
    monkeypatch.delenv("ROLLOUT_STATUS_FILE", raising=False)
    args = argparse.Namespace(status_file=None, platform_outputs=str(_outputs_file(tmp_path, OUTPUTS)), namespace=None)
    ctx = context.Context(path=stack_file, out=context.Output(as_json=True, stream=io.StringIO()), args=args)
    config = stackfile.read(stack_file).config
    store = ctx.status_store(config)
    assert isinstance(store, state.KubeStatusStore)
    assert (store.client, store.group) == ("the-client", OUTPUTS["crdGroup"])
    assert store.name == config.model.name


def test_without_kube_credentials_status_still_prints_and_names_the_override(
    project, stack_file, tmp_path, monkeypatch
) -> None:
    """The proxy needs the kube credentials: without them the gate is unavailable (exit 3), the rest of
    `status` is printed, and the message says how to do without the proxy."""
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    code, events = _run(project, "status", "--platform-outputs", str(_outputs_file(tmp_path, OUTPUTS)))
    assert code == 3
    (status,) = [e for e in events if e["event"] == "status"]
    assert "cannot read the kubeconfig" in status["gateError"]
    assert "through the API server's service proxy" in status["gateError"]
    assert "set PROMETHEUS_URL (or --prometheus-url)" in status["gateError"]
    assert status["weight"] == 10


def test_registry_checks_go_through_the_proxy_and_say_why_it_failed(project, stack_file, tmp_path, monkeypatch) -> None:
    """Without a tracking URI, `--from-registry` reads MLflow through the API server (a loopback forwarder
    for MLflow's client); a service without ready pods is named as such, not as MLflow's retry noise."""
    from tests.support.fake_apiserver_proxy import FakeApiServer

    server = FakeApiServer(backends={"/api/v1/namespaces/mlflow/services/mlflow:5000/proxy": None}).start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path)))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        stack_file.write_text(without_canary(NO_NAMESPACE))
        outputs = _outputs_file(tmp_path, OUTPUTS)
        code, events = _run(project, "start", "--version", "v7", "--from-registry", "--platform-outputs", str(outputs))
    finally:
        server.stop()
    assert code == 3, events
    error = events[-1]["error"]
    assert "MLflow at service mlflow/mlflow port 5000 through the API server's service proxy" in error
    assert "the service has no ready pods" in error
    assert any("/services/mlflow:5000/proxy/api/2.0/mlflow/" in r for r in server.requests)
