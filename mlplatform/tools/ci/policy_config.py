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
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from policy.guardrails.model import Resource
from policy.guardrails.traffic import split_weights

STEP_RULE = "canary-weight-step"
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


def stack_policy_config(base: Mapping[str, Any], state: Mapping[str, Any] | None) -> dict[str, Any]:
    config = json.loads(json.dumps(base))
    entry = config.setdefault(STEP_RULE, {})
    entry["splits"] = previous_splits(state or {})
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", help="`pulumi stack export` output; omit for a stack with no state yet")
    parser.add_argument(
        "--base", default=str(BASE_CONFIG), help="the pack's config (default: policy/policy-config.json)"
    )
    parser.add_argument("--out", required=True, help="where to write the stack's policy config")
    args = parser.parse_args(argv)
    try:
        state = json.loads(Path(args.state).read_text()) if args.state else None
        base = json.loads(Path(args.base).read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"policy_config: {error}", file=sys.stderr)
        return 2
    config = stack_policy_config(base, state)
    Path(args.out).write_text(json.dumps(config, indent=2) + "\n")
    print(f"policy_config: {len(config[STEP_RULE]['splits'])} split(s) with old weights -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
