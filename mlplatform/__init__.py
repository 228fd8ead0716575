"""mlplatform: a Pulumi program for a machine-learning platform on Kubernetes.

The root project declares the platform (cluster, GPU pool, mesh, monitoring,
model registry, ML CRDs); `stacks/model` declares one model's training and
serving. Configuration is validated by the pydantic models in
`mlplatform.platform.config` and `mlplatform.model.config` before any resource
is declared.
"""
