"""The simulated cluster itself: what the e2e tier relies on it to do, shown on its own objects."""

from __future__ import annotations

import time

import pytest

from tests.e2e.control_plane import ControlPlane

pytestmark = pytest.mark.e2e

# A namespace the cluster has before the platform: deleting one of our own would wait
# for every API group to be listable, and linkerd-viz's tap APIService never is here.
NAMESPACE = "default"
LABELS = {"app": "sim-check"}


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.3)


def test_a_service_created_after_its_ready_pods_still_gets_its_endpoints_object(control_plane: ControlPlane):
    """The order that made a model stack's `up` hang for the Service await's 10 minutes.

    With every pod IP on loopback, which the API server refuses in Endpoints, the
    endpoints controller cannot create the Endpoints of a Service whose pods already
    have IPs. kwok/service-endpoints.yaml creates it, empty, as the controller would
    for a Service without pods; it goes with its Service."""
    api = control_plane
    try:
        api.request(
            "POST",
            f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
            {
                "metadata": {"name": "server"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": LABELS},
                    "template": {
                        "metadata": {"labels": LABELS},
                        "spec": {"containers": [{"name": "server", "image": "busybox:1.36"}]},
                    },
                },
            },
        )

        def ready_with_ip() -> bool:
            pods = api.items(f"/api/v1/namespaces/{NAMESPACE}/pods")
            return bool(pods) and all(
                pod["status"].get("podIP")
                and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
                for pod in pods
            )

        _wait_for(ready_with_ip, "the pod to be Ready with an IP")
        api.request(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/services",
            {"metadata": {"name": "server"}, "spec": {"selector": LABELS, "ports": [{"port": 8080}]}},
        )
        _wait_for(lambda: api.find(f"/api/v1/namespaces/{NAMESPACE}/endpoints/server") is not None, "its Endpoints")
        # Empty: the pod's loopback address is one the API server does not accept there.
        assert not api.get(f"/api/v1/namespaces/{NAMESPACE}/endpoints/server").get("subsets")
        api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/server")
        _wait_for(lambda: api.find(f"/api/v1/namespaces/{NAMESPACE}/endpoints/server") is None, "its Endpoints to go")
    finally:
        for path in (
            f"/api/v1/namespaces/{NAMESPACE}/services/server",
            f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/server",
        ):
            if api.find(path) is not None:
                api.request("DELETE", path)
        _wait_for(
            lambda: not api.items(f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3Dsim-check"),
            "the Deployment's pods to go",
        )
