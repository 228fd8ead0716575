"""The rollout tools' service proxy and the platform's grants name the same services.

The tools read where Prometheus and MLflow are from the platform's outputs (`prometheusUrl`,
`mlflowTrackingUri`) and request `services/<name>:<port>/proxy` there; the platform grants the
model deployers `get` on that resource name and admits the API server on that port. This test
renders the platform with CI on and checks the three agree, so a renamed service or a moved port
cannot leave the gate with a 403 or a dropped connection.
"""

from __future__ import annotations

import pytest

from mlplatform.platform_contract import PlatformContract
from mlplatform.tools.offline.recording import Recording
from mlplatform.tools.offline.secrets import unwrap_secrets
from mlplatform.tools.service_proxy import ServiceRef
from tests.platform.test_ci_identity import CI
from tests.support.helpers import platform_config, run_platform
from tests.support.network_policy import NETWORK_POLICY, Address, Pod, Policies
from tests.support.types import K8S_ROLE, K8S_ROLE_BINDING, K8S_SERVICE

API_SERVER = Address("10.0.1.20")  # an EKS control-plane ENI inside the VPC (platform_config's 10.0.0.0/16)
# What kube-prometheus-stack's operator labels the Prometheus pods with: `prometheus` is the service's name.
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}


@pytest.fixture(scope="module")
def rec() -> Recording:
    return run_platform(platform_config(ci=CI))


@pytest.fixture(scope="module")
def services(rec: Recording) -> dict[str, ServiceRef]:
    contract = PlatformContract.parse(unwrap_secrets(rec.stack_outputs))
    found = {
        "prometheus": ServiceRef.parse(contract.prometheus_url),
        "mlflow": ServiceRef.parse(contract.mlflow_tracking_uri),
    }
    assert all(found.values()), f"the platform's URLs are not in-cluster service URLs: {found}"
    return {k: v for k, v in found.items() if v is not None}


@pytest.mark.parametrize("which", ["prometheus", "mlflow"])
def test_model_deployers_may_get_the_proxy_path_the_tools_request(rec, services, which: str) -> None:
    service = services[which]
    roles = [
        r
        for r in rec.of_type(K8S_ROLE)
        if r.inputs["metadata"]["namespace"] == service.namespace
        and any("services/proxy" in rule["resources"] for rule in r.inputs["rules"])
    ]
    assert len(roles) == 1, f"one services/proxy Role in {service.namespace}, got {[r.name for r in roles]}"
    (rule,) = roles[0].inputs["rules"]
    assert rule["verbs"] == ["get"] and rule["resources"] == ["services/proxy"]
    assert service.segment in rule["resourceNames"]
    # Exactly this service, in each spelling the API server authorizes, and nothing else.
    spellings = {service.name, service.segment, f"http:{service.name}:{service.port}"}
    assert set(rule["resourceNames"]) <= spellings
    (binding,) = [b for b in rec.of_type(K8S_ROLE_BINDING) if b.name == roles[0].name]
    assert binding.inputs["roleRef"]["name"] == roles[0].inputs["metadata"]["name"]


def test_the_api_server_is_admitted_on_the_port_the_tools_request(rec, services) -> None:
    policies = Policies(rec.of_type(NETWORK_POLICY))
    prometheus, mlflow = services["prometheus"], services["mlflow"]
    prometheus_pod = Pod(prometheus.namespace, {**PROMETHEUS_POD_LABELS, "prometheus": prometheus.name})
    assert policies.allows(API_SERVER, prometheus_pod, prometheus.port)
    (mlflow_service,) = [
        s
        for s in rec.of_type(K8S_SERVICE)
        if s.inputs["metadata"]["name"] == mlflow.name and s.inputs["metadata"]["namespace"] == mlflow.namespace
    ]
    (port,) = [p for p in mlflow_service.inputs["spec"]["ports"] if p["port"] == mlflow.port]
    target = port.get("targetPort", port["port"])
    target_port = mlflow.port if isinstance(target, str) else target  # a named port: the container's, 5000
    assert policies.allows(API_SERVER, Pod(mlflow.namespace, mlflow_service.inputs["spec"]["selector"]), target_port)
