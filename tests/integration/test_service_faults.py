"""The fault suite: ``ktrdr serve`` killed, starved of disk, fed corrupt files and hostile clients.

Real servers (subprocesses on 127.0.0.1), real trainings, real SIGKILL, a
real tmpfs. Every test asserts the same three things in its own terms:
nothing accepted is lost (one terminal ledger row per accepted id), nothing
is half-written (no ``.tmp-*`` model folder, no row left open), and the
answer is a clear status — never a 500, a traceback or a hang. The hostile
requests share one server; the crash tests need their own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service import LONG, QUICK, TERMINAL, Server, start, wait_for, wait_for_progress

HOSTILE_TIMEOUT = "1.5"


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("hostile") / "home", "--client-timeout", HOSTILE_TIMEOUT)
    yield srv
    srv.stop()


def rows(home: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        return {r[0]: r[1:] for r in db.execute("SELECT request_id, status, error_kind, error FROM runs")}


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"detail", "message"} and isinstance(body["message"], str) and body["message"]
    return dict(body)


# -- hostile clients -------------------------------------------------------------------------


def test_a_huge_body_is_413_before_it_is_read(hostile_server: Server) -> None:
    huge = b'{"strategy": "' + b"A" * (13 * 1024 * 1024) + b'"}'
    with httpx.Client(base_url=hostile_server.url, timeout=30) as c:
        t0 = time.monotonic()
        body = assert_error_shape(
            c.post("/api/v1/trainings", content=huge, headers={"Content-Type": "application/json"}), 413
        )
        assert "AAAA" not in json.dumps(body) and time.monotonic() - t0 < 10

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"strategy": "'
            for _ in range(200):
                yield b"B" * 65536

        assert_error_shape(
            c.post("/api/v1/trainings", content=chunks(), headers={"Content-Type": "application/json"}), 413
        )
        assert c.get("/api/v1/health").status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"strategy": "neuro_mean_reversion", "overrides": {"learning_rate": NaN}}',
        b'{"strategy": "neuro_mean_reversion", "overrides": {"learning_rate": 1e999}}',
        b'{"strategy": "neuro_mean_reversion", "extra": -Infinity}',
        b'{"strategy": "neuro_mean_reversion", "user_id": "\\ud800"}',
        b'{"strategy": "neuro_\xff\xfe"}',
        b'{"strategy": "x", "overrides": {"epochs": 1' + b"0" * 5000 + b"}}",
        b"[" * 50_000,
        b'{"strategy": ',
    ],
)
def test_invalid_json_is_422_and_never_500(hostile_server: Server, raw: bytes) -> None:
    response = httpx.post(
        hostile_server.url + "/api/v1/trainings",
        content=raw,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    body = assert_error_shape(response, 422)
    assert body["message"].startswith("invalid request: ")


def test_validation_errors_never_echo_the_input(hostile_server: Server) -> None:
    marker = "Z" * 300
    body = {
        "strategy": f"../{marker}",
        "user_id": f"u{marker}",
        "symbols": [f"/{marker}"],
        "start_date": marker[:40],
        f"k{marker}": 1,
        "overrides": {f"o{marker}": 2},
    }
    answer = assert_error_shape(
        httpx.post(hostile_server.url + "/api/v1/trainings", json=body, timeout=10), 422
    )
    assert "ZZZZ" not in json.dumps(answer)


@pytest.mark.parametrize("user_id", ["ali\u200bce", "bob\u202e", "eve\x07", "x\ufeff"])
def test_invisible_characters_in_user_ids_are_refused(hostile_server: Server, user_id: str) -> None:
    answer = assert_error_shape(
        httpx.post(
            hostile_server.url + "/api/v1/trainings",
            json={"strategy": "neuro_mean_reversion", "user_id": user_id},
            timeout=10,
        ),
        422,
    )
    assert "U+" in answer["message"]


def test_every_error_status_has_the_one_shape(hostile_server: Server) -> None:
    url = hostile_server.url
    assert_error_shape(httpx.get(url + "/api/v1/nope", timeout=10), 404)
    assert_error_shape(httpx.delete(url + "/api/v1/health", timeout=10), 405)
    assert_error_shape(
        httpx.post(
            url + "/api/v1/trainings",
            content=b"strategy=x",
            headers={"Content-Type": "text/plain"},
            timeout=10,
        ),
        415,
    )
    assert_error_shape(
        httpx.post(
            url + "/api/v1/trainings",
            content=b'{"strategy": "x"}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        ),
        415,
    )
    assert_error_shape(httpx.get(url + "/api/v1/trainings/unknown-id", timeout=10), 404)


def test_a_foreign_host_header_is_refused(hostile_server: Server) -> None:
    for host in ("evil.example", "attacker.test:8000", "127.0.0.1.nip.io"):
        answer = assert_error_shape(
            httpx.get(hostile_server.url + "/api/v1/trainings", timeout=10, headers={"Host": host}), 400
        )
        assert "Host header" in answer["message"] and host not in answer["message"]
    for host in ("localhost", f"127.0.0.1:{hostile_server.port}"):
        assert (
            httpx.get(hostile_server.url + "/api/v1/health", headers={"Host": host}, timeout=10).status_code
            == 200
        )


def _raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def test_slow_clients_are_dropped(hostile_server: Server) -> None:
    timeout = float(HOSTILE_TIMEOUT)
    headers_slow = _raw(hostile_server.port)
    headers_slow.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    body_slow = _raw(hostile_server.port)
    body_slow.sendall(
        b"POST /api/v1/trainings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"strat'
    )
    t0 = time.monotonic()
    assert httpx.get(hostile_server.url + "/api/v1/health", timeout=5).status_code == 200  # not blocked
    headers_slow.settimeout(timeout + 20)
    assert headers_slow.recv(1024) == b""  # closed by the server
    assert time.monotonic() - t0 < timeout + 20
    body_slow.settimeout(timeout + 20)
    answer = body_slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    for sock in (headers_slow, body_slow):
        sock.close()


def test_failure_messages_name_no_server_path(hostile_server: Server) -> None:
    with httpx.Client(base_url=hostile_server.url, timeout=10) as c:
        failed = wait_for(c, start(c, {**QUICK, "symbols": ["NOPE"]})["id"], TERMINAL)
        rollout = c.get("/api/v1/rollout").json()
    assert failed["status"] == "failed" and "NOPE" in failed["error"]
    home = str(hostile_server.home)
    for text in (failed["error"], failed["result"]["error"], rollout["file"]):
        assert home not in text and "/tmp/" not in text and "SYNTH_A" not in text, text
    assert rollout["file"] == "KTRDR_HOME/rollout.json"


# -- crashes -------------------------------------------------------------------------------


def test_sigkill_with_a_queue_then_restart_loses_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home-kill"
    srv = Server(home, "--max-concurrent", "1", "--queue-size", "4")
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        running = start(c, {**LONG, "user_id": "k1"})
        queued = [start(c, {**LONG, "user_id": f"k{n}"}) for n in (2, 3)]
        wait_for_progress(c, running["id"])
    srv.stop(signal.SIGKILL)
    accepted = [running["id"], *(q["id"] for q in queued)]
    before = rows(home)
    assert [before[i][0] for i in accepted] == ["running", "queued", "queued"]

    t0 = time.monotonic()
    again = Server(home)
    try:
        after = rows(home)
        assert time.monotonic() - t0 < 60
        assert after[running["id"]][:2] == ("interrupted", "interrupted")
        assert all(after[q["id"]][:2] == ("interrupted", "not_started") for q in queued)
        assert all("gone at start-up" in after[i][2] for i in accepted)
        assert len(after) == 3
        metrics = httpx.get(again.url + "/metrics", timeout=10).text
        assert 'training_requests_total{implementation="legacy",status="interrupted"} 1.0' in metrics
    finally:
        again.stop()


KILL_IN_SAVE = """
import os, signal, sys
import torch
from ktrdr_core.training import storage

real_save = torch.save
def save_then_die(obj, target, *args, **kwargs):
    real_save(obj, target, *args, **kwargs)
    with open(sys.argv[1], "w") as flag:
        flag.write(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = save_then_die
storage.save_model(torch.nn.Linear(3, 3), strategy="neuro_mean_reversion", symbols=["SYNTH_A"],
                   timeframes=["1h"], config={}, metrics={}, features={"input_size": 3})
"""


def test_sigkill_during_save_leaves_a_folder_the_next_start_sweeps(tmp_path: Path) -> None:
    home = tmp_path / "home-save"
    flag = tmp_path / "killed-in-save"
    env = {**os.environ, "KTRDR_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_IN_SAVE, str(flag)], env=env, timeout=120, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert flag.exists()
    strategy_dir = home / "models" / "neuro_mean_reversion"
    left = [p.name for p in strategy_dir.iterdir() if p.name.startswith(".tmp-")]
    assert len(left) == 1 and f"-p{flag.read_text()}-" in left[0]
    srv = Server(home)
    try:
        assert not [p for p in strategy_dir.iterdir() if p.name.startswith(".tmp-")]
        assert not [p for p in strategy_dir.iterdir() if p.name.endswith("_v1")]
    finally:
        srv.stop()


def test_sigkill_during_training_restart_and_train_again(tmp_path: Path) -> None:
    home = tmp_path / "home-train"
    srv = Server(home)
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        lost = start(c, {**LONG, "user_id": "mid"})
        wait_for_progress(c, lost["id"])
    srv.stop(signal.SIGKILL)
    again = Server(home)
    try:
        with httpx.Client(base_url=again.url, timeout=10) as c:
            done = wait_for(c, start(c, {**QUICK, "user_id": "after"})["id"], TERMINAL)
        assert done["status"] == "completed", done["error"]
        found = rows(home)
        assert found[lost["id"]][0] == "interrupted" and found[done["id"]][0] == "success"
        assert not [r for r in found.values() if r[0] in ("queued", "running")]
    finally:
        again.stop()


# -- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.fail("the full-disk test mounts a tmpfs: run it as root (CI does)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_filled_mid_run_fails_the_run_clearly_and_loses_nothing(tiny_tmpfs: Path) -> None:
    home = tiny_tmpfs / "home"
    srv = Server(home)
    filler = tiny_tmpfs / "filler"
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            # small batches: epochs of about a second, so it is still training when the disk fills
            run = start(
                c, {**QUICK, "user_id": "full", "overrides": {"epochs": 40, "seed": 7, "batch_size": 8}}
            )
            wait_for_progress(c, run["id"])
            with open(filler, "wb", buffering=0) as handle:  # fill the disk while it trains
                try:
                    while True:
                        handle.write(b"\0" * 65536)
                except OSError:
                    pass
            ended = wait_for(c, run["id"], TERMINAL, timeout=120)
            assert ended["status"] == "failed"
            assert "no space left on device" in ended["error"].lower(), ended["error"]
            assert str(home) not in ended["error"]
            refused = c.post("/api/v1/trainings", json={**QUICK, "user_id": "while-full"})
            if refused.status_code == 503:  # the ledger could not be written either
                assert "no space left on device" in refused.json()["message"]
                assert c.get("/api/v1/health").json()["status"] == "degraded"
            filler.unlink()
            again = c.post("/api/v1/trainings", json={**QUICK, "user_id": "after-full"})
            assert again.status_code == 202, again.text
            wait_for(c, again.json()["id"], TERMINAL, timeout=120)
            assert c.get("/api/v1/health").json()["status"] == "ok"
        found = rows(home)
        assert found[run["id"]][0] == "error" and "no space left" in found[run["id"]][2].lower()
        assert not [p for p in (home / "models").rglob(".tmp-*")]
    finally:
        srv.stop()


# -- corrupt files and a held lock ----------------------------------------------------------


def test_corrupt_files_and_a_held_lock_are_clear_503s_and_never_stall_health(tmp_path: Path) -> None:
    import fcntl

    from test_service import AUTH

    home = tmp_path / "home-files"
    srv = Server(home)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            rollout = home / "rollout.json"
            home.mkdir(parents=True, exist_ok=True)
            for content in (b"\xff\xfe not text", b'{"percentag": 10}', b"{broken"):
                rollout.write_bytes(content)
                assert_error_shape(c.get("/api/v1/rollout"), 503)
                assert_error_shape(c.post("/api/v1/trainings", json=QUICK), 503)
                assert_error_shape(c.put("/api/v1/rollout", json={"percentage": 10}, headers=AUTH), 503)
                assert c.get("/api/v1/health").status_code == 503
                assert c.get("/metrics").status_code == 200
            rollout.unlink()
            assert not (home / "ledger.sqlite3").exists() or not rows(home)  # nothing was accepted

            with open(home / ".rollout.lock", "a+") as holder:  # another process holds the lock
                fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
                slowest = 0.0
                change = c.build_request("PUT", "/api/v1/rollout", json={"percentage": 10}, headers=AUTH)
                with httpx.Client(base_url=srv.url, timeout=30) as other:
                    import threading

                    answers: list[httpx.Response] = []
                    puts = [
                        threading.Thread(target=lambda: answers.append(other.send(change))) for _ in range(4)
                    ]
                    for put in puts:
                        put.start()
                    for _ in range(20):
                        t0 = time.monotonic()
                        assert c.get("/api/v1/health").status_code == 200
                        assert c.get("/metrics").status_code == 200
                        slowest = max(slowest, time.monotonic() - t0)
                        time.sleep(0.1)
                    for put in puts:
                        put.join(60)
                assert slowest < 2.0
                assert len(answers) == 4
                for answer in answers:
                    assert "locked by another process" in assert_error_shape(answer, 503)["message"]
            assert c.put("/api/v1/rollout", json={"percentage": 10}, headers=AUTH).status_code == 200

            (home / "ledger.sqlite3").write_bytes(b"garbage" * 1000)
            for suffix in ("-wal", "-shm"):
                (home / f"ledger.sqlite3{suffix}").unlink(missing_ok=True)
            assert_error_shape(c.post("/api/v1/trainings", json=QUICK), 503)
            assert c.get("/api/v1/health").json()["status"] == "degraded"
    finally:
        srv.stop()
    assert "Traceback" not in srv.output()
