"""One measurement, run in a fresh interpreter so each gets its own peak RSS.

`python -m bench.probe TARGET [--platform-outputs FILE] [--imports FILE]` runs
TARGET under the recording mocks and prints one JSON line: the resources it
registered, the time spent importing and evaluating, and the peak RSS.

TARGET `empty` runs a program that declares nothing after importing the modules
listed in `--imports`: the Pulumi SDK modules a stack loads (found with
`--list-imports`), so the baseline pays the same SDK import cost as the stack and
the ratio isolates what the stack's own code and resources cost.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# The SDK packages every stack imports; their submodules load lazily, on first use.
import pulumi  # noqa: E402,F401
import pulumi_aws  # noqa: E402,F401
import pulumi_kubernetes  # noqa: E402,F401
import pulumi_random  # noqa: E402,F401
import pulumi_tls  # noqa: E402,F401

from mlplatform.tools.offline.engine import run_entry_point, run_program  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "stacks" / "model"
MODEL_STACK = "fraud-detector-prod"
SDK_PACKAGES = {"pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_random", "pulumi_tls"}


def evaluate(target: str, platform_outputs: Path | None) -> int:
    """Run `target`; the number of resources it registered."""
    if target == "empty":
        return len(run_program(lambda: None, project="mlplatform", stack="prod").resources)
    if target == "platform-prod":
        return len(run_entry_point(ROOT, stack="prod").resources)
    if target == "model-prod":
        assert platform_outputs is not None, "the model stack needs the platform's outputs"
        outputs = json.loads(platform_outputs.read_text())
        references = {"organization/mlplatform/prod": outputs}
        return len(run_entry_point(MODEL_DIR, stack=MODEL_STACK, stack_references=references).resources)
    raise SystemExit(f"unknown target {target!r}: expected empty, platform-prod or model-prod")


def sdk_modules() -> list[str]:
    """The Pulumi SDK modules this interpreter has executed. pulumi-aws registers a lazy
    placeholder for each of its 200+ service modules; only the ones a stack touched count."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in SDK_PACKAGES and type(module).__name__ != "_LazyModule"
    )


def import_all(names: list[str]) -> None:
    for name in names:
        module = importlib.import_module(name)
        _ = module.__name__  # touching an attribute executes a lazily registered module


def peak_rss_kib() -> int:
    """This process's peak resident set size.

    VmHWM belongs to the address space created by exec. ru_maxrss does not: Linux carries
    it over from the forking parent, so a probe started by a large parent would report
    the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux; not Linux: best effort


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.probe")
    parser.add_argument("target", choices=["empty", "platform-prod", "model-prod"])
    parser.add_argument("--platform-outputs", type=Path, help="JSON outputs answering the model's StackReference")
    parser.add_argument("--imports", type=Path, help="JSON list of modules the empty program imports first")
    parser.add_argument("--list-imports", action="store_true", help="print the SDK modules loaded, not timings")
    args = parser.parse_args(argv)

    if args.imports is not None:
        import_all(json.loads(args.imports.read_text()))
    imported = time.perf_counter()
    count = evaluate(args.target, args.platform_outputs)
    finished = time.perf_counter()
    if args.list_imports:
        print(json.dumps(sdk_modules()))
        return
    peak_kib = peak_rss_kib()
    print(
        json.dumps(
            {
                "target": args.target,
                "resources": count,
                "wall_s": finished - STARTED,
                "import_s": imported - STARTED,
                "evaluate_s": finished - imported,
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
