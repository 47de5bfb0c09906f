"""Kamailio in front of the media workers: its configuration and its process.

Kamailio (Debian's package) is the registrar for agents' softphones, the dispatcher of incoming
calls over the media workers (with OPTIONS probing and failover) and the proxy for calls from a
worker to a registered agent. This module renders its configuration from the package file
``kamailio.cfg.tmpl``, checks it with ``kamailio -c`` and runs it in the foreground as a child
process. Standard library (and hotline.core's errors) only: it must stay importable where pjsua2
is not installed, e.g. by ``hotline doctor``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Literal

from hotline.core.errors import ConfigError, Unavailable

logger = logging.getLogger(__name__)

WORKER_SET = 1
"""The dispatcher set holding the media workers."""

DEFAULT_MODULE_PATH = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
REQUIRED_MODULES = (
    "kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "usrloc", "registrar",
    "textops", "siputils", "xlog", "sanity", "dispatcher",
)  # fmt: skip
_MODULE_PATH_GLOBS = (
    "/usr/lib/*-linux-gnu/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
)
_INSTALL_HINT = "apt-get install kamailio"

LogLevel = Literal["error", "warning", "notice", "info", "debug"]
_LOG_LEVELS: dict[str, int] = {"error": -1, "warning": 0, "notice": 1, "info": 2, "debug": 3}

# Host names for the dispatcher list and aliases: letters, digits, dots and dashes only, so that
# nothing a setting holds can break out of the configuration's syntax.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class KamailioConfigError(ConfigError):
    """The settings or the rendered configuration are not usable; the message says why."""

    error_id = "kamailio-config"


class KamailioStartError(Unavailable):
    """Kamailio is missing, did not start, or did not answer on its port."""

    error_id = "kamailio-unavailable"


def find_module_path() -> Path:
    """The directory holding Kamailio's modules (``tm.so`` ...), Debian's multiarch one first."""
    if (DEFAULT_MODULE_PATH / "tm.so").is_file():
        return DEFAULT_MODULE_PATH
    for pattern in _MODULE_PATH_GLOBS:
        for candidate in sorted(Path("/").glob(pattern.lstrip("/"))):
            if (candidate / "tm.so").is_file():
                return candidate
    return DEFAULT_MODULE_PATH


def kamailio_binary() -> str | None:
    """The path of the ``kamailio`` executable, or None (Debian installs it in /usr/sbin)."""
    found = shutil.which("kamailio")
    if found is not None:
        return found
    for candidate in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def check_kamailio(module_path: Path | None = None) -> list[str]:
    """Problems that keep hotline from running Kamailio, each with the command that fixes it."""
    problems: list[str] = []
    if kamailio_binary() is None:
        problems.append(f"kamailio not installed: {_INSTALL_HINT}")
    path = module_path if module_path is not None else find_module_path()
    if not path.is_dir():
        problems.append(f"kamailio modules not found in {path}: {_INSTALL_HINT}")
    else:
        missing = [name for name in REQUIRED_MODULES if not (path / f"{name}.so").is_file()]
        if missing:
            problems.append(f"kamailio modules missing in {path} ({', '.join(missing)}): {_INSTALL_HINT}")
    return problems


@dataclass(frozen=True, kw_only=True)
class KamailioSettings:
    """Everything the generated kamailio.cfg depends on. Times in the unit their name says."""

    runtime_dir: Path
    """Holds kamailio.cfg, dispatcher.list, the pid file and the log."""
    workers: tuple[tuple[str, int], ...]
    """(host, UDP port) of each media worker: dispatcher set 1, in this order."""
    listen_host: str = "127.0.0.1"
    """IP address Kamailio listens on (UDP and TCP)."""
    listen_port: int = 5060
    aliases: tuple[str, ...] = ()
    """Other host names agents use to reach this proxy (uri == myself)."""
    ping_interval_s: int = 2
    """OPTIONS probing period of every worker."""
    fr_timer_ms: int = 2000
    """Wait for a first reply to any request (also bounds an OPTIONS probe)."""
    fr_inv_timer_ms: int = 60000
    """Wait for a final answer after a provisional one (an agent ringing)."""
    worker_timeout_ms: int = 1000
    """Wait for a worker's first reply to an INVITE before trying the next worker."""
    worker_answer_timeout_ms: int = 10000
    """Wait for a worker's final answer after its provisional one before trying the next."""
    children: int = 4
    """UDP and TCP routing processes each."""
    module_path: Path = field(default_factory=find_module_path)
    log_level: LogLevel = "info"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise KamailioConfigError("invalid Kamailio settings: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every problem of these settings at once (empty when they are usable)."""
        problems: list[str] = []
        try:
            ipaddress.ip_address(self.listen_host)
        except ValueError:
            problems.append(f"listen_host {self.listen_host!r} is not an IP address")
        if not 1 <= self.listen_port <= 65535:
            problems.append(f"listen_port {self.listen_port} is not a port")
        if not self.workers:
            problems.append("no workers: the dispatcher needs at least one")
        for host, port in self.workers:
            if not _is_host(host):
                problems.append(f"worker host {host!r} is neither an IP address nor a host name")
            if not 1 <= port <= 65535:
                problems.append(f"worker port {port} is not a port")
        if len(set(self.workers)) != len(self.workers):
            problems.append("the same worker is listed twice")
        for alias in self.aliases:
            if not _is_host(alias):
                problems.append(f"alias {alias!r} is neither an IP address nor a host name")
        positive = {
            "ping_interval_s": self.ping_interval_s,
            "fr_timer_ms": self.fr_timer_ms,
            "fr_inv_timer_ms": self.fr_inv_timer_ms,
            "worker_timeout_ms": self.worker_timeout_ms,
            "worker_answer_timeout_ms": self.worker_answer_timeout_ms,
            "children": self.children,
        }
        problems.extend(f"{name} must be positive, not {value}" for name, value in positive.items() if value < 1)
        if self.log_level not in _LOG_LEVELS:
            problems.append(f"log_level {self.log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
        if '"' in str(self.module_path) or '"' in str(self.runtime_dir):
            problems.append("module_path and runtime_dir must not contain double quotes")
        return problems

    @property
    def config_path(self) -> Path:
        return self.runtime_dir / "kamailio.cfg"

    @property
    def dispatcher_list_path(self) -> Path:
        return self.runtime_dir / "dispatcher.list"

    @property
    def pid_path(self) -> Path:
        return self.runtime_dir / "kamailio.pid"

    @property
    def log_path(self) -> Path:
        return self.runtime_dir / "kamailio.log"


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return bool(_HOSTNAME.match(value))
    return True


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _uri_host(host: str) -> str:
    """A host as written in a SIP URI or a listen directive (IPv6 in brackets)."""
    return f"[{host}]" if _is_ipv6(host) else host


def render_dispatcher_list(settings: KamailioSettings) -> str:
    """dispatcher.list: set 1 holds the workers (flags 0, priority by listed order)."""
    lines = ["# setid destination flags priority attributes (generated by hotline)"]
    count = len(settings.workers)
    for index, (host, port) in enumerate(settings.workers):
        lines.append(f"{WORKER_SET} sip:{_uri_host(host)}:{port} 0 {count - index} duid=worker{index + 1}")
    return "\n".join(lines) + "\n"


def render_config(settings: KamailioSettings) -> str:
    """The full kamailio.cfg for these settings, from the package template."""
    template = resources.files("hotline.sip").joinpath("kamailio.cfg.tmpl").read_text(encoding="utf-8")
    hosts = [settings.listen_host, *(host for host, _ in settings.workers)]
    values = {
        "LOG_LEVEL": str(_LOG_LEVELS[settings.log_level]),
        "CHILDREN": str(settings.children),
        "LISTEN_ADDRESS": _uri_host(settings.listen_host),
        "LISTEN_URI_HOST": _uri_host(settings.listen_host),
        "LISTEN_PORT": str(settings.listen_port),
        "ALIASES": "\n".join(f'alias="{alias}"' for alias in settings.aliases),
        "MODULE_PATH": str(settings.module_path),
        "DNS_TRY_IPV6": "yes" if any(_is_ipv6(host) for host in hosts) else "no",
        "DISPATCHER_LIST": str(settings.dispatcher_list_path),
        "WORKER_SET": str(WORKER_SET),
        "PING_INTERVAL_S": str(settings.ping_interval_s),
        "FR_TIMER_MS": str(settings.fr_timer_ms),
        "FR_INV_TIMER_MS": str(settings.fr_inv_timer_ms),
        "WORKER_TIMEOUT_MS": str(settings.worker_timeout_ms),
        "WORKER_ANSWER_TIMEOUT_MS": str(settings.worker_answer_timeout_ms),
    }
    unknown = sorted(set(_PLACEHOLDER.findall(template)) - values.keys())
    if unknown:
        raise KamailioConfigError(f"kamailio.cfg.tmpl uses unknown placeholders: {', '.join(unknown)}")
    rendered = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if "{{" in rendered:
        raise KamailioConfigError("kamailio.cfg.tmpl has a malformed placeholder (a stray '{{')")
    return rendered


def write_config(settings: KamailioSettings) -> Path:
    """Writes kamailio.cfg and dispatcher.list into the runtime directory; returns the cfg path."""
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    settings.dispatcher_list_path.write_text(render_dispatcher_list(settings), encoding="utf-8")
    settings.config_path.write_text(render_config(settings), encoding="utf-8")
    return settings.config_path


def _require_binary() -> str:
    binary = kamailio_binary()
    if binary is None:
        raise KamailioStartError(f"kamailio not installed: {_INSTALL_HINT}")
    return binary


def check_config(settings: KamailioSettings, timeout_s: float = 30.0) -> None:
    """Writes the configuration and runs ``kamailio -c`` on it; raises with Kamailio's own words."""
    binary = _require_binary()
    config = write_config(settings)
    args = [binary, "-c", "-f", str(config), "-L", str(settings.module_path), "-Y", str(settings.runtime_dir)]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KamailioConfigError(f"`kamailio -c -f {config}` did not finish in {timeout_s:.0f}s") from exc
    if result.returncode != 0:
        raise KamailioConfigError(
            f"kamailio rejected {config} (exit {result.returncode}):\n{_error_lines(result.stderr)}"
        )


def _error_lines(output: str, limit: int = 12) -> str:
    """Kamailio's first ERROR/CRITICAL lines (the cause comes first) and its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "CRITICAL" in line]
    if not errors:
        return "\n".join(lines[-limit:])
    if len(errors) > limit:
        errors = [*errors[: limit - 1], f"... ({len(errors) - limit} more)", errors[-1]]
    return "\n".join(errors)


def registration_probe(host: str, port: int, extension: str, timeout_s: float = 1.0) -> bool | None:
    """Whether `extension`'s softphone is registered at Kamailio (host:port, its registrar):
    an OPTIONS with X-Hotline-Probe, which the configuration answers from usrloc (route[PROBE],
    sent from this host). None: Kamailio did not answer."""
    if not extension or not all(ch.isalnum() or ch in "-_.+" for ch in extension):
        raise ValueError(f"not a plain SIP user: {extension!r}")
    status = options_ping(host, port, timeout_s, user=extension, headers=("X-Hotline-Probe: registration",))
    return None if status is None else status == 200


def options_ping(
    host: str, port: int, timeout_s: float = 1.0, user: str = "", headers: tuple[str, ...] = ()
) -> int | None:
    """Sends one SIP OPTIONS over UDP (to sip:[user@]host:port, with any extra header lines) and
    returns the status code of the reply, or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        local_port = sock.getsockname()[1]
        uri_host = _uri_host(host)
        branch = "z9hG4bK" + secrets.token_hex(8)
        call_id = secrets.token_hex(12) + "@hotline"
        target = f"{user}@{uri_host}:{port}" if user else f"{uri_host}:{port}"
        request = (
            f"OPTIONS sip:{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {uri_host}:{local_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:ping@{uri_host}:{local_port}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{target}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "User-Agent: hotline-ping\r\n" + "".join(f"{line}\r\n" for line in headers) + "Content-Length: 0\r\n\r\n"
        ).encode("ascii")
        deadline = time.monotonic() + timeout_s
        sock.sendto(request, (host, port))
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            if call_id.encode("ascii") not in data:
                continue
            status = re.match(rb"SIP/2\.0 (\d{3}) ", data)
            if status is not None and not status.group(1).startswith(b"1"):
                return int(status.group(1))
        return None


class KamailioProcess:
    """One Kamailio run in the foreground as a child process, its stderr in ``log_path``."""

    def __init__(self, settings: KamailioSettings) -> None:
        self.settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.settings.log_path

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """What Kamailio has logged so far (empty before the first start)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, ready_timeout_s: float = 15.0) -> None:
        """Writes and checks the configuration, starts Kamailio and waits until it answers OPTIONS."""
        if self.is_running():
            raise KamailioStartError("kamailio is already running")
        check_config(self.settings)
        settings = self.settings
        args = [
            _require_binary(),
            "-f", str(settings.config_path),
            "-L", str(settings.module_path),
            "-Y", str(settings.runtime_dir),
            "-P", str(settings.pid_path),
            "-DD",  # stay in the foreground (children are still forked)
            "-E",  # log to stderr: our log file
        ]  # fmt: skip
        self._log = settings.log_path.open("ab")
        logger.info("starting kamailio on %s:%s", settings.listen_host, settings.listen_port)
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=settings.runtime_dir,
            start_new_session=True,  # a terminal's Ctrl-C is for us; we stop kamailio ourselves
        )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._close()
                raise KamailioStartError(
                    f"kamailio exited with {code} at start-up; its log {settings.log_path}:\n"
                    f"{_error_lines(self.log_text())}"
                )
            if options_ping(settings.listen_host, settings.listen_port, timeout_s=0.2) == 200:
                logger.info("kamailio ready (pid %s)", self._proc.pid)
                return
        self.stop()
        raise KamailioStartError(
            f"kamailio did not answer OPTIONS on {settings.listen_host}:{settings.listen_port} within "
            f"{ready_timeout_s:.0f}s; its log {settings.log_path}:\n{_error_lines(self.log_text())}"
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; waits for the process group to end."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("kamailio ignored SIGTERM for %.0fs: killing it", timeout_s)
                proc.kill()
                proc.wait(timeout=timeout_s)
        # Children left behind by an abrupt end of the main process share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._close()

    def _close(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> KamailioProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
