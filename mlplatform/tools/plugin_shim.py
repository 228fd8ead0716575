"""An opt-in shim that answers the Python language host's plugin discovery from a cache.

On every `pulumi preview` and `pulumi up`, the pinned language host runs
`python -m pip list -v --format json` in the program's virtualenv to find the
Pulumi provider packages, and so the plugins, the program needs: 0.3-0.5 s of pip
start-up per run, for an answer that only changes when a package is installed,
upgraded or removed.

`install VENV` writes `VENV/bin/python-pulumi`, a POSIX shell script. Point the
language host at it with `PULUMI_PYTHON_CMD=python-pulumi` (the host looks the
name up in the virtualenv's `bin/`). For that exact pip command the script prints
the cached listing when the virtualenv is unchanged, and otherwise runs pip, stores
its answer and prints it. Every other command (the program itself) is handed to the
virtualenv's own `python` with `exec`, unchanged.

"Unchanged" is the fingerprint of every site-packages directory of the virtualenv
(modification time to the nanosecond, and inode): pip adds or removes a
`*.dist-info` entry, or a `.pth` file for an editable install, whenever it installs,
upgrades or removes anything, and each of those changes the directory's mtime. A
new provider package therefore never goes unnoticed: the first run after it is
installed pays for pip once.

It is meant for runners whose virtualenv is fixed between runs (CI images, the e2e
tier, a `make setup` virtualenv). A virtualenv that sees the system site-packages
(`include-system-site-packages = true`) is refused: packages installed outside it
would not change its fingerprint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHIM_NAME = "python-pulumi"
CACHE_NAME = ".pulumi-plugin-listing.json"
FINGERPRINT_NAME = ".pulumi-plugin-listing.fingerprint"
# The language host's exact arguments (pulumi-language-python, determinePulumiPackages).
PIP_LIST_ARGS = ("-m", "pip", "list", "-v", "--format", "json")

_SCRIPT = """#!/bin/sh
# Written by `python -m mlplatform.tools.plugin_shim install`; see that module's docstring.
# Answers the language host's `python -m pip list -v --format json` from a cache kept
# while site-packages is unchanged; runs everything else with the virtualenv's python.
venv='{venv}'
if [ "$#" -eq 6 ] && [ "$1 $2 $3 $4 $5 $6" = "{pip_args}" ]; then
    fingerprint=$(stat -c '%n %y %i' "$venv"/lib/python*/site-packages) || exec "$venv/bin/python" "$@"
    if [ -f "$venv/{cache}" ] && [ "$(cat "$venv/{fingerprint_file}" 2>/dev/null)" = "$fingerprint" ]; then
        exec cat "$venv/{cache}"
    fi
    "$venv/bin/python" "$@" > "$venv/{cache}.tmp.$$" || {{ status=$?; rm -f "$venv/{cache}.tmp.$$"; exit "$status"; }}
    mv -f "$venv/{cache}.tmp.$$" "$venv/{cache}"
    printf '%s\\n' "$fingerprint" > "$venv/{fingerprint_file}"
    exec cat "$venv/{cache}"
fi
exec "$venv/bin/python" "$@"
"""


class ShimError(Exception):
    """The virtualenv cannot take the shim."""


def script_for(venv: Path) -> str:
    """The shim's text for the virtualenv at `venv` (an absolute path)."""
    if "'" in str(venv):
        raise ShimError(f"{venv}: a virtualenv path with a single quote is not supported by the shim")
    return _SCRIPT.format(
        venv=venv,
        pip_args=" ".join(PIP_LIST_ARGS),
        cache=CACHE_NAME,
        fingerprint_file=FINGERPRINT_NAME,
    )


def install(venv: Path) -> Path:
    """Write the shim into `venv/bin`, clear any old cache, and return the shim's path."""
    venv = venv.resolve()
    config = venv / "pyvenv.cfg"
    if not (venv / "bin" / "python").exists() or not config.is_file():
        raise ShimError(f"{venv} is not a virtualenv (no bin/python and pyvenv.cfg)")
    for line in config.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "include-system-site-packages" and value.strip().lower() == "true":
            raise ShimError(
                f"{venv} sees the system site-packages (pyvenv.cfg: include-system-site-packages = true); "
                "a package installed there would not change the shim's fingerprint"
            )
    for name in (CACHE_NAME, FINGERPRINT_NAME):
        (venv / name).unlink(missing_ok=True)
    shim = venv / "bin" / SHIM_NAME
    shim.write_text(script_for(venv), encoding="utf-8")
    shim.chmod(0o755)
    return shim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    install_parser = sub.add_parser("install", help="write VENV/bin/python-pulumi")
    install_parser.add_argument("venv", type=Path, help="the program's virtualenv")
    args = parser.parse_args(argv)
    try:
        shim = install(args.venv)
    except ShimError as err:
        print(f"plugin_shim: {err}", file=sys.stderr)
        return 2
    print(f"wrote {shim}; use it with: export PULUMI_PYTHON_CMD={SHIM_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
