"""The one PR comment people read: per stack, the preview's counts, the blast radius, the
policy results and, for a rollout step, the canary's gate verdict.

Built from machine output, never scraped text:
- `<stack>.preview.json`: `pulumi preview --json --policy-pack ...` with
  PULUMI_ENABLE_STREAMING_JSON_PREVIEW=1 (one engine event a line: the steps, the counts and
  every policy violation). The plain `--json` document is read too, but it carries no policy
  results in CLI v3.259, so the comment says so;
- `<stack>.diff.json` (optional): `mlplatform diff --json`, the blast radius;
- `<stack>.verdict.json` (optional): the canary judge's verdict record; its `outcome`,
  `statistic` and `reason` are shown.

Usage: `python -m mlplatform.tools.ci.pr_comment --dir previews/ --log-url URL --out comment.md`,
where each stack's files are named `<project>--<stack>.preview.json` and so on. The first
line is a hidden marker: the workflow finds its earlier comment by it and edits that one
(`existing-comment` reads `gh api .../comments` and prints its id). The comment stays under
GitHub's 65,536-character limit: past a budget, details are dropped, largest first, and the
job log link says where the rest is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "<!-- mlplatform:pr-preview -->"
GITHUB_LIMIT = 65_536
BUDGET = 60_000
OPS = ("create", "update", "delete", "replace")
# Steps that change nothing: the unchanged resources, and the reads of read resources (the model
# program reads its live InferenceService record to honour an abort on every run).
NO_CHANGE_OPS = ("same", "read")
SHOWN_PER_LIST = (200, 20, 0)
"""Details kept per list at each level of detail: everything that fits, then a few, then none."""


@dataclass
class Preview:
    result: str
    counts: dict[str, int]
    steps: list[tuple[str, str]] = field(default_factory=list)
    """(op, `type name`) of every step that changes something."""
    violations: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    has_policy_results: bool = True
    ran: bool = True
    """False for a stack whose job left no preview output at all (`with_missing`)."""

    @property
    def mandatory(self) -> list[dict[str, str]]:
        return [v for v in self.violations if v["level"] == "mandatory"]


def _short(urn: str) -> str:
    type_, name = urn.split("::")[-2:] if "::" in urn else ("", urn)
    return f"{type_.split('$')[-1].rsplit(':', 1)[-1]} {name}".strip()


def read_preview(text: str) -> Preview:
    """Either form of `pulumi preview --json`: one document, or one engine event a line."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return _from_events([json.loads(line) for line in text.splitlines() if line.strip()])
    if "sequence" in document:  # a stream of a single event
        return _from_events([document])
    return _from_document(document)


def _errors(diagnostics: list[Mapping[str, Any]]) -> list[str]:
    messages = (d.get("message", "").strip() for d in diagnostics if d.get("severity") == "error")
    return [m for m in messages if m and m != "preview failed"]


def _from_events(events: list[Mapping[str, Any]]) -> Preview:
    summary = next((e["summaryEvent"] for e in reversed(events) if "summaryEvent" in e), {})
    steps = [
        (e["resourcePreEvent"]["metadata"]["op"], _short(e["resourcePreEvent"]["metadata"]["urn"]))
        for e in events
        if "resourcePreEvent" in e and e["resourcePreEvent"]["metadata"]["op"] not in NO_CHANGE_OPS
    ]
    violations = [
        {
            "policy": p["policyName"],
            "level": p["enforcementLevel"],
            "resource": _short(p.get("resourceUrn", "")),
            "message": p["message"].strip().splitlines()[-1],
        }
        for p in (e["policyEvent"] for e in events if "policyEvent" in e)
    ]
    errors = _errors([e["diagnosticEvent"] for e in events if "diagnosticEvent" in e])
    result = summary.get("result") or (
        "failed" if errors or any(v["level"] == "mandatory" for v in violations) else "succeeded"
    )
    return Preview(result, dict(summary.get("resourceChanges") or {}), steps, violations, errors)


def _from_document(document: Mapping[str, Any]) -> Preview:
    steps = [(s["op"], _short(s["urn"])) for s in document.get("steps") or [] if s.get("op") not in NO_CHANGE_OPS]
    errors = _errors(document.get("diagnostics") or [])
    return Preview(
        "failed" if errors else "succeeded",
        dict(document.get("changeSummary") or {}),
        steps,
        errors=errors,
        has_policy_results=False,
    )


@dataclass
class StackReport:
    name: str
    preview: Preview
    blast: Mapping[str, Any] | None = None
    verdict: Mapping[str, Any] | None = None


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _policy_cell(preview: Preview) -> str:
    if not preview.has_policy_results:
        return "not in this preview's output"
    advisory = len(preview.violations) - len(preview.mandatory)
    return f"{len(preview.mandatory)} mandatory, {advisory} advisory"


def _table(reports: list[StackReport]) -> list[str]:
    rows = ["| Stack | Preview | " + " | ".join(OPS) + " | Policy |", "|---" * (len(OPS) + 3) + "|"]
    for r in reports:
        verdict = "failed" if r.preview.result == "failed" else "ok"
        if not r.preview.ran:
            rows.append(f"| `{r.name}` | no output |" + " - |" * len(OPS) + " - |")
            continue
        counts = " | ".join(str(r.preview.counts.get(op, 0)) for op in OPS)
        rows.append(f"| `{r.name}` | {verdict} | {counts} | {_policy_cell(r.preview)} |")
    return rows


def _capped(items: list[str], keep: int, what: str) -> list[str]:
    shown = items[:keep]
    if len(items) > keep:
        shown.append(f"- ... {len(items) - keep} more {what}: see the job log")
    return shown


def _counts(preview: Preview) -> str:
    """`2 to update; 27 unchanged, 1 read`: the changes first, then what the preview only looked at."""
    changes = ", ".join(f"{n} to {op}" for op, n in preview.counts.items() if op not in NO_CHANGE_OPS and n)
    looked = f"{preview.counts.get('same', 0)} unchanged"
    if preview.counts.get("read"):
        looked += f", {preview.counts['read']} read"
    return f"{changes or 'no changes'}; {looked}"


def _stack_section(report: StackReport, keep: int) -> list[str]:
    preview = report.preview
    out = [f"### `{report.name}`", ""]
    if not preview.ran:
        return [*out, *(f"**Preview**: {e}." for e in preview.errors), ""]
    out.append(f"**Preview** ({preview.result}): {_counts(preview)}.")
    if keep and preview.steps:
        out += ["", f"<details><summary>Operations ({len(preview.steps)})</summary>", ""]
        out += _capped([f"- `{op}` {_cell(name)}" for op, name in preview.steps], keep, "operations")
        out += ["", "</details>"]
    out += [f"- error: {_cell(e)}" for e in preview.errors[: max(keep, 3)]]
    out += ["", *_blast_lines(report.blast, keep), "", *_policy_lines(preview, keep)]
    if report.verdict is not None:
        out += ["", *_verdict_lines(report.verdict)]
    return [*out, ""]


def _blast_lines(blast: Mapping[str, Any] | None, keep: int) -> list[str]:
    if blast is None:
        return ["**Blast radius**: no `mlplatform diff` report for this stack."]
    s = blast.get("summary") or {}
    pods = s.get("podTemplatesChanged", 0)
    lines = [
        f"**Blast radius** (`mlplatform diff`): {s.get('changed', 0)} changed, {s.get('added', 0)} added, "
        f"{s.get('removed', 0)} removed; "
        + (f"**{pods} pod template(s) change: pods restart**" if pods else "no pod template changes")
    ]
    items = []
    for c in blast.get("changed") or []:
        paths = "; ".join(f"{p['path']} {p.get('before')} -> {p.get('after')}" for p in c.get("paths") or [])
        items.append(f"- ~ {_cell(c['name'])} ({c['type'].rsplit(':', 1)[-1]}): {_cell(paths)}")
    items += [f"- + {_cell(a['name'])} ({a['type'].rsplit(':', 1)[-1]})" for a in blast.get("added") or []]
    items += [f"- - {_cell(d['name'])} ({d['type'].rsplit(':', 1)[-1]})" for d in blast.get("removed") or []]
    return lines + _capped(items, keep, "changes") if keep else lines


def _policy_lines(preview: Preview, keep: int) -> list[str]:
    if not preview.has_policy_results:
        return [
            "**Policy**: this preview output carries no policy results (run it with "
            "PULUMI_ENABLE_STREAMING_JSON_PREVIEW=1)."
        ]
    if not preview.violations:
        return ["**Policy**: no violations."]
    rows = [
        f"| {v['level']} | `{v['policy']}` | {_cell(v['resource'])} | {_cell(v['message'])} |"
        for v in sorted(preview.violations, key=lambda v: (v["level"] != "mandatory", v["policy"]))
    ]
    head = [f"**Policy**: {_policy_cell(preview)}", "", "| Level | Rule | Resource | Finding |", "|---|---|---|---|"]
    return (
        head
        + rows[: max(keep, 5)]
        + ([f"| | | | ... {len(rows) - max(keep, 5)} more: see the job log |"] if len(rows) > max(keep, 5) else [])
    )


def _verdict_lines(verdict: Mapping[str, Any]) -> list[str]:
    """The judge's record as `rollout` stores it in the InferenceService status (`outcome`, `measured`,
    `reasons`, `window.checkedAt`), or the short form (`statistic`, `reason`)."""
    outcome = verdict.get("outcome") or verdict.get("verdict") or "unknown"
    statistic = verdict.get("statistic", verdict.get("measured"))
    if isinstance(statistic, Mapping):
        statistic = ", ".join(f"{k} {v}" for k, v in statistic.items() if v is not None)
    reasons = verdict.get("reasons") or ([verdict["reason"]] if verdict.get("reason") else [])
    parts = [f"**Canary gate**: **{_cell(outcome)}**"]
    checked = (verdict.get("window") or {}).get("checkedAt")
    if checked:
        parts.append(f"checked at {_cell(checked)}")
    if statistic:
        parts.append(f"statistic: {_cell(statistic)}")
    if reasons:
        parts.append(f"reason: {_cell('; '.join(str(r) for r in reasons))}")
    return ["; ".join(parts)]


def render(reports: list[StackReport], log_url: str, title: str = "Pulumi preview") -> str:
    """The comment, at the most detail that fits the budget."""
    footer = f"Full output: [job log]({log_url})" if log_url else "Full output: the job log"
    for keep in SHOWN_PER_LIST:
        body = [MARKER, f"## {title}", "", *_table(reports), ""]
        for report in reports:
            body += _stack_section(report, keep)
        text = "\n".join([*body, footer, ""])
        if len(text) <= BUDGET:
            return text
    summary = "\n".join(
        [MARKER, f"## {title}", "", *_table(reports), "", "Details did not fit in one comment. " + footer, ""]
    )
    return summary[:GITHUB_LIMIT]


def load_reports(directory: Path) -> list[StackReport]:
    reports = []
    for path in sorted(directory.glob("*.preview.json")):
        stem = path.name[: -len(".preview.json")]
        extra = {kind: directory / f"{stem}.{kind}.json" for kind in ("diff", "verdict")}
        reports.append(
            StackReport(
                stem.replace("--", "/"),
                read_preview(path.read_text()),
                json.loads(extra["diff"].read_text()) if extra["diff"].exists() else None,
                json.loads(extra["verdict"].read_text()) if extra["verdict"].exists() else None,
            )
        )
    return reports


NO_OUTPUT = (
    "no preview output: the job ended before `pulumi preview` wrote it (a missing variable, the CLI install, "
    "the login or the role); the job log says which step failed"
)


def _project_name(project_dir: Path) -> str:
    """The `name:` of a Pulumi.yaml, read without a YAML parser (this module is standard library only)."""
    try:
        text = (project_dir / "Pulumi.yaml").read_text()
    except OSError:
        return project_dir.name
    found = re.search(r"^name:\s*[\"']?([^\"'\s#]+)", text, re.MULTILINE)
    return found.group(1) if found else project_dir.name


def expected_stacks(matrix: str, root: Path) -> list[str]:
    """`<project>/<stack>` of every stack the preview matrix (`changed_stacks`' output) ran."""
    return [f"{_project_name(root / e['project'])}/{e['stack']}" for e in json.loads(matrix).get("include", [])]


def with_missing(reports: list[StackReport], expected: list[str]) -> list[StackReport]:
    """A stack whose preview job left no output still gets its row: failed, with the reason."""
    seen = {r.name for r in reports}
    missing = [
        StackReport(name, Preview("failed", {}, errors=[NO_OUTPUT], has_policy_results=False, ran=False))
        for name in expected
        if name not in seen
    ]
    return sorted([*reports, *missing], key=lambda r: r.name)


def annotate(path: Path) -> int:
    """The job log's view of a preview: each violation (`::error::` for mandatory, `::warning::` for
    advisory) naming its rule and resource, each engine error, and the counts. Exit 1 when it failed."""
    try:
        preview = read_preview(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"::error::{path}: no preview output to read ({error})")
        return 1
    for v in preview.violations:
        kind = "error" if v["level"] == "mandatory" else "warning"
        print(f"::{kind} title=policy {v['policy']} ({v['level']})::{v['resource']}: {v['message']}")
    for error in preview.errors:
        print(f"::error title=preview::{error}")
    print(f"{path.name}: preview {preview.result}: {_counts(preview)}; policy: {_policy_cell(preview)}")
    return 1 if preview.result == "failed" else 0


def existing_comment(comments: list[Mapping[str, Any]]) -> int | None:
    """The id of the earlier comment carrying the marker (`gh api .../issues/N/comments`)."""
    return next((c["id"] for c in comments if str(c.get("body", "")).startswith(MARKER)), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the comment from a directory of per-stack outputs")
    build.add_argument("--dir", required=True, help="holds <project>--<stack>.preview.json (and .diff/.verdict)")
    build.add_argument("--log-url", default="", help="the job log, linked from the comment")
    build.add_argument("--out", required=True)
    build.add_argument(
        "--expect",
        metavar="MATRIX",
        help="the preview matrix (changed_stacks' JSON): a stack with no output is shown as failed, not left out",
    )
    build.add_argument("--root", default=".", help="the checkout the matrix's project paths are relative to")
    find = commands.add_parser("existing-comment", help="print the id of the comment to edit, from JSON on stdin")
    find.add_argument("--comments", default="-", help="`gh api --paginate .../comments` output (default: stdin)")
    annotate_ = commands.add_parser(
        "annotate", help="one GitHub error annotation per violation and error of a preview; exit 1 if it failed"
    )
    annotate_.add_argument("preview", help="a <project>--<stack>.preview.json")
    args = parser.parse_args(argv)
    if args.command == "annotate":
        return annotate(Path(args.preview))
    if args.command == "existing-comment":
        text = sys.stdin.read() if args.comments == "-" else Path(args.comments).read_text()
        # `gh api --paginate` concatenates one JSON array per page.
        comments = [c for page in json.loads("[" + text.replace("][", "],[") + "]") for c in page]
        found = existing_comment(comments)
        print("" if found is None else found)
        return 0
    reports = load_reports(Path(args.dir))
    if args.expect:
        reports = with_missing(reports, expected_stacks(args.expect, Path(args.root)))
    if not reports:
        print(f"pr_comment: no *.preview.json in {args.dir}", file=sys.stderr)
        return 2
    Path(args.out).write_text(render(reports, args.log_url))
    failed = [r.name for r in reports if r.preview.result == "failed"]
    print(f"pr_comment: {len(reports)} stack(s), {len(failed)} failed preview(s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
