"""Plugin discovery through real pip-installed entry points, and isolation of broken ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from plugin_dists import BAD_SIGNATURE, BROKEN_IMPORT, GOOD_PLUGIN, pip_install_target, write_dist

from ktrdr_core.plugins import KtrdrPluginManager


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two install targets: good + broken + bad-signature plugins, and two plugins with one mode name."""
    src = tmp_path_factory.mktemp("dists")
    mixed, clash = tmp_path_factory.mktemp("site-mixed"), tmp_path_factory.mktemp("site-clash")
    good = write_dist(src, "ktrdr-test-echo", "echo", GOOD_PLUGIN.format(mode="echo"))
    broken = write_dist(src, "ktrdr-test-broken", "broken", BROKEN_IMPORT)
    badsig = write_dist(src, "ktrdr-test-badsig", "badsig", BAD_SIGNATURE)
    twin = write_dist(src, "ktrdr-test-twin", "twin", GOOD_PLUGIN.format(mode="echo"))
    pip_install_target(mixed, good, broken, badsig)
    pip_install_target(clash, good, twin)
    return {"mixed": mixed, "clash": clash}


def run_ktrdr(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run(
        [sys.executable, "-m", "ktrdr_core.cli.main", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def plugins_json(site: Path, **env: str) -> dict[str, Any]:
    proc = run_ktrdr(site, "plugins", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in listing["plugins"]}


def test_pip_installed_plugin_is_discovered_and_broken_ones_reported(plugin_site: dict[str, Path]) -> None:
    rows = by_name(plugins_json(plugin_site["mixed"]))
    assert rows["echo"]["distribution"] == "ktrdr-test-echo"
    assert rows["echo"]["modes"] == [{"name": "echo", "healthy": True, "detail": "echo is always ready"}]
    assert rows["echo"]["error"] is None
    assert "broken on purpose" in rows["broken"]["error"]
    assert "unexpected_argument" in rows["badsig"]["error"]
    assert rows["badsig"]["modes"] == []


def test_text_listing_shows_the_error(plugin_site: dict[str, Path]) -> None:
    proc = run_ktrdr(plugin_site["mixed"], "plugins")
    assert proc.returncode == 0
    assert "error: ImportError: this plugin is broken on purpose" in proc.stdout
    assert "mode echo: healthy" in proc.stdout


def test_ktrdr_plugins_env_limits_loading(plugin_site: dict[str, Path]) -> None:
    rows = by_name(plugins_json(plugin_site["mixed"], KTRDR_PLUGINS="echo"))
    assert rows["echo"]["error"] is None and rows["echo"]["disabled"] is None
    assert rows["broken"]["disabled"] == "not listed in KTRDR_PLUGINS"


def test_disable_plugins_blocks_by_distribution_name(plugin_site: dict[str, Path]) -> None:
    rows = by_name(plugins_json(plugin_site["mixed"], KTRDR_DISABLE_PLUGINS="ktrdr-test-echo"))
    assert rows["echo"]["disabled"] == "blocked by KTRDR_DISABLE_PLUGINS"
    assert rows["echo"]["modes"] == []


def test_duplicate_mode_names_are_an_error_naming_both_distributions(plugin_site: dict[str, Path]) -> None:
    listing = plugins_json(plugin_site["clash"])
    assert len(listing["conflicts"]) == 1
    assert "ktrdr-test-echo" in listing["conflicts"][0] and "ktrdr-test-twin" in listing["conflicts"][0]
    proc = run_ktrdr(plugin_site["clash"], "rollout", "explain", "alice")
    assert proc.returncode == 2
    assert "ktrdr-test-echo" in proc.stderr and "ktrdr-test-twin" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_entry_points_are_scanned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from ktrdr_core import plugins

    calls = []
    real = importlib.metadata.entry_points

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(plugins.metadata, "entry_points", counting)
    plugins.reset_plugin_manager()
    first = plugins.get_plugin_manager()
    assert plugins.get_plugin_manager() is first
    assert len(calls) == 1


def test_hook_that_raises_while_registering_is_isolated() -> None:
    from ktrdr_core import ModeHealth, hookimpl

    class Fine:
        name = "fine"

        def health(self) -> ModeHealth:
            return ModeHealth.ok()

    class Exploding:
        @hookimpl
        def register_execution_modes(self, register: Any) -> None:
            raise RuntimeError("boom")

    class Working:
        @hookimpl
        def register_execution_modes(self, register: Any) -> None:
            register(Fine())

    pm = KtrdrPluginManager()
    pm.register_checked(Exploding(), name="exploding", distribution="x", version="1")
    pm.register_checked(Working(), name="working", distribution="y", version="1")
    assert list(pm.execution_modes()) == ["fine"]
    infos = {info.name: info for info in pm.plugin_infos()}
    assert infos["exploding"].error == "register_execution_modes: RuntimeError: boom"
    assert infos["working"].modes == ("fine",)


def test_unknown_hook_name_is_reported() -> None:
    from ktrdr_core import hookimpl

    class Typo:
        @hookimpl
        def register_execution_mode(self, register: Any) -> None:  # missing "s"
            pass

    pm = KtrdrPluginManager()
    info = pm.register_checked(Typo(), name="typo", distribution="t", version="1")
    assert info.error is not None and "register_execution_mode" in info.error
    assert not pm.is_registered(Typo)


# -- the default plugins, the mode registry, registration hooks through pluggy ----------------------


def test_the_default_plugins_come_from_one_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from ktrdr_core import plugins

    monkeypatch.setenv("KTRDR_PLUGINS", "no-installed-plugins")
    names = [default.name for default in plugins.DEFAULT_PLUGINS]
    assert names == ["ktrdr-core", "ktrdr-indicators", "ktrdr-ledger", "ktrdr-auto-rollback"]
    plugins.reset_plugin_manager()
    try:
        pm = plugins.get_plugin_manager()
        assert [name for name in names if pm.get_plugin(name) is not None] == names
        monkeypatch.setenv("KTRDR_LEDGER", "off")
        plugins.reset_plugin_manager()
        off = plugins.get_plugin_manager()
        assert [name for name in names if off.get_plugin(name) is not None] == [
            "ktrdr-core",
            "ktrdr-indicators",
        ]
    finally:
        plugins.reset_plugin_manager()


class CountingMode:
    """A mode whose health is cached, like cloud's: checked for real once per instance."""

    name = "counting"

    def __init__(self) -> None:
        self.health_checks = 0
        self._cached: Any = None

    def health(self) -> Any:
        from ktrdr_core import ModeHealth

        if self._cached is None:
            self.health_checks += 1
            self._cached = ModeHealth.ok()
        return self._cached


def test_the_mode_registry_survives_an_unrelated_register() -> None:
    from ktrdr_core import hookimpl

    built: list[int] = []

    class Provider:
        @hookimpl
        def register_execution_modes(self, register: Any) -> None:
            built.append(1)
            register(CountingMode())

    class Observer:
        @hookimpl
        def training_started(self, request: Any, decision: Any) -> None:
            pass

    pm = KtrdrPluginManager()
    pm.register(Provider(), name="provider")
    mode = pm.get_mode("counting")
    mode.health()
    for _ in range(3):
        observer = Observer()
        pm.register(observer, name="per-request")  # what `ktrdr train` and `ktrdr compare` do per run
        pm.get_mode("counting").health()
        pm.unregister(observer)
    assert pm.get_mode("counting") is mode and built == [1]  # same instance, with its cached health
    assert mode.health_checks == 1

    class Another:
        @hookimpl
        def register_execution_modes(self, register: Any) -> None:
            pass

    another = Another()
    pm.register(another, name="another")
    assert pm.get_mode("counting") is not mode and built == [1, 1]  # a mode plugin came: rebuilt
    pm.unregister(name="another")
    pm.get_mode("counting")
    assert len(built) == 3


def test_registration_hooks_are_monitored_and_attributed() -> None:
    from ktrdr_core import hookimpl

    class One:
        @hookimpl
        def register_execution_modes(self, register: Any) -> None:
            register(CountingMode())

    pm = KtrdrPluginManager()
    pm.register_checked(One(), name="one", distribution="one-dist", version="1")
    seen: list[tuple[str, list[str]]] = []
    pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append((name, [impl.plugin_name for impl in impls])),
        lambda outcome, name, impls, kwargs: None,
    )
    assert pm.registered_modes()["counting"].distribution == "one-dist"
    assert seen == [("register_execution_modes", ["one"])]
