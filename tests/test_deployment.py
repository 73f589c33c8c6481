"""End to end with a real Prefect server on loopback: deploy from prefect.yaml, start a process worker,
trigger the `nightly` deployment, wait for it, check the outputs; everything is stopped afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [PREFECT, *args], env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def test_prefect_yaml_declares_the_nightly_schedule():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    (dep,) = [d for d in spec["deployments"] if d["name"] == "nightly"]
    assert dep["schedules"][0]["cron"] == "0 2 * * *" and dep["schedules"][0]["timezone"] == "Asia/Shanghai"
    assert set(dep["parameters"]) >= {"inbox", "db", "out"}
    assert dep["work_pool"]["name"] == "claimwatch"


def test_deployment_runs_on_a_real_server_and_worker(small_inbox, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    server = start(["server", "start", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "server.log")
    worker = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(1)

        def prefect(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
            r = subprocess.run([PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
            assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
            return r

        prefect("work-pool", "create", "claimwatch", "--type", "process")
        prefect("--no-prompt", "deploy", "--all")
        worker = start(["worker", "start", "--pool", "claimwatch"], env, tmp_path / "worker.log")
        out = tmp_path / "out"
        r = prefect(
            "deployment",
            "run",
            "claimwatch-nightly/nightly",
            "--param",
            f"inbox={small_inbox}",
            "--param",
            f"db={tmp_path / 'w.duckdb'}",
            "--param",
            f"out={out}",
            "--watch",
            "--watch-timeout",
            "400",
            timeout=480,
        )
        assert "Completed" in r.stdout, r.stdout[-2000:]
        summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
        assert summary["status"] == "completed" and summary["rows"]["setl"]["loaded"] > 5000
        for name in ("anomalies.csv", "sampling_list.xlsx", "claim_samples.csv", "report.html"):
            assert (out / name).is_file(), name
        assert any((out / "notices").glob("*.docx"))
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
    assert server.poll() is not None and (worker is None or worker.poll() is not None)
