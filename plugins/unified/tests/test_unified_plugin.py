"""ktrdr-unified is found through its entry point when installed with pip."""

from __future__ import annotations

import importlib.metadata

from ktrdr_core.plugins import get_plugin_manager, reset_plugin_manager


def test_entry_point_is_declared_by_the_distribution() -> None:
    eps = [ep for ep in importlib.metadata.entry_points(group="ktrdr") if ep.name == "unified"]
    assert len(eps) == 1
    assert eps[0].dist is not None and eps[0].dist.name == "ktrdr-unified"
    assert eps[0].value == "ktrdr_unified.plugin"


def test_mode_is_registered_under_its_name() -> None:
    reset_plugin_manager()
    pm = get_plugin_manager()
    registered = pm.registered_modes()
    assert "unified" in registered
    assert registered["unified"].distribution == "ktrdr-unified"
    assert registered["unified"].mode.name == "unified"
