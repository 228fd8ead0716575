"""Pulumi's release layout on 127.0.0.1, holding the e2e tier's CLI: what `.github/actions/pulumi-cli`
downloads and checks under act.

The tarball's `pulumi` is a recording wrapper around the real CLI (`pulumi-real`, beside it):
each call the workflow's steps (or the Automation API) make is appended to
$MLPLATFORM_ACT_RECORD with its arguments and exit status, then the status is passed on. The
workflows call the CLI directly (.github/actions/pulumi-guarded), so this is how a test
sees which previews and updates ran, with which flags.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.support.helpers import ROOT

RECORDING_WRAPPER = r"""#!/usr/bin/env bash
# The act tests' recording wrapper (tests/workflows/pulumi_release.py): the real CLI is pulumi-real.
set -uo pipefail
status=0
"$(dirname "$(readlink -f "$0")")/pulumi-real" "$@" || status=$?
if [[ -n "${MLPLATFORM_ACT_RECORD:-}" ]]; then
  python3 - "$status" "$@" >> "$MLPLATFORM_ACT_RECORD" <<'PY'
import json, os, sys
status, argv = int(sys.argv[1]), sys.argv[2:]
words = [a for a in argv if not a.startswith("-")]
def flag(name):
    return argv[argv.index(name) + 1] if name in argv[:-1] else ""
command = "stack export" if words[:2] == ["stack", "export"] else (words[0] if words else "")
print(json.dumps({"action": "pulumi", "job": os.environ.get("GITHUB_JOB", ""), "command": command,
                  "stack": flag("--stack"), "cwd": flag("--cwd"), "argv": argv, "status": status,
                  "automation": "--exec-kind" in argv}))
PY
fi
exit "$status"
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def pulumi_version() -> str:
    (version,) = [line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("pulumi==")]  # fmt: skip
    return version


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o755
    archive.addfile(info, io.BytesIO(data))


@contextlib.contextmanager
def release_server(e2e_tools: dict[str, str], root: Path, *, tampered: bool = False) -> Iterator[str]:
    """`v<version>/<tarball>` and its checksums file under the version requirements.txt pins.
    `tampered`: the tarball is not the one its checksum line names."""
    version = pulumi_version()
    release = root / f"v{version}"
    release.mkdir(parents=True)
    tarball = release / f"pulumi-v{version}-linux-x64.tar.gz"
    tools = Path(e2e_tools["pulumi"]).parent
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tools / "pulumi", arcname="pulumi/pulumi-real")
        _add(archive, "pulumi/pulumi", RECORDING_WRAPPER.encode())
        for name in ("pulumi-language-python", "pulumi-language-python-exec"):
            archive.add(tools / name, arcname=f"pulumi/{name}")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if tampered:
        with tarball.open("ab") as data:
            data.write(b"\0")
    (release / f"pulumi-{version}-checksums.txt").write_text(
        f"{'0' * 64}  pulumi-v{version}-darwin-arm64.tar.gz\n{digest}  {tarball.name}\n"
    )
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
