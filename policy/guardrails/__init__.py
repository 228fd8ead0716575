"""The rules of the mlplatform policy pack, as plain functions.

Nothing here imports `pulumi_policy` or the engine: each rule takes `Resource`
values (type token, inputs, URN) and the policy's config, and returns the
violations it finds. `__main__.py` wires them to the engine; the tests call them
with fixture inputs, and run the pack through the real engine where a preview is
possible offline (Kubernetes resources on the simulated cluster).

Imports inside the package are relative: the CLI runs the pack as
`python policy/` (the directory on sys.path), the tests import it as
`policy.guardrails` from the repository root.
"""
