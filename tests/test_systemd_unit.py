"""The sample systemd unit: its set-up instructions work on a fresh host, and it sets ktrdr's thread knob."""

from __future__ import annotations

import configparser
import shlex
import stat
import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "ktrdr.service"


def test_the_unit_sets_ktrdr_torch_threads_not_omp() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    environment = parser["Service"]["Environment"]
    assert "KTRDR_TORCH_THREADS=" in UNIT.read_text() and "OMP_NUM_THREADS" not in UNIT.read_text()
    assert parser["Service"]["EnvironmentFile"] == "-/etc/ktrdr/ktrdr.env"
    assert environment


def test_the_env_file_instructions_work_on_a_fresh_host(tmp_path: Path) -> None:
    """The unit's `install` lines, run against an empty folder standing in for /etc."""
    etc = tmp_path / "etc"
    etc.mkdir()
    commands = [
        line.split("sudo ", 1)[1].split("  #")[0]
        for line in UNIT.read_text().splitlines()
        if line.startswith("#   sudo install")
    ]
    assert commands, "the unit no longer says how to create its env file"
    for command in commands:
        argv = [part.replace("/etc/", f"{etc}/") for part in shlex.split(command)]
        subprocess.run(argv, check=True, timeout=30)
    env_file = etc / "ktrdr" / "ktrdr.env"
    assert env_file.is_file() and stat.S_IMODE(env_file.stat().st_mode) == 0o600
