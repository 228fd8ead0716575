"""The deploy workflow's last step for a model stack: registry aliases follow what runs.

After a successful `pulumi up`, `champion` points at the stable version and
`challenger` at the canary while it takes traffic; an aborted canary (weight 0)
or none removes `challenger`. Run from the deploy workflow, not from
`rollout start`/`promote`, so an alias never names a version a merged and
applied stack file does not run (a PR that is never merged moves nothing).

Usage: `python -m mlplatform.tools.ci.move_aliases stacks/model/Pulumi.<stack>.yaml [--tracking-uri URL]`
Exit codes: 0 done, 1 a URI is not `models:/<name>/<version>`, 2 the registry could not answer.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from mlplatform.model.config import ModelStackConfig
from mlplatform.tools.rollout.registry import CHALLENGER, CHAMPION, parse_model_uri
from mlplatform.tools.stackfile import editor as stackfile

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class NotInRegistry(Exception):
    """A model URI that names no registry version, so no alias can point at it."""


@dataclass(frozen=True)
class AliasTarget:
    model: str
    alias: str
    version: str | None  # None: the alias must not exist


def plan(config: ModelStackConfig) -> list[AliasTarget]:
    """Where `champion` and `challenger` must point for this stack file."""
    stable = parse_model_uri(config.stable.model_uri)
    if stable is None:
        raise NotInRegistry(f"stable modelUri {config.stable.model_uri} is not models:/<name>/<version>")
    model, version = stable
    targets = [AliasTarget(model, CHAMPION, version)]
    canary = config.canary
    if canary is not None and canary.weight > 0:
        parsed = parse_model_uri(canary.model_uri)
        if parsed is None:
            raise NotInRegistry(f"canary modelUri {canary.model_uri} is not models:/<name>/<version>")
        if parsed[0] != model:
            raise NotInRegistry(f"canary {canary.model_uri} and stable {config.stable.model_uri} name different models")
        targets.append(AliasTarget(model, CHALLENGER, parsed[1]))
    else:
        targets.append(AliasTarget(model, CHALLENGER, None))
    return targets


def apply(targets: list[AliasTarget], registry) -> list[str]:
    """Move each alias that is not where it must be; the lines describe what changed."""
    lines = []
    for target in targets:
        current = registry.alias_version(target.model, target.alias)
        if current == target.version:
            lines.append(f"{target.model}@{target.alias}: unchanged ({current or 'absent'})")
        elif target.version is None:
            registry.delete_alias(target.model, target.alias)
            lines.append(f"{target.model}@{target.alias}: removed (was version {current})")
        else:
            registry.set_alias(target.model, target.alias, target.version)
            lines.append(f"{target.model}@{target.alias}: {current or 'absent'} -> version {target.version}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack_file", help="the model stack's Pulumi.<stack>.yaml, as applied")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    from mlplatform.tools.rollout.registry import Registry, RegistryError, explicit_tracking_uri

    try:
        targets = plan(stackfile.load(args.stack_file).config)
        lines = apply(targets, Registry(explicit_tracking_uri(args.tracking_uri)))
    except NotInRegistry as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except RegistryError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
