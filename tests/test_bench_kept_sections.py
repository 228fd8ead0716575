"""`make bench` rewrites docs/benchmarks.md but keeps the sections measured elsewhere (the e2e rollback latency)."""

from __future__ import annotations

from pathlib import Path

from bench.run import KEPT_MARKER, kept_sections
from tests.support.helpers import ROOT


def test_a_rerun_keeps_what_follows_the_marker(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    assert kept_sections(report) == ""
    report.write_text(f"# old generated part\n\n{KEPT_MARKER}\n\n## 4. Rollback latency\n\n4.8 s\n")
    assert kept_sections(report) == f"\n{KEPT_MARKER}\n\n## 4. Rollback latency\n\n4.8 s\n"
    report.write_text("# generated only\n")
    assert kept_sections(report) == ""


def test_the_committed_report_holds_the_rollback_latency() -> None:
    assert "Rollback latency of `watch --apply`" in kept_sections(ROOT / "docs" / "benchmarks.md")
