"""The tests' chart mirror (`MLPLATFORM_TEST_CHARTS`): served on loopback, upstream on request, never skipped."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.support.chart_mirror import MIRROR_ENV, chart_mirror


def test_unset_fails_naming_the_variable_and_both_ways_to_set_it(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception) as failed, chart_mirror():
        pass
    assert MIRROR_ENV in str(failed.value) and "upstream" in str(failed.value)


def test_a_directory_is_served_on_loopback(monkeypatch, tmp_path: Path):
    (tmp_path / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    with chart_mirror() as url:
        assert url is not None and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/index.yaml", timeout=5) as response:
            assert b"entries" in response.read()


def test_a_directory_without_an_index_is_refused(monkeypatch, tmp_path: Path):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"no index\.yaml"), chart_mirror():
        pass


def test_upstream_means_the_pinned_repositories(monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, "upstream")
    with chart_mirror() as url:
        assert url is None
