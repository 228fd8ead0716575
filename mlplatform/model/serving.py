"""A model's serving workloads: one Deployment, Service, HPA and PDB per live version, and the apex Service.

Zero-restart promotion rests on one rule: everything declared for a version is a
function of that version's own config (version label, image, model URI) and of
the shared serving config, never of its role or its weight. When stable takes
the canary's version, the former canary's objects keep their logical names and
identical inputs, so `pulumi up` leaves its pods alone; only the old stable's
objects disappear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model.config import VersionConfig
from mlplatform.model.serving_config import ServingConfig
from mlplatform.scheduling import spread_constraints
from mlplatform.security import restricted_container_security_context, restricted_pod_security_context, scratch_dir

COMPONENT = labels.MODEL_SERVER_COMPONENT
PORT_NAME = "http"
# The model server's own Prometheus endpoint (`serving.metrics`), which the model's PodMonitor scrapes by name.
METRICS_PORT_NAME = "metrics"
RUN_AS_USER = 10001
HOME = "/home/model"
TMP = "/tmp"
# The startup probe gives the server this long to download and load the model
# before liveness takes over; models from the registry can take minutes.
STARTUP_SECONDS = 600
PROBE_PERIOD_SECONDS = 10


def selector_labels(model: str, version: str | None = None) -> dict[str, str]:
    """`app` selects every pod of the model (the apex Service); `version` narrows to one."""
    selected = {"app": model}
    if version is not None:
        selected["version"] = version
    return selected


def version_labels(model: str, version: str, object_name: str) -> dict[str, str]:
    return {
        **labels.k8s_labels(COMPONENT, name=model, instance=object_name),
        "app.kubernetes.io/version": version,
        **selector_labels(model, version),
    }


def mlflow_serve_args(model_uri: str, port: int, workers: int) -> list[str]:
    """`mlflow models serve` for one model URI.

    `--env-manager local` uses the image's own Python environment: the default
    (virtualenv) would build an environment at start-up, which needs network
    access to package indexes and a writable root filesystem. The image must
    therefore carry the model's dependencies (MLflow plus its flavour's libraries).
    """
    return [
        "models",
        "serve",
        "--model-uri",
        model_uri,
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--env-manager",
        "local",
    ]


def await_annotations(serving: ServingConfig) -> Mapping[str, str] | None:
    """The skip-await annotation when `serving.awaitReadiness` is off, else none.

    Set on every serving object; the provider awaits only the Deployments and
    Services, so on the HPA and PDB it changes nothing.
    """
    return None if serving.await_readiness else dict(labels.SKIP_AWAIT_ANNOTATION)


@dataclass
class ModelVersionDeploymentArgs:
    model_name: str
    object_name: str
    """`<model>-<version>`: the Deployment's, Service's, HPA's and PDB's name."""
    version: VersionConfig
    serving: ServingConfig
    namespace: pulumi.Input[str]
    service_account: pulumi.Input[str]
    tracking_uri: pulumi.Input[str]
    gpu_node_selector: pulumi.Input[Mapping[str, str]]
    gpu_taint: pulumi.Input[Mapping[str, str]]


class ModelVersionDeployment(pulumi.ComponentResource):
    """One version of a model: Deployment, Service, HPA and PDB named `<model>-<version>`.

    The Deployment declares no `replicas`: the HPA owns that field, and a value
    here would reset the replica count on every `pulumi up`.

    The PDB uses maxUnavailable 1 rather than minAvailable 1: a node drain may
    always take one pod at a time, so it never deadlocks when the HPA sits at its
    minimum, while the remaining replicas keep serving. The trade-off: with
    `replicas.min: 1` a drain may briefly leave the version without a ready pod,
    which is why the default minimum is 2.
    """

    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler
    disruption_budget: k8s.policy.v1.PodDisruptionBudget
    object_name: str

    def __init__(self, name: str, args: ModelVersionDeploymentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:ModelVersionDeployment", name, None, opts)
        serving = args.serving
        model, version = args.model_name, args.version.version
        self.object_name = args.object_name
        object_labels = version_labels(model, version, self.object_name)
        selector = selector_labels(model, version)

        def metadata() -> k8s.meta.v1.ObjectMetaArgs:
            # Deployment, Service, HPA and PDB all share the version's name, labels and await choice.
            return k8s.meta.v1.ObjectMetaArgs(
                name=self.object_name,
                namespace=args.namespace,
                labels=object_labels,
                annotations=await_annotations(args.serving),
            )

        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                # A new pod must be Ready before an old one goes: capacity never dips during a rollout.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                ),
                revision_history_limit=5,
                template=_pod_template(args, object_labels, selector),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[_service_port(serving.port)],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=metadata(),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=self.deployment.metadata.name
                ),
                min_replicas=serving.replicas.min,
                max_replicas=serving.replicas.max,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name="cpu",
                            target=k8s.autoscaling.v2.MetricTargetArgs(
                                type="Utilization",
                                average_utilization=serving.replicas.target_cpu_utilization,
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata(),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.register_outputs(
            {
                "deployment": self.deployment.metadata.name,
                "service": self.service.metadata.name,
            }
        )


def _service_port(port: int) -> k8s.core.v1.ServicePortArgs:
    return k8s.core.v1.ServicePortArgs(name=PORT_NAME, port=port, target_port=PORT_NAME, protocol="TCP")


def _pod_template(
    args: ModelVersionDeploymentArgs, object_labels: dict[str, str], selector: dict[str, str]
) -> k8s.core.v1.PodTemplateSpecArgs:
    serving = args.serving
    gpu = serving.gpus > 0
    # No `prometheus.io/*` annotations: the platform's Prometheus (the operator's)
    # ignores them. Golden metrics (success rate, latency) come from the Linkerd
    # proxy, which the platform's PodMonitor scrapes; the server's own metrics,
    # when `serving.metrics` declares them, from the model's PodMonitor.
    annotations = dict(labels.MESH_INJECT_ANNOTATION)
    ports = [k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=serving.port, protocol="TCP")]
    if serving.metrics is not None:
        ports.append(
            k8s.core.v1.ContainerPortArgs(name=METRICS_PORT_NAME, container_port=serving.metrics.port, protocol="TCP")
        )

    limits: dict[str, str] = {"cpu": serving.resources.limits.cpu, "memory": serving.resources.limits.memory}
    if gpu:
        limits[labels.GPU_RESOURCE] = str(serving.gpus)

    def http_probe(path: str, *, period: int, failures: int, initial_delay: int = 0) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=PORT_NAME),
            initial_delay_seconds=initial_delay,
            period_seconds=period,
            timeout_seconds=2,
            failure_threshold=failures,
        )

    env = [
        k8s.core.v1.EnvVarArgs(name="MODEL_URI", value=args.version.model_uri),
        k8s.core.v1.EnvVarArgs(name="MAX_BATCH_SIZE", value=str(serving.max_batch_size)),
        k8s.core.v1.EnvVarArgs(name="MLFLOW_TRACKING_URI", value=args.tracking_uri),
        k8s.core.v1.EnvVarArgs(name="PORT", value=str(serving.port)),
        # The root filesystem is read-only: MLflow and pip-installed libraries write
        # caches under $HOME, and model downloads go to the temp dir.
        k8s.core.v1.EnvVarArgs(name="HOME", value=HOME),
        k8s.core.v1.EnvVarArgs(name="TMPDIR", value=TMP),
    ]

    container = k8s.core.v1.ContainerArgs(
        name="model-server",
        image=args.version.image,
        # `custom`: the image's own entrypoint serves the model.
        command=["mlflow"] if serving.runtime == "mlflow" else None,
        args=mlflow_serve_args(args.version.model_uri, serving.port, serving.workers)
        if serving.runtime == "mlflow"
        else None,
        ports=ports,
        env=env,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={
                "cpu": serving.resources.requests.cpu,
                "memory": serving.resources.requests.memory,
                **serving.scratch.requests(),
            },
            limits={**limits, **serving.scratch.limits()},
        ),
        # Liveness only starts once the startup probe has passed, so a slow model
        # download is not mistaken for a hung server.
        startup_probe=http_probe(
            serving.readiness_path,
            period=PROBE_PERIOD_SECONDS,
            failures=STARTUP_SECONDS // PROBE_PERIOD_SECONDS,
            initial_delay=serving.probes.initial_delay_seconds,
        ),
        readiness_probe=http_probe(serving.readiness_path, period=PROBE_PERIOD_SECONDS, failures=3),
        liveness_probe=http_probe(serving.liveness_path, period=20, failures=3),
        security_context=restricted_container_security_context(),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path=TMP),
            k8s.core.v1.VolumeMountArgs(name="home", mount_path=HOME),
        ],
    )

    spread = spread_constraints(selector)
    tolerations = None
    if gpu:
        tolerations = pulumi.Output.from_input(args.gpu_taint).apply(lambda taint: [labels.toleration_for(taint)])

    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(labels=object_labels, annotations=annotations),
        spec=k8s.core.v1.PodSpecArgs(
            service_account_name=args.service_account,
            # The server never calls the Kubernetes API. The Linkerd proxy gets its
            # identity from a token volume of its own, which the injector adds.
            automount_service_account_token=False,
            # Linkerd's own containers set their own (non-root) users; these
            # defaults apply to ours.
            security_context=restricted_pod_security_context(RUN_AS_USER),
            containers=[container],
            volumes=[
                k8s.core.v1.VolumeArgs(name="tmp", empty_dir=scratch_dir(serving.scratch)),
                k8s.core.v1.VolumeArgs(name="home", empty_dir=scratch_dir(serving.scratch)),
            ],
            topology_spread_constraints=spread,
            node_selector=args.gpu_node_selector if gpu else None,
            # PodSpecArgs types tolerations as TolerationArgs; the SDK takes the plain dict of
            # labels.toleration_for (the form Helm values need too), and serializes it the same.
            tolerations=tolerations,  # pyright: ignore[reportArgumentType]
        ),
    )


@dataclass
class ModelServingArgs:
    model_name: str
    serving: ServingConfig
    versions: Mapping[str, VersionConfig]
    """The live versions by object name (`<model>-<version>`). Deliberately
    without their roles: see the module docstring."""
    namespace: pulumi.Input[str]
    tracking_uri: pulumi.Input[str]
    gpu_node_selector: pulumi.Input[Mapping[str, str]]
    gpu_taint: pulumi.Input[Mapping[str, str]]


class ModelServing(pulumi.ComponentResource):
    """The model's ServiceAccount, apex Service `<model>` and one ModelVersionDeployment per live version.

    The apex Service selects `app` only, so on its own it would balance by pod
    count; meshed clients instead follow the traffic split attached to it. The
    ServiceAccount gives every version of the model one mesh identity.
    """

    service_account: k8s.core.v1.ServiceAccount
    apex_service: k8s.core.v1.Service
    versions: dict[str, ModelVersionDeployment]
    """By object name, `<model>-<version>`."""

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:ModelServing", name, None, opts)
        model = args.model_name
        model_labels = labels.k8s_labels(COMPONENT, name=model, instance=model)

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=model, namespace=args.namespace, labels=model_labels),
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.apex_service = k8s.core.v1.Service(
            f"{name}-apex-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=model,
                namespace=args.namespace,
                labels={**model_labels, **selector_labels(model)},
                annotations=await_annotations(args.serving),
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector_labels(model),
                ports=[_service_port(args.serving.port)],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.versions = {}
        for object_name, version in args.versions.items():
            self.versions[object_name] = ModelVersionDeployment(
                f"{name}-{version.version}",
                ModelVersionDeploymentArgs(
                    model_name=model,
                    object_name=object_name,
                    version=version,
                    serving=args.serving,
                    namespace=args.namespace,
                    service_account=self.service_account.metadata.name,
                    tracking_uri=args.tracking_uri,
                    gpu_node_selector=args.gpu_node_selector,
                    gpu_taint=args.gpu_taint,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.register_outputs(
            {
                "apexService": self.apex_service.metadata.name,
                "versions": list(self.versions),
            }
        )
