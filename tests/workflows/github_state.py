"""The GitHub a workflow run under act talks to: the state the `gh` and artifact stand-ins share.

A directory of JSON files (`MLPLATFORM_ACT_GITHUB`): `pulls.json` (merged PRs, which a test
adds when it merges a branch), `artifacts.json` (what the upload-artifact stand-in kept,
with its run), `comments.json` (PR comments: the preview comment, edited in place).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GitHubState:
    root: Path

    def _load(self, name: str) -> list[dict[str, Any]]:
        path = self.root / name
        return json.loads(path.read_text()) if path.exists() else []

    def merged(self, *, number: int, head_sha: str, merge_commit_sha: str) -> None:
        """PR `number`, whose head was `head_sha`, merged as `merge_commit_sha` (GitHub's `commits/SHA/pulls`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        pulls = self._load("pulls.json")
        pulls.append({"number": number, "head": {"sha": head_sha}, "merge_commit_sha": merge_commit_sha})
        (self.root / "pulls.json").write_text(json.dumps(pulls, indent=2))

    def artifacts(self) -> list[dict[str, Any]]:
        return self._load("artifacts.json")

    def comments(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self._load("comments.json") if c["issue"] == number]
