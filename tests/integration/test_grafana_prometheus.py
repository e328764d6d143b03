"""The Grafana board's queries against a real Prometheus scraping a real ``ktrdr serve``.

One server and one Prometheus (Debian's ``prometheus``, scraping every
second on 127.0.0.1) for the module. Both modes train and get cancelled over
the API; then every query of every panel of ``deploy/grafana/ktrdr.json``
goes through Prometheus' HTTP API, with Grafana's ``$__rate_interval``
replaced by a window the test's traffic fills: each must parse and return
series, and every panel fed by that traffic must have a real (finite) value.
The shadow pairs' ratios exist only once the shadow stage runs, so for them
the series must exist (NaN until then), not carry a value.

Without the prometheus binary the test skips; under CI it fails (scripts/test
installs it with promtool).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service import AUTH, QUICK, Server, free_port, wait_for, wait_for_progress

BOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ktrdr.json"
RATE_WINDOW = "3m"
NO_TRAFFIC_YET = {"Shadow pairs: candidate / control"}
"""Panels whose data needs the shadow stage, which this test does not run."""
LONG = {"strategy": "neuro_mean_reversion", "overrides": {"epochs": 200, "seed": 7}}


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        why = "the prometheus server is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI must run this test (scripts/test installs it)")
        pytest.skip(why)
    return found


class Prometheus:
    """A Prometheus with its own storage, scraping ``target`` every second as job ``ktrdr``."""

    def __init__(self, binary: str, folder: Path, target: str) -> None:
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: ktrdr\n    static_configs:\n"
            f'      - targets: ["{target}"]\n'
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, (folder / "prometheus.log").read_text()
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready in 60 s"
            time.sleep(0.2)

    def query(self, expr: str, **params: Any) -> dict[str, Any]:
        path = "/api/v1/query_range" if "start" in params else "/api/v1/query"
        answer = httpx.get(self.url + path, params={"query": expr, **params}, timeout=30)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return dict(body["data"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = _prometheus()
    folder = tmp_path_factory.mktemp("grafana")
    server = Server(folder / "home", "--max-concurrent", "2")
    prometheus = Prometheus(binary, folder, f"127.0.0.1:{server.port}")
    try:
        # the first scrape comes a few seconds after start-up; rate() needs samples from before the traffic
        deadline = time.monotonic() + 60
        while not prometheus.query('up{job="ktrdr"} == 1')["result"]:
            assert time.monotonic() < deadline, "prometheus never scraped ktrdr serve"
            time.sleep(0.5)
        time.sleep(2)
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for stage in ("full", "off"):  # full: the candidate unified; off: the control legacy
                assert c.put("/api/v1/rollout", json={"stage": stage}, headers=AUTH).status_code == 200
                done = c.post("/api/v1/trainings", json=QUICK).json()["id"]
                wait_for(c, done, {"completed"}, timeout=120)
                cancelled = c.post("/api/v1/trainings", json=LONG).json()["id"]
                wait_for_progress(c, cancelled, timeout=120)
                assert c.post(f"/api/v1/trainings/{cancelled}/cancel").status_code == 202
                wait_for(c, cancelled, {"cancelled"}, timeout=60)
        deadline = time.monotonic() + 60
        while True:  # until Prometheus has scraped all four
            result = prometheus.query("sum(training_requests_total)")["result"]
            if result and float(result[0]["value"][1]) >= 4:
                break
            assert time.monotonic() < deadline, "prometheus never saw the four trainings"
            time.sleep(0.5)
        time.sleep(3)  # a few more scrapes after the last change, for rate()
        yield prometheus
    finally:
        prometheus.stop()
        server.stop()


def test_the_board_is_a_grafana_dashboard_over_one_prometheus_input() -> None:
    board = json.loads(BOARD.read_text())
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_every_exported_metric_has_a_panel() -> None:
    from ktrdr_core.service.metrics import REGISTRY

    exprs = " ".join(expr for _title, expr in _targets(json.loads(BOARD.read_text())))
    names = {family.name for family in REGISTRY.collect()}
    missing = sorted(name for name in names if name not in exprs)
    assert not missing, f"metrics no panel shows: {missing}"


def test_every_panel_query_parses_and_returns_data(scraped: Prometheus) -> None:
    board = json.loads(BOARD.read_text())
    end = time.time()
    empty, no_value = [], []
    for title, expr in _targets(board):
        query = expr.replace("$__rate_interval", RATE_WINDOW)
        data = scraped.query(query, start=end - 60, end=end, step=5)
        values = [float(v) for series in data["result"] for _t, v in series["values"]]
        if not data["result"]:
            empty.append(f"{title}: {query}")
        elif title not in NO_TRAFFIC_YET and not any(math.isfinite(v) for v in values):
            no_value.append(f"{title}: {query}")
    assert not empty, "queries with no series:\n" + "\n".join(empty)
    assert not no_value, "queries with no finite value:\n" + "\n".join(no_value)
