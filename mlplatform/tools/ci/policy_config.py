"""The policy pack's config for one stack's preview: policy/policy-config.json plus the old state.

The engine gives a policy pack only the new inputs of a resource (pulumi-policy 1.21 with
CLI v3.259 sends an analyzer no old state), yet `canary-weight-step` must compare a split's
new weights with its current ones. So CI reads the current ones from the stack's state
(`pulumi stack export`) and hands them to the pack as config, keyed by URN:

    pulumi stack export --stack S > state.json
    python -m mlplatform.tools.ci.policy_config --state state.json --out policy.json
    pulumi preview --stack S --policy-pack policy --policy-pack-config policy.json

For each TrafficSplit or HTTPRoute in the state, `splits[urn]` holds its weights and, when
the stack also records its rollout (our InferenceService, `spec.stable.version`), the stable
backend: moving traffic back to it is a rollback, which the rule never limits. A stack with
no state yet (its first preview) gets the base config: every split is a create.

`images-from-mirror` checks images against the platform's image registry; its
prefix is not written in the pack's config but taken from where the program takes
it (one rule, one place): the platform stack file's `mlplatform:imageRegistry`,
else `MLPLATFORM_IMAGE_REGISTRY`. Pass `--platform-stack-file` with the platform
stack the previewed stack runs on, or let the tool find it from the previewed stack's own file
(`--stack-file`; a model stack names its platform in `mlmodel:platformStack`, whose file is
`Pulumi.<stack>.yaml` in `--platform-dir`, the platform project), as the workflows do:

    python -m mlplatform.tools.ci.policy_config --platform-stack-file Pulumi.prod.yaml --out policy.json
    python -m mlplatform.tools.ci.policy_config --stack-file stacks/model/Pulumi.fraud-detector-prod.yaml \
        --platform-dir . --out policy.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlplatform.configuration import ConfigError
from mlplatform.images import REGISTRY_PREFIX, REGISTRY_RULE
from mlplatform.model.config import CONFIG_NAMESPACE as MODEL_NAMESPACE
from mlplatform.platform.image_mirror import IMAGE_REGISTRY_KEY, effective_image_registry
from mlplatform.tools.stackfile.reader import StackFileError, read_stack_config
from policy.guardrails.model import Resource
from policy.guardrails.traffic import split_weights

STEP_RULE = "canary-weight-step"
MIRROR_RULE = "images-from-mirror"
BASE_CONFIG = Path(__file__).resolve().parents[3] / "policy" / "policy-config.json"


def _stable_versions(resources: list[Mapping[str, Any]]) -> dict[str, str]:
    """namespace -> the stable version an InferenceService record names."""
    return {
        (r.get("inputs", {}).get("metadata") or {}).get("namespace", "default"): str(version)
        for r in resources
        if r.get("type", "").endswith(":InferenceService")
        and (version := ((r.get("inputs", {}).get("spec") or {}).get("stable") or {}).get("version"))
    }


def previous_splits(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    resources = (state.get("deployment") or {}).get("resources") or []
    stables = _stable_versions(resources)
    splits: dict[str, dict[str, Any]] = {}
    for entry in resources:
        resource = Resource(entry.get("type", ""), entry.get("inputs") or {}, entry.get("urn", ""))
        groups = split_weights(resource)
        if not groups:
            continue
        split: dict[str, Any] = {"weights": groups[0]}
        version = stables.get(resource.namespace)
        stable = [s for s in groups[0] if version and s.endswith(f"-{version}")]
        if len(stable) == 1:
            split["stable"] = stable[0]
        splits[resource.urn] = split
    return splits


def platform_image_registry(stack_file: Path, environ: Mapping[str, str]) -> str | None:
    """The image registry the platform stack in `stack_file` resolves, as its entry point does."""
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    configured = read_stack_config(stack_file, "mlplatform").values.get(IMAGE_REGISTRY_KEY)
    if configured is not None and not (isinstance(configured, str) and REGISTRY_PREFIX.match(configured)):
        raise ConfigError(stack, [f"{IMAGE_REGISTRY_KEY} = {configured!r}: {REGISTRY_RULE}"])
    return effective_image_registry(configured, environ, stack=stack)


def platform_stack_file_of(stack_file: Path, platform_dir: Path) -> Path:
    """The platform stack file whose image registry governs `stack_file`: itself for a platform stack, the
    one its `mlmodel:platformStack` names (`org/project/<stack>` -> `platform_dir/Pulumi.<stack>.yaml`)."""
    reference = read_stack_config(stack_file, MODEL_NAMESPACE).values.get(f"{MODEL_NAMESPACE}:platformStack")
    if reference is None:
        return stack_file
    stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    platform_file = platform_dir / f"Pulumi.{str(reference).rsplit('/', 1)[-1]}.yaml"
    if not platform_file.is_file():
        raise ConfigError(
            stack,
            [f"mlmodel:platformStack = {reference!r}: no platform stack file {platform_file} (its image registry)"],
        )
    return platform_file


def stack_policy_config(
    base: Mapping[str, Any], state: Mapping[str, Any] | None, image_registry: str | None = None
) -> dict[str, Any]:
    config = json.loads(json.dumps(base))
    entry = config.setdefault(STEP_RULE, {})
    entry["splits"] = previous_splits(state or {})
    config.setdefault(MIRROR_RULE, {})["imageMirror"] = image_registry or ""
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", help="`pulumi stack export` output; omit for a stack with no state yet")
    parser.add_argument(
        "--base", default=str(BASE_CONFIG), help="the pack's config (default: policy/policy-config.json)"
    )
    parser.add_argument(
        "--platform-stack-file",
        help="the platform's Pulumi.<stack>.yaml: its image registry is the one images-from-mirror enforces",
    )
    parser.add_argument(
        "--stack-file",
        help="the previewed stack's Pulumi.<stack>.yaml; its platform stack file is found from it (--platform-dir)",
    )
    parser.add_argument("--platform-dir", default=".", help="the platform project (default: .), for --stack-file")
    parser.add_argument("--out", required=True, help="where to write the stack's policy config")
    args = parser.parse_args(argv)
    if args.stack_file and args.platform_stack_file:
        parser.error("give --stack-file or --platform-stack-file, not both")
    try:
        state = json.loads(Path(args.state).read_text()) if args.state else None
        base = json.loads(Path(args.base).read_text())
        platform_file = (
            platform_stack_file_of(Path(args.stack_file), Path(args.platform_dir))
            if args.stack_file
            else Path(args.platform_stack_file)
            if args.platform_stack_file
            else None
        )
        registry = platform_image_registry(platform_file, os.environ) if platform_file else None
    except (OSError, json.JSONDecodeError, StackFileError, ConfigError) as error:
        print(f"policy_config: {error}", file=sys.stderr)
        return 2
    config = stack_policy_config(base, state, registry)
    Path(args.out).write_text(json.dumps(config, indent=2) + "\n")
    print(f"policy_config: {len(config[STEP_RULE]['splits'])} split(s) with old weights -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
