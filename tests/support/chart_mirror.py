"""The chart mirror the tests install and template charts from: `MLPLATFORM_TEST_CHARTS`.

A static Helm repository (index.yaml and .tgz files): a directory, served here
over HTTP on 127.0.0.1 for as long as the context lasts, or an http(s) URL used
as it is. `.ci/run` points it at the shared mirror next to the checkout. Charts
are never copied into the repository.

`upstream` means no mirror: each chart comes from the repository the platform
pins (`mlplatform:charts`), for machines with internet. Unset, the tests that
need charts fail and name the variable: they never skip.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MIRROR_ENV = "MLPLATFORM_TEST_CHARTS"
UPSTREAM = "upstream"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # `format`: the base class's name
        pass


def uses_upstream() -> bool:
    return os.environ.get(MIRROR_ENV) == UPSTREAM


@contextlib.contextmanager
def chart_mirror() -> Iterator[str | None]:
    """The mirror's URL, without a trailing slash; None for `upstream` (the pinned repositories)."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        pytest.fail(
            f"{MIRROR_ENV} is not set: point it at a Helm chart mirror (a directory or an http URL), "
            f"or set it to '{UPSTREAM}' to use the charts' own repositories (needs internet)"
        )
    if mirror == UPSTREAM:
        yield None
        return
    if mirror.startswith(("http://", "https://")):
        yield mirror.rstrip("/")
        return
    directory = Path(mirror).resolve()
    if not (directory / "index.yaml").is_file():
        pytest.fail(f"{MIRROR_ENV}={mirror}: no index.yaml in {directory}, not a Helm repository")
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
