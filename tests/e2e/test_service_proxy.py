"""The rollout tools' service proxy client against the simulated cluster's real kube-apiserver.

The grants are the platform's own: the program is rendered in mode aws with CI on (under mocks, as
`mlplatform render` does) and its `services/proxy` Roles and RoleBindings are created as declared.
The client then acts as the CI's deploy-models identity: the admin credential impersonating a user in
the group the platform's EKS access entry maps that IAM role to (kubeconfig `as`/`as-groups`, read by
`kube.py`). The services are named by the platform's outputs.

What this verifies, on the real API server:
- RBAC: that identity may `get` the proxy path the client builds for Prometheus and MLflow, and gets
  403 for another service in the same namespace, and without the group.
- The request reaches the API server's service proxy handler, which answers 503 "no endpoints
  available": kwok's pods have loopback IPs, which the API server refuses in Endpoints, so no service
  here has endpoints and nothing is dialed (the tier's loopback guard also watches for dials).
- The client's messages for both answers.
What it does not verify: a proxied request reaching a pod (no pod runs), the NetworkPolicy admitting
the API server (no CNI here; the fast tier's policy evaluator checks the rules), and EKS's mapping
of the IAM role to the group (the access entry is AWS's).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from mlplatform.platform_contract import PlatformContract
from mlplatform.tools import kube
from mlplatform.tools.offline.secrets import unwrap_secrets
from mlplatform.tools.rollout.prometheus import PrometheusClient, PrometheusError
from mlplatform.tools.service_proxy import ServiceProxy, ServiceRef, Via
from tests.e2e.control_plane import ControlPlane
from tests.platform.test_ci_identity import CI
from tests.support.helpers import platform_config, run_platform
from tests.support.types import K8S_ROLE, K8S_ROLE_BINDING

pytestmark = pytest.mark.e2e

DEPLOYERS_GROUP = "mlplatform:model-deployers"
CI_USER = "deploy-models-e2e"
ENDPOINTS_TIMEOUT = 30.0


def _create(api: ControlPlane, path: str, body: dict) -> bool:
    """Create unless it exists (a platform this session deployed owns it then); True if created here."""
    try:
        api.request("POST", path, body)
    except AssertionError as err:
        if " 409 " in str(err):
            return False
        raise
    return True


def _service(namespace: str, name: str, port: int) -> dict:
    # A selector no pod matches: the endpoints controller writes an empty Endpoints object (without a
    # selector there would be none, and the proxy handler answers 404), and there is nothing to dial.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"app.kubernetes.io/name": "proxy-e2e-no-pods"},
            "ports": [{"name": "http", "port": port}],
        },
    }


def _wait_for_endpoints(api: ControlPlane, refs: list[ServiceRef]) -> None:
    deadline = time.monotonic() + ENDPOINTS_TIMEOUT
    for ref in refs:
        while api.find(f"/api/v1/namespaces/{ref.namespace}/endpoints/{ref.name}") is None:
            assert time.monotonic() < deadline, f"no Endpoints object for {ref.describe()} after {ENDPOINTS_TIMEOUT}s"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def granted(control_plane: ControlPlane) -> Iterator[dict[str, ServiceRef]]:
    """The platform's services and its grants on the real API server; removed again afterwards."""
    rec = run_platform(platform_config(ci=CI))
    contract = PlatformContract.parse(unwrap_secrets(rec.stack_outputs))
    services = {
        "prometheus": ServiceRef.parse(contract.prometheus_url),
        "mlflow": ServiceRef.parse(contract.mlflow_tracking_uri),
    }
    refs = {k: v for k, v in services.items() if v is not None}
    assert len(refs) == 2, services
    other = ServiceRef(refs["prometheus"].namespace, "proxy-e2e-not-granted", 80)
    created: list[str] = []
    for ref in (*refs.values(), other):
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ref.namespace}}
        _create(control_plane, "/api/v1/namespaces", namespace)
        if _create(
            control_plane, f"/api/v1/namespaces/{ref.namespace}/services", _service(ref.namespace, ref.name, ref.port)
        ):
            created.append(f"/api/v1/namespaces/{ref.namespace}/services/{ref.name}")
    for kind, plural in ((K8S_ROLE, "roles"), (K8S_ROLE_BINDING, "rolebindings")):
        for resource in rec.of_type(kind):
            if resource.name.startswith("ci-proxy-"):
                namespace = resource.inputs["metadata"]["namespace"]
                base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/{plural}"
                assert _create(control_plane, base, resource.inputs)
                created.append(f"{base}/{resource.inputs['metadata']['name']}")
    _wait_for_endpoints(control_plane, [*refs.values(), other])
    yield {**refs, "other": other}
    for path in reversed(created):
        control_plane.request("DELETE", path)


def _client(api: ControlPlane, tmp_path, groups: tuple[str, ...] = (DEPLOYERS_GROUP,)) -> kube.KubeClient:
    config = json.loads(api.kubeconfig())
    config["users"][0]["user"].update({"as": CI_USER, "as-groups": list(groups)})
    path = tmp_path / "ci.kubeconfig"
    path.write_text(json.dumps(config))
    return kube.KubeClient(kube.from_kubeconfig(path), timeout=30)


def _answer(client: kube.KubeClient, ref: ServiceRef) -> kube.KubeApiError:
    with pytest.raises(kube.KubeApiError) as raised:
        client.request("GET", ref.proxy_path("/api/v1/query"), query={"query": "up"})
    return raised.value


@pytest.mark.parametrize("which", ["prometheus", "mlflow"])
def test_the_ci_identity_reaches_the_proxy_handler(control_plane, granted, tmp_path, which: str) -> None:
    """Authorized, so the API server's proxy handler answers: no endpoints, not forbidden."""
    ref = granted[which]
    answer = _answer(_client(control_plane, tmp_path), ref)
    assert answer.from_api_server and answer.status == 503, answer
    assert answer.detail == f'no endpoints available for service "{ref.name}"'


def test_another_service_is_forbidden(control_plane, granted, tmp_path) -> None:
    answer = _answer(_client(control_plane, tmp_path), granted["other"])
    assert answer.from_api_server and answer.status == 403, answer
    assert f'User "{CI_USER}" cannot get resource "services/proxy"' in answer.detail


def test_without_the_group_the_platforms_services_are_forbidden(control_plane, granted, tmp_path) -> None:
    """The group binding is what grants it: the same user outside the group gets 403."""
    answer = _answer(_client(control_plane, tmp_path, groups=()), granted["prometheus"])
    assert answer.status == 403, answer


def test_the_gate_client_words_both_answers(control_plane, granted, tmp_path) -> None:
    """The gate's own client over the real API server: 503 says no ready pods, 403 names the grant."""
    client = _client(control_plane, tmp_path)
    via = Via("Prometheus", "PROMETHEUS_URL")
    with pytest.raises(PrometheusError, match="the service has no ready pods"):
        PrometheusClient.through(ServiceProxy(client, granted["prometheus"], via)).query("up")
    with pytest.raises(PrometheusError) as raised:
        PrometheusClient.through(ServiceProxy(client, granted["other"], via)).query("up")
    assert "may not `get` the resource `services/proxy` named 'proxy-e2e-not-granted:80'" in str(raised.value)
    assert f'User \\"{CI_USER}\\"' in json.dumps(str(raised.value))


def test_a_post_through_the_proxy_needs_more_than_get(control_plane, granted, tmp_path) -> None:
    """RBAC grants `get` only: a POST (MLflow's alias writes) is `create` on services/proxy and is refused.
    This is why the deploy workflow's alias step keeps MLFLOW_TRACKING_URI (docs)."""
    client = _client(control_plane, tmp_path)
    path = granted["mlflow"].proxy_path("/api/2.0/mlflow/registered-models/alias")
    with pytest.raises(kube.KubeApiError) as raised:
        client.request("POST", path, body={"name": "m", "alias": "champion", "version": "1"})
    assert raised.value.status == 403 and 'cannot create resource "services/proxy"' in raised.value.detail
    assert urllib.parse.quote(granted["mlflow"].segment, safe=":") in path
