"""PR CI's registry gate: every model URI a change introduces must meet its thresholds.

`rollout start --from-registry` checks a version before it edits the stack file,
but a hand edit of `modelUri` skips that. This read-only check closes the gap: for
each model stack file changed between `--base` and HEAD, every `stable`/`canary`
`modelUri` that is new at HEAD is checked against the stack environment's
promotion thresholds. A URI that is not `models:/<name>/<version>` cannot be
checked and fails too, so the gate cannot be sidestepped by pointing elsewhere.

Exit codes: 0 every new URI passes (or none is new), 1 one fails or cannot be
checked, 2 the registry could not answer.

Usage: `python -m mlplatform.tools.ci.check_registry --base origin/main [--tracking-uri URL]`
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlplatform.tools.ci.changed_stacks import MODEL_PROJECT
from mlplatform.tools.stackfile.reader import config_block, read_text, stack_of

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
VERSION_KEYS = ("mlmodel:stable", "mlmodel:canary")


@dataclass(frozen=True)
class NewModelUri:
    stack_file: str
    key: str
    model_uri: str
    environment: str


def model_uris(path: str, text: str | None) -> dict[str, str]:
    """`{"mlmodel:stable": uri, "mlmodel:canary": uri}` of a stack file's text (None: the file did not exist)."""
    if text is None:
        return {}
    config = config_block(Path(path), text)
    return {
        key: str(config[key]["modelUri"])
        for key in VERSION_KEYS
        if isinstance(config.get(key), dict) and "modelUri" in config[key]
    }


def environment_of(path: str, text: str) -> str:
    config = config_block(Path(path), text)
    return str(config.get("mlmodel:environment", "dev"))


def new_model_uris(path: str, before: str | None, after: str) -> list[NewModelUri]:
    """The URIs at HEAD that the base did not have (a version moving from canary to stable is not new)."""
    old = set(model_uris(f"{path} (base)", before).values())
    environment = environment_of(path, after)
    return [NewModelUri(path, key, uri, environment) for key, uri in model_uris(path, after).items() if uri not in old]


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def changed_model_stack_files(root: Path, base: str) -> list[str]:
    result = _git(root, "diff", "--name-only", "--diff-filter=AM", f"{base}...HEAD", "--", MODEL_PROJECT)
    if result.returncode != 0:
        raise RuntimeError(f"git diff against {base} failed: {result.stderr.strip()}")
    return sorted(p for p in result.stdout.splitlines() if stack_of(p) is not None)


def collect(root: Path, base: str) -> list[NewModelUri]:
    found: list[NewModelUri] = []
    for path in changed_model_stack_files(root, base):
        merge_base = _git(root, "merge-base", base, "HEAD").stdout.strip() or base
        shown = _git(root, "show", f"{merge_base}:{path}")
        before = shown.stdout if shown.returncode == 0 else None
        found += new_model_uris(path, before, read_text(root / path))
    return found


def check(found: list[NewModelUri], registry) -> tuple[int, list[str]]:
    """Check each new URI with `registry.check(name, version, environment)`; the exit code and report lines."""
    from mlplatform.tools.rollout.registry import BelowThreshold, parse_model_uri

    code, lines = EXIT_OK, []
    for item in found:
        where = f"{item.stack_file} {item.key.removeprefix('mlmodel:')}.modelUri {item.model_uri}"
        parsed = parse_model_uri(item.model_uri)
        if parsed is None:
            code = max(code, EXIT_FAILED)
            lines.append(f"FAIL {where}: not models:/<name>/<version>, so its thresholds cannot be checked")
            continue
        try:
            version = registry.check(parsed[0], parsed[1], item.environment)
        except BelowThreshold as err:
            code = max(code, EXIT_FAILED)
            lines.append(f"FAIL {where}: {err}")
            continue
        lines.append(
            f"ok   {where}: meets the {version.stage} thresholds ("
            + ", ".join(c.describe() for c in version.checks)
            + ")"
        )
    return code, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the PR's base ref, e.g. origin/main")
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    from mlplatform.tools.rollout.registry import Registry, RegistryError, explicit_tracking_uri

    try:
        found = collect(Path(args.root), args.base)
        if not found:
            print("no new model URI in the changed model stacks")
            return EXIT_OK
        code, lines = check(found, Registry(explicit_tracking_uri(args.tracking_uri)))
    except (RegistryError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
