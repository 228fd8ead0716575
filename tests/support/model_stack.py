"""The model stack file the e2e tier puts up on the simulated cluster: one builder for every test.

A stable version and a canary at `weight`, both serving from MLflow's image, in the
team-fraud namespace's quota, callable by the api-gateway. Tests add what they are
about (`extra`: the gate's analysis, steps, a training job) as stack-file lines.
"""

from __future__ import annotations

IMAGE = "ghcr.io/mlflow/mlflow:v3.15.1-full"


def model_stack_config(
    platform: str,
    *,
    model: str = "fraud-detector",
    registered_model: str = "fraud_detector",
    stable: int = 5,
    canary: int = 6,
    weight: int = 10,
    max_replicas: int = 1,
    extra: str = "",
) -> str:
    """The `config:` block's body (each line indented two spaces), for `platform`'s StackReference.
    Versions are `v<stable>`/`v<canary>`, registered as `models:/<registered_model>/<n>`."""
    return (
        f"  mlmodel:platformStack: {platform}\n"
        "  mlmodel:environment: dev\n"
        "  mlmodel:model:\n"
        f"    name: {model}\n"
        f"    registeredModel: {registered_model}\n"
        "  mlmodel:team: team-fraud\n"
        "  mlmodel:serving:\n"
        "    replicas:\n"
        "      min: 1\n"
        f"      max: {max_replicas}\n"
        "  mlmodel:stable:\n"
        f"    version: v{stable}\n"
        f"    image: {IMAGE}\n"
        f"    modelUri: models:/{registered_model}/{stable}\n"
        "  mlmodel:canary:\n"
        f"    version: v{canary}\n"
        f"    image: {IMAGE}\n"
        f"    modelUri: models:/{registered_model}/{canary}\n"
        f"    weight: {weight}\n"
        "  mlmodel:allowedClients:\n"
        "    - serviceAccount: api-gateway\n"
        "      namespace: api-gateway\n"
        f"{extra}"
    )
