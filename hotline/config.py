"""Typed settings, loaded once by the composition root (hotline.cli).

Sources, later ones win: the embedded defaults below, `config/hotline.yaml` (or the file named
by HOTLINE_CONFIG), then HOTLINE_* environment variables, where a double underscore goes one
level down: HOTLINE_SIP__PORT=5080, HOTLINE_REDIS_URL=redis://... . Every problem is reported
at once; secrets never appear in repr.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from hotline.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SipConfig:
    host: str = "127.0.0.1"  # where SIP listens (Kamailio, or the dev-mode worker)
    port: int = 5060
    public_host: str = ""  # address written into SIP/SDP when it differs from host
    workers: int = 0  # media worker processes; 0 = one per core
    worker_base_port: int = 5071  # worker i listens on worker_base_port + i
    max_calls_per_worker: int = 200  # admission limit: above it a worker answers 503
    # RTP: worker i uses its own ports from rtp_base_port + i * rtp_ports_per_worker. Disjoint
    # ranges keep a surviving worker from reusing a dead worker's ports, at which the dead
    # calls' far ends may still be sending (their media would leak into new calls).
    rtp_base_port: int = 20000
    rtp_ports_per_worker: int = 0  # 0 = 4 per admitted call (RTP + RTCP, with room to skip busy ports)
    allow_dev_build: bool = False  # accept a pjsua2 with fewer call slots (PyPI: 4)
    log_level: int = 3


@dataclasses.dataclass(frozen=True)
class KamailioConfig:
    enabled: bool = True  # False: embedded dev mode, one worker on sip.port
    ping_interval_s: int = 2


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    auth: bool = True  # false: no sign-in, every request acts as admin (tests, a closed lab only)
    session_ttl_s: float = 12 * 3600.0  # a session token lasts one shift
    login_failures_per_minute: int = 5  # per username and address; more are refused (429)


@dataclasses.dataclass(frozen=True)
class QueueConfig:
    name: str = "default"
    ring_timeout_s: float = 20.0
    wrap_up_s: float = 0.0  # after each call the agent is in wrap-up this long (0: none)
    pause_on_agent_failure: bool = True  # an agent whose phone fails an offer is paused ("no-answer", ...)
    # Which eligible agent gets a call: longest_idle, round_robin, fewest_calls, least_talk_time,
    # skills_weighted, ring_all (hotline/queue/routing.py).
    strategy: str = "longest_idle"
    skills: tuple[str, ...] = ()  # every call of the queue needs these skills
    # How the skill level a call accepts widens as it waits: "after_s:min_level, ..." (0: anyone).
    skill_steps: str = ""
    service_level_s: float = 15.0  # answered within this counts as in service level (GB/T 33358)
    max_length: int = 0  # calls the queue holds at most (0: no limit); beyond it a caller is not queued
    max_wait_s: float = 0.0  # a caller who waited this long goes to overflow_target (0: never)
    # Where a caller goes after max_wait_s, or at once when the queue is full (max_length):
    # "queue:<name>" (another queue, keeping his arrival time), "callback" (told he will be
    # called back at his place, and hung up), "voicemail" (leaves a message: a call record and a
    # ticket draft); "" = nowhere (a full queue refuses him: he waits on hold, unqueued).
    overflow_target: str = ""
    announce_interval_s: float = 0.0  # position announcements of this queue's callers (0: the flow's)
    voicemail_max_s: float = 120.0  # overflow_target voicemail: the longest message


@dataclasses.dataclass(frozen=True)
class CallbackConfig:
    # Where a worker dials a caller back; {number} is the caller's number. "" = through the
    # public SIP port (Kamailio, which routes it like any call from a worker), e.g. a trunk:
    # "sip:{number}@10.0.0.5:5060".
    dial_template: str = ""
    caller_ring_timeout_s: float = 30.0  # the caller's phone rings this long per attempt
    retry_s: float = 120.0  # a failed attempt is retried after this (the place is kept)
    max_attempts: int = 3


@dataclasses.dataclass(frozen=True)
class SurveyConfig:
    """回访: the satisfaction call after a unit's reply (hotline/runtime/ticket_jobs.py)."""

    enabled: bool = True  # the control plane's leader calls replied tickets' callers
    dial_template: str = ""  # "" = as callbacks are dialled (callback.dial_template)
    # When callers may be phoned, Asia/Shanghai local time; due surveys wait for the next window.
    hours: tuple[str, ...] = ("09:00-12:00", "14:00-20:00")
    ring_timeout_s: float = 30.0
    answer_timeout_s: float = 8.0  # silence after a question before it is asked again
    retries: int = 2  # a question asked again at most this often (wrong key, silence)
    retry_s: float = 7200.0  # a caller not reached is tried again after this
    max_attempts: int = 3
    clock_interval_s: float = 30.0  # how often due tickets get their lights, 催办 and 督办


@dataclasses.dataclass(frozen=True)
class IvrConfig:
    flow: str = "default"  # the flow callers go through: <dir>/<flow>.yaml
    dir: str = "config/ivr"  # every flow file here is checked at start-up


@dataclasses.dataclass(frozen=True)
class AsrConfig:
    enabled: bool = True  # `hotline serve` runs the speech service (`hotline speech`)
    engine: str = "whisper"  # whisper (Mandarin) or vosk
    processes: int = 1  # recognition processes; each follows one live call at a time
    emergency_priority: bool = True  # an emergency heard in the caller's words raises the call's priority


@dataclasses.dataclass(frozen=True)
class RecordingsConfig:
    retention_days: int = 180  # a call recording is deleted this many days after the call
    # Longer (or shorter) for some kinds of request, by kind id or Chinese name: {投诉: 365}.
    # A recording linked to several kinds is kept for the longest; a legal hold keeps it for ever.
    retention_by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    format: str = "wav"  # wav, or flac: converted at call end, checked, the WAV removed (docs/benchmarks.md)
    # Below this much free space on the recordings volume a call is answered and served but not
    # recorded (an alert says why); checked before answering and every few seconds while recording.
    min_free_mb: int = 500


@dataclasses.dataclass(frozen=True)
class TicketsConfig:
    """工单 from the agent desktop (hotline/agent_desktop/api_tickets.py, hotline/tickets/repeats.py)."""

    # The city policy of new tickets (<policies_dir>/<name>.yaml). The shipped sample is Zibo's; a
    # city sets its own ("" = the only policy in policies_dir).
    policy: str = "zibo"
    repeat_window_days: int = 30  # the same caller again within this: a possible repeat
    duplicate_window_days: int = 7  # the same place and kind from anyone within this: a possible duplicate
    history_days: int = 365  # the caller's history on the screen pop, and closed matters raised again (不再受理)


@dataclasses.dataclass(frozen=True)
class WallboardConfig:
    alert_depth: int = 10  # alert while this many callers wait (0: never)
    alert_wait_s: float = 60.0  # alert while a caller has waited this long (0: never)


@dataclasses.dataclass(frozen=True)
class Config:
    data_dir: str = "var"
    redis_url: str = dataclasses.field(default="", repr=False)  # "" = start an embedded redis-server
    redis_prefix: str = "hotline"
    tickets_url: str = dataclasses.field(default="", repr=False)  # "" = sqlite under data_dir
    prompts_dir: str = "config/prompts/zh-CN"  # the default language's shipped prompts (its parent: all languages)
    prompts_override_dir: str = ""  # a city's own recordings, <language>/<name>.wav; "" = <data_dir>/prompts
    policies_dir: str = "config/policy"  # per-city ticket policies (<name>.yaml)
    intake_lexicon: str = "config/intake/zh-CN.yaml"
    knowledge_dir: str = "config/knowledge"
    log_level: str = "INFO"
    sip: SipConfig = dataclasses.field(default_factory=SipConfig)
    kamailio: KamailioConfig = dataclasses.field(default_factory=KamailioConfig)
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    api: ApiConfig = dataclasses.field(default_factory=ApiConfig)
    queue: QueueConfig = dataclasses.field(default_factory=QueueConfig)
    # Several queues served by the same agents (each a `queue:` section with its name); the
    # first is the deployment's ACD (its keys are the single queue's) and holds what they share:
    # ring_timeout_s, pause_on_agent_failure. Empty: the one queue of `queue:`.
    queues: tuple[QueueConfig, ...] = ()
    callback: CallbackConfig = dataclasses.field(default_factory=CallbackConfig)
    survey: SurveyConfig = dataclasses.field(default_factory=SurveyConfig)
    asr: AsrConfig = dataclasses.field(default_factory=AsrConfig)
    ivr: IvrConfig = dataclasses.field(default_factory=IvrConfig)
    wallboard: WallboardConfig = dataclasses.field(default_factory=WallboardConfig)
    recordings: RecordingsConfig = dataclasses.field(default_factory=RecordingsConfig)
    tickets: TicketsConfig = dataclasses.field(default_factory=TicketsConfig)

    @property
    def queue_configs(self) -> tuple[QueueConfig, ...]:
        """Every queue, the first being the ACD's: `queues:`, or the one `queue:`."""
        return self.queues or (self.queue,)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def tickets_db_url(self) -> str:
        return self.tickets_url or f"sqlite:///{self.data_path / 'hotline.db'}"

    @property
    def recordings_path(self) -> Path:
        return self.data_path / "recordings"

    @property
    def worker_count(self) -> int:
        if not self.kamailio.enabled:
            return 1
        return self.sip.workers or (os.cpu_count() or 1)

    def rtp_ports(self, index: int) -> tuple[int, int]:
        """(first port, how many) of worker `index`'s RTP range."""
        span = self.sip.rtp_ports_per_worker or 4 * self.sip.max_calls_per_worker + 64
        return self.sip.rtp_base_port + index * span, span

    @property
    def callback_dial_template(self) -> str:
        return self.callback.dial_template or f"sip:{{number}}@{self.sip.public_host or self.sip.host}:{self.sip.port}"

    def worker_port(self, index: int) -> int:
        """SIP port of worker `index` (dev mode: the public port)."""
        if not self.kamailio.enabled:
            return self.sip.port
        return self.sip.worker_base_port + index


def _convert(value: Any, hint: Any, where: str, errors: list[str]) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {type(value).__name__}")
            return hint()
        return _build(hint, value, where, errors)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        errors.append(f"{where}: expected true/false, got {value!r}")
        return False
    if hint in (int, float):
        try:
            return hint(value)
        except (TypeError, ValueError):
            errors.append(f"{where}: expected a number, got {value!r}")
            return hint()
    if typing.get_origin(hint) is dict:
        # A mapping of text to numbers in YAML, or "key:n,key:n" (from an environment variable).
        if isinstance(value, str):
            pairs = [item.rpartition(":")[::2] for item in value.split(",") if item.strip()]
            value = {k.strip(): v.strip() for k, v in pairs}
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {value!r}")
            return {}
        _, item_hint = typing.get_args(hint)
        return {str(k): _convert(v, item_hint, f"{where}.{k}", errors) for k, v in value.items()}
    if typing.get_origin(hint) is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]):
        if not isinstance(value, list | tuple):
            errors.append(f"{where}: expected a list of mappings, got {value!r}")
            return ()
        item_hint = typing.get_args(hint)[0]
        return tuple(_convert(item, item_hint, f"{where}[{n}]", errors) for n, item in enumerate(value))
    if typing.get_origin(hint) is tuple:
        # A list in YAML, or comma-separated text (from an environment variable).
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or any(isinstance(i, dict | list) for i in items):
            errors.append(f"{where}: expected a list of text, got {value!r}")
            return ()
        return tuple(str(i).strip() for i in items if str(i).strip())
    if hint is str:
        if isinstance(value, dict | list):
            errors.append(f"{where}: expected text, got {type(value).__name__}")
            return ""
        return "" if value is None else str(value)
    return value


def _build(cls: type[Any], data: dict[str, Any], where: str, errors: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            errors.append(f"{where}{'.' if where else ''}{key}: unknown setting")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            path = f"{where}{'.' if where else ''}{f.name}"
            kwargs[f.name] = _convert(data[f.name], hints[f.name], path, errors)
    return cls(**kwargs)


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith("HOTLINE_") or key == "HOTLINE_CONFIG":
            continue
        parts = key[len("HOTLINE_") :].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(path: str | None = None, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Loads and validates the configuration; raises ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    errors: list[str] = []
    file = path or env.get("HOTLINE_CONFIG") or "config/hotline.yaml"
    data: dict[str, Any] = {}
    if Path(file).exists():
        try:
            loaded = yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping")
        data = loaded
    elif path is not None:
        raise ConfigError(f"{file}: no such file")
    data = _merge(data, _env_overrides(env))
    config = _build(Config, data, "", errors)
    if config.sip.max_calls_per_worker < 1:
        errors.append("sip.max_calls_per_worker: must be at least 1")
    if not 0 < config.sip.port < 65536:
        errors.append("sip.port: must be a port number")
    if config.asr.engine not in ("whisper", "vosk"):
        errors.append("asr.engine: one of whisper, vosk")
    if config.asr.processes < 1:
        errors.append("asr.processes: must be at least 1")
    retentions = {"": config.recordings.retention_days, **config.recordings.retention_by_kind}
    for kind, days in retentions.items():
        if days < 1:
            errors.append(f"recordings.retention{'_by_kind.' + kind if kind else '_days'}: at least 1 day")
    if config.recordings.format not in ("wav", "flac"):
        errors.append("recordings.format: one of wav, flac")
    if config.recordings.min_free_mb < 0:
        errors.append("recordings.min_free_mb: must not be negative (0: never stop recording)")
    t = config.tickets
    if min(t.repeat_window_days, t.duplicate_window_days, t.history_days) < 1:
        errors.append("tickets.repeat_window_days, duplicate_window_days, history_days: at least 1 day")
    sv = config.survey
    try:
        from hotline.runtime.ticket_jobs import parse_hours

        parse_hours(sv.hours)
    except ValueError as exc:
        errors.append(str(exc))
    if sv.retries < 0 or sv.max_attempts < 1 or min(sv.ring_timeout_s, sv.answer_timeout_s, sv.retry_s) <= 0:
        errors.append("survey: retries >= 0, max_attempts >= 1, and positive ring, answer and retry times")
    if config.wallboard.alert_depth < 0 or config.wallboard.alert_wait_s < 0:
        errors.append("wallboard.alert_depth, wallboard.alert_wait_s: must not be negative (0: no alert)")
    errors += _queue_errors(config)
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        errors.append("log_level: one of DEBUG, INFO, WARNING, ERROR")
    if errors:
        raise ConfigError(f"{file}: " + "; ".join(errors))
    return typing.cast(Config, config)


def _queue_errors(config: Config) -> list[str]:
    """Names unique, overflow targets that exist; the rest is checked where the policies are
    built (cli.queue_policies)."""
    errors: list[str] = []
    if config.queues and config.queue != QueueConfig():
        errors.append("queue, queues: set one of them (queues: lists every queue)")
    names = [q.name for q in config.queue_configs]
    for n, q in enumerate(config.queue_configs):
        where = f"queues[{n}]" if config.queues else "queue"
        if not q.name or any(ch in "{}" or ch.isspace() for ch in q.name):
            errors.append(f"{where}.name: a name without spaces or braces, got {q.name!r}")
        elif names.count(q.name) > 1:
            errors.append(f"{where}.name: {q.name!r} is used by another queue")
        target = q.overflow_target
        if target.startswith("queue:") and (target[6:] == q.name or target[6:] not in names):
            errors.append(f"{where}.overflow_target: {target!r} names no other queue; queues: {names}")
        elif target not in ("", "callback", "voicemail") and not target.startswith("queue:"):
            errors.append(f'{where}.overflow_target: "", "callback", "voicemail" or "queue:<name>", got {target!r}')
    return errors


__all__ = ["Config", "ConfigError", "load"]
