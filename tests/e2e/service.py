"""The whole service as a user starts it: `hotline serve` with a config of the test's own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.support import free_port, free_udp_tcp_port, until

REPO = Path(__file__).resolve().parents[2]


def free_port_pair() -> int:
    """A base port with base and base+1 both free for UDP (the two workers)."""
    for _ in range(100):
        base = free_udp_tcp_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no free port pair")


class Service:
    """`hotline serve` in a subprocess, with its data under `root`."""

    def __init__(self, root: Path, workers: int = 2, kamailio: bool = True, **overrides: Any) -> None:
        self.root = root
        self.data = root / "var"
        self.sip_port = free_udp_tcp_port()
        self.http_port = free_port()
        self.worker_base = free_port_pair()
        self.workers = workers
        config: dict[str, Any] = {
            "data_dir": str(self.data),
            "prompts_dir": str(REPO / "config" / "prompts" / "zh-CN"),
            "log_level": "INFO",
            "sip": {
                "host": "127.0.0.1",
                "port": self.sip_port,
                "workers": workers,
                "worker_base_port": self.worker_base,
                "max_calls_per_worker": 50,
                "log_level": 4,
            },
            "kamailio": {"enabled": kamailio, "ping_interval_s": 1},
            "http": {"host": "127.0.0.1", "port": self.http_port},
            # The API's sign-in has its own tests (tests/integration/test_api_auth.py).
            "api": {"auth": False},
            "queue": {"ring_timeout_s": 15},
            # Speech recognition loads a model and spends CPU on every queued call: only the
            # tests of it turn it on (start_service(asr={"enabled": True})).
            "asr": {"enabled": False},
        }
        for key, value in overrides.items():
            if isinstance(value, dict):
                config.setdefault(key, {}).update(value)
            else:
                config[key] = value
        self.config_path = root / "hotline.yaml"
        root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, allow_unicode=True))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "serve.log"
        self.speech = bool(config["asr"].get("enabled"))

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1"

    @property
    def redis_url(self) -> str:
        return f"unix://{self.data / 'redis' / 'redis.sock'}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env["HOTLINE_CONFIG"] = str(self.config_path)
        return env

    def start(self, timeout: float = 60) -> None:
        """Starts `hotline serve` and waits until the API answers and every worker beats; with
        speech recognition on, until the speech service has loaded its model too (it may take a
        minute on a loaded machine, and what a caller says before is only heard later)."""
        if self.speech:
            timeout = max(timeout, 240)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hotline", "serve"],
                cwd=REPO,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        until(self._ready, timeout=timeout, interval=0.2)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"hotline serve exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            self.get("/health")
        except (OSError, urllib.error.URLError):
            return False
        if len(self.alive_workers()) != self.workers:
            return False
        speech_log = self.data / "log" / "speech.log"
        return not self.speech or (speech_log.exists() and "speech ready" in speech_log.read_text(errors="replace"))

    def alive_workers(self) -> dict[str, Any]:
        """Heartbeats in Redis, read with the product's own adapter."""
        import asyncio

        import redis.asyncio

        from hotline.queue.bus import RedisEventBus

        async def read() -> dict[str, Any]:
            client = redis.asyncio.Redis.from_url(self.redis_url)
            try:
                return dict(await RedisEventBus(client).alive_workers())
            finally:
                await client.aclose()

        try:
            return asyncio.run(read())
        except Exception:
            return {}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def logs(self) -> str:
        parts = []
        for path in [self.log_path, *sorted((self.data / "log").glob("*.log"))]:
            if path.exists() and not path.name.startswith("pjsip"):
                parts.append(f"==== {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    # --- API and CLI, as a user would use them
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "hotline", *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def tickets(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("tickets", "list", "--json")))

    def ticket(self, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for t in self.tickets():
                if predicate(t):
                    return t
            return None

        found = until(find, timeout=timeout, interval=0.3)
        assert isinstance(found, dict)
        return found

    def add_agent(self, agent_id: str, extension: str | None = None) -> None:
        self.cli("agents", "add", agent_id, "--name", f"坐席{agent_id}", "--extension", extension or agent_id)
        status, body = self.request("POST", f"/agents/{agent_id}/login")
        assert status == 200, body

    def redis_pid(self) -> int | None:
        """The embedded redis-server's pid, as it reports it (INFO server), or None if down."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(str(self.data / "redis" / "redis.sock"))
                sock.sendall(b"INFO server\r\n")
                data = b""
                while b"process_id:" not in data or not data.endswith(b"\r\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return None
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        return None

    def worker_pids(self) -> dict[str, int]:
        return {w: int(info["pid"]) for w, info in self.alive_workers().items()}
