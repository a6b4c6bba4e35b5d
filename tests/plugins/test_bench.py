"""The plugins bench part works at tiny sizes (it measures nothing here): every heartbeat is accepted, the
steady pass changes nothing of the fleet, the crashing 1 % is ledgered."""

from __future__ import annotations

import pytest

from bench import plugins as bench_plugins

pytestmark = pytest.mark.django_db


def test_the_plugins_bench_runs_at_tiny_sizes(settings):
    settings.ROOT_URLCONF = "bench.urls"
    result = bench_plugins.plugins_bench(heartbeats=5, plugins=30, log=lambda line: None)
    assert result["heartbeats"]["refused"] == 0 and result["heartbeats"]["count"] == 5
    supervision = result["supervision"]
    assert supervision["rows"] == 30
    assert supervision["steady_transitions"] == 1  # the heartbeat part's plugin, first seen healthy
    assert supervision["crash_transitions"] == 1  # 1 % of 30, at least one
    assert {goal["goal"] for goal in bench_plugins.goals({"plugins": result})} == {
        "signed heartbeat ingest vs the no-op view (same run, in process)",
        "one supervision pass over 30 plugins",
    }
    assert bench_plugins.report({"plugins": result})[0] == "## Plugins"
