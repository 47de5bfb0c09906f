"""The composition root: `hotline serve | worker | control | doctor | agents | tickets | recordings`.

Only this module reads the configuration and wires adapters into the runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import getpass
import json
import logging
import os
import shutil
import signal
import socket
import sys
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotline import config as cfgmod
from hotline.config import Config
from hotline.core.errors import ConfigError, DomainError, InvalidRequest
from hotline.core.model import Agent, AgentId, WorkerId
from hotline.core.ports import Offer

logger = logging.getLogger("hotline")

PROMPTS = ("greeting", "hold_music")


def setup_logging(level: str, name: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


# ------------------------------------------------------------------ helpers
def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def prompt_library(config: Config) -> Any:
    """The prompts: the city's own recordings first, then the shipped ones (docs/prompts.md).

    `prompts_dir` is the default language's shipped folder (config/prompts/zh-CN), so its parent
    holds every language and its name is the default language.
    """
    from hotline.runtime.prompts import PromptLibrary

    shipped = Path(config.prompts_dir)
    override = Path(config.prompts_override_dir) if config.prompts_override_dir else config.data_path / "prompts"
    return PromptLibrary([override, shipped.parent], prompt_cache_dir(config), default_language=shipped.name)


def prompt_cache_dir(config: Config) -> Path:
    return config.data_path / "cache" / "prompts"


def load_prompts(config: Config, library: Any = None) -> dict[str, Any]:
    from hotline.runtime.worker import Prompt

    library = library or prompt_library(config)
    problems = library.validate(PROMPTS)
    if problems:
        raise ConfigError("\n".join(problems))
    return {name: Prompt(str(library.path(name)), library.seconds(name)) for name in PROMPTS}


async def knowledge_audio(config: Config, library: Any) -> Any:
    """Audio for every knowledge-base answer (rendered now where its text changed); None if the base is unusable."""
    from hotline.runtime.kb_audio import prepare_kb_audio

    try:
        return await asyncio.to_thread(
            prepare_kb_audio, Path(config.knowledge_dir), library, Path(config.prompts_dir), prompt_cache_dir(config)
        )
    except ConfigError as exc:
        logger.error("knowledge-base answers have no audio: %s", exc.message)
        return None


def ivr_flow(config: Config, library: Any = None) -> Any:
    """The IVR flow callers go through (`ivr.flow`), after checking every file in `ivr.dir`;
    ConfigError lists every problem as file:line. Its prompts are checked against the library."""
    from hotline.ivr.loader import select_flow

    library = library or prompt_library(config)
    spec = select_flow(Path(config.ivr.dir), config.ivr.flow, library.names())
    from hotline.ivr.spec import QueueNode

    queues = {q.name: q for q in config.queue_configs}
    nodes = dict(spec.nodes)
    for node_name, node in spec.nodes.items():
        if not isinstance(node, QueueNode):
            continue
        if node.queue and node.queue not in queues:
            raise ConfigError(
                f"ivr flow {config.ivr.flow}: node {node_name!r} names queue {node.queue!r}; queues: {list(queues)}"
            )
        # A queue's own announcement interval (queues[].announce_interval_s) overrides the node's.
        interval = queues[node.queue or config.queue_configs[0].name].announce_interval_s
        if interval:
            nodes[node_name] = dataclasses.replace(node, announce_interval_s=interval)
    spec = dataclasses.replace(spec, nodes=nodes)
    for warning in spec.warnings:
        logger.warning("ivr: %s", warning)
    return spec


def ticket_status_lookup(config: Config, spec: Any) -> tuple[Any, Any]:
    """(lookup, store) for a flow with a ticket-status node, else (None, None): the store's
    synchronous query, run in a thread."""
    from hotline.ivr.spec import LookupNode

    if not any(isinstance(node, LookupNode) for node in spec.nodes.values()):
        return None, None
    store = open_store(config)

    async def lookup(number: str) -> str | None:
        status = await asyncio.to_thread(store.ticket_status, number)
        return None if status is None else str(getattr(status, "value", status))

    return lookup, store


def redis_client(config: Config) -> Any:
    import redis.asyncio

    if not config.redis_url:
        raise ConfigError("no Redis configured: set redis_url (hotline serve starts its own)")
    return redis.asyncio.Redis.from_url(config.redis_url, socket_connect_timeout=2, socket_timeout=5)


async def run_until_signalled(coro: Any) -> None:
    """Runs a service's main coroutine until it ends or SIGTERM/SIGINT cancels it."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(coro)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_queue(config: Config, client: Any) -> Any:
    """The queue adapter with every queue's policy: every process of a deployment must use the same."""
    from hotline.queue.acd import RedisCallQueue

    policies = queue_policies(config)
    first, *others = policies.items()
    return RedisCallQueue(client, config.redis_prefix, first[0], policy=first[1], queues=dict(others))


def queue_policy(config: Config) -> Any:
    """The first queue's AcdPolicy (after checking every queue's); ConfigError naming what is wrong."""
    return next(iter(queue_policies(config).values()))


def queue_policies(config: Config) -> dict[str, Any]:
    """Each queue's AcdPolicy, by name, the first first; ConfigError naming what is wrong. The
    first queue's pause_on_agent_failure holds for all (the agents are shared)."""
    from hotline.core.errors import InvalidRequest
    from hotline.queue.acd import AcdPolicy
    from hotline.queue.agent_state import AgentPolicy
    from hotline.queue.routing import DEFAULT_STEPS, Strategy

    policies: dict[str, Any] = {}
    problems: list[str] = []
    pause = config.queue_configs[0].pause_on_agent_failure
    for n, q in enumerate(config.queue_configs):
        where = f"queues[{n}] ({q.name})" if config.queues else "queue"
        steps = DEFAULT_STEPS
        try:
            if q.skill_steps.strip():
                try:
                    steps = tuple(
                        (float(after), int(level))
                        for after, level in (step.split(":") for step in q.skill_steps.split(",") if step.strip())
                    )
                except ValueError:
                    raise ValueError(f"skill_steps: expected 'after_s:min_level, ...', got {q.skill_steps!r}") from None
            policies[q.name] = AcdPolicy(
                agent=AgentPolicy(wrap_up_ms=int(q.wrap_up_s * 1000), pause_on_agent_failure=pause),
                strategy=Strategy(q.strategy),
                required_skills=q.skills,
                skill_steps=steps,
                service_level_s=q.service_level_s,
                max_length=q.max_length or None,
                max_wait_s=q.max_wait_s or None,
                overflow_target=q.overflow_target,
                announce_interval_s=q.announce_interval_s or None,
            )
            if q.overflow_target == "voicemail" and not 5 <= q.voicemail_max_s <= 600:
                raise ValueError(f"voicemail_max_s must be 5..600 s, got {q.voicemail_max_s!r}")
            if q.overflow_target and not (q.max_wait_s or q.max_length):
                raise ValueError("overflow_target needs max_wait_s or max_length")
        except (ValueError, InvalidRequest) as exc:  # an unknown strategy, a bad skill or step
            problems.append(f"{where}: {exc}")
    if problems:
        raise ConfigError("; ".join(problems))
    return policies


def open_store(config: Config) -> Any:
    from hotline.tickets.store import SqlTicketStore

    return SqlTicketStore(config.tickets_db_url)


def ticket_settings(config: Config, store: Any) -> Any:
    """The API's 工单 settings (api_tickets.TicketSettings). Gives the store every city policy (a
    ticket keeps the policy it was created under); tickets.policy must name one of them. With ""
    and several policies, wrap-ups are refused until it is set (warned here)."""
    from hotline.agent_desktop.api_tickets import TicketSettings
    from hotline.tickets.policy import load_policies

    t = config.tickets
    try:
        policies = load_policies(Path(config.policies_dir))
    except ConfigError:
        if t.policy:
            raise
        logger.warning("no ticket policies in %s: the API cannot make 工单", config.policies_dir)
        policies = {}
    for policy in policies.values():
        store.add_policy(policy)
    name = t.policy or (next(iter(policies)) if len(policies) == 1 else None)
    if t.policy and name not in policies:
        raise ConfigError(f"tickets.policy: no policy {t.policy!r} in {config.policies_dir}; known: {sorted(policies)}")
    if name is None and policies:
        logger.warning("tickets.policy is not set and there are several policies (%s): wrap-ups are refused",
                       ", ".join(sorted(policies)))  # fmt: skip
    return TicketSettings(name, t.repeat_window_days, t.duplicate_window_days, t.history_days)


def agent_uri_for(config: Config) -> Any:
    def agent_uri(offer: Offer) -> str:
        if offer.agent_uri:
            return offer.agent_uri
        if config.kamailio.enabled:
            host = config.sip.public_host or config.sip.host
            return f"sip:{offer.agent_extension}@{host}:{config.sip.port}"
        raise InvalidRequest(f"agent {offer.agent_id} has no SIP URI (needed without Kamailio)")

    return agent_uri


def device_probe_for(config: Config) -> Any:
    """The agents' device probe: Kamailio's registrar, asked over SIP (route[PROBE]) in a thread;
    None without Kamailio (agents dialled directly: their device state stays unknown)."""
    if not config.kamailio.enabled:
        return None
    from hotline.sip.kamailio import registration_probe

    host = config.sip.host if config.sip.host not in ("0.0.0.0", "::", "") else "127.0.0.1"

    async def probe(extension: str) -> bool | None:
        return await asyncio.to_thread(registration_probe, host, config.sip.port, extension)

    return probe


# ------------------------------------------------------------------ worker
async def run_worker(config: Config, index: int) -> None:
    from hotline.queue.bus import RedisEventBus
    from hotline.recordings.space import SpaceGuard
    from hotline.runtime.callback import CallbackConfig
    from hotline.runtime.survey import SurveyConfig as SurveyCallConfig
    from hotline.runtime.worker import Worker, WorkerSettings
    from hotline.sip.endpoint import SipEndpoint
    from hotline.sip.events import SipSettings

    sys.setswitchinterval(0.0005)  # the media clock must get the GIL quickly (PJSUA2.md)
    worker_id = WorkerId(f"w{index}")
    client = redis_client(config)
    queue = make_queue(config, client)
    bus = RedisEventBus(client, config.redis_prefix)
    log_dir = config.data_path / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    library = prompt_library(config)
    flow = ivr_flow(config, library)
    ticket_status, ticket_store = ticket_status_lookup(config, flow)
    settings = WorkerSettings(
        worker_id=worker_id,
        sip_host=config.sip.public_host or config.sip.host,
        recordings_dir=config.recordings_path,
        recording_format=config.recordings.format,
        recording_space=SpaceGuard(config.recordings.min_free_mb),
        spool_dir=config.data_path / "spool",
        prompts=load_prompts(config, library),
        ring_timeout_s=config.queue_configs[0].ring_timeout_s,
        prompt_library=library,
        kb_audio=await knowledge_audio(config, library),
        ivr_flow=flow,
        callback=CallbackConfig(
            dial_template=config.callback_dial_template,
            ring_timeout_s=config.queue_configs[0].ring_timeout_s,
            caller_ring_timeout_s=config.callback.caller_ring_timeout_s,
            retry_s=config.callback.retry_s,
            max_attempts=config.callback.max_attempts,
        ),
        survey=SurveyCallConfig(
            dial_template=config.survey.dial_template or config.callback_dial_template,
            ring_timeout_s=config.survey.ring_timeout_s,
            answer_timeout_s=config.survey.answer_timeout_s,
            retries=config.survey.retries,
        ),
    )
    worker = Worker(settings, queue, bus, ticket_status=ticket_status)
    loop = asyncio.get_running_loop()
    rtp_first, rtp_count = config.rtp_ports(index)
    sip_settings = SipSettings(
        host=config.sip.host,
        port=config.worker_port(index),
        public_host=config.sip.public_host or None,
        max_calls=config.sip.max_calls_per_worker,
        log_file=str(log_dir / f"pjsip-{worker_id}.log"),
        log_level=config.sip.log_level,
        allow_dev_build=config.sip.allow_dev_build,
    )
    sip_settings = dataclasses.replace(sip_settings, rtp_port=rtp_first, rtp_port_range=rtp_count)
    sip = SipEndpoint(sip_settings, loop, worker.on_sip_event)
    await asyncio.to_thread(sip.start)
    worker.attach(sip)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    logger.info("worker %s ready on %s:%d", worker_id, sip_settings.host, sip_settings.port)
    try:
        await worker.run()
        await worker.shutdown_calls()
    finally:
        await asyncio.to_thread(sip.stop)
        await client.aclose()
        if ticket_store is not None:
            ticket_store.close()


# ------------------------------------------------------------------ control
async def run_control(config: Config) -> None:
    from aiohttp import web

    from hotline.agent_desktop.api_calls import LIVE_CALLS
    from hotline.agent_desktop.api_tickets import LIVE_CALLS as TICKET_LIVE_CALLS
    from hotline.agent_desktop.api_tickets import TICKET_SETTINGS
    from hotline.agent_desktop.app import make_app
    from hotline.agent_desktop.auth import Auth, principal_from_json, principal_json
    from hotline.agent_desktop.live import LiveHub
    from hotline.agent_desktop.wallboard import WallboardSettings
    from hotline.core import events as ev
    from hotline.queue.asr_latency import RedisAsrLatency
    from hotline.queue.bus import RedisEventBus
    from hotline.queue.leader import RedisLease
    from hotline.queue.sessions import RedisSessions
    from hotline.runtime.control import Control, ControlSettings
    from hotline.runtime.ticket_jobs import TicketJobs, TicketJobSettings, parse_hours
    from hotline.tickets.webhooks import WebhookDelivery

    client = redis_client(config)
    queue = make_queue(config, client)
    bus = RedisEventBus(client, config.redis_prefix)
    store = open_store(config)
    control = Control(
        ControlSettings(
            consumer=f"control-{socket.gethostname()}-{os.getpid()}",
            ring_timeout_s=config.queue_configs[0].ring_timeout_s,
            callback_ring_timeout_s=config.callback.caller_ring_timeout_s,
            overflow_targets={q.name: q.overflow_target for q in config.queue_configs},
            voicemail_max_s={q.name: q.voicemail_max_s for q in config.queue_configs},
            queue_log=config.data_path / "log" / "queue_log",
            queue_name=config.queue_configs[0].name,
        ),
        queue,
        bus,
        store,
        agent_uri_for(config),
        lease=RedisLease(client, "dispatcher", config.redis_prefix),
        recordings=store,
        webhooks=WebhookDelivery(
            store,
            f"control-{socket.gethostname()}-{os.getpid()}",
            on_alert=lambda alert: bus.publish(ev.ALERT, alert),
        ),
        jobs=TicketJobs(
            TicketJobSettings(
                clock_interval_s=config.survey.clock_interval_s,
                survey_hours=parse_hours(config.survey.hours),
                survey_retry_s=config.survey.retry_s,
                survey_max_attempts=config.survey.max_attempts,
                survey_lease_s=config.survey.ring_timeout_s + 240.0,
                surveys=config.survey.enabled,
            ),
            store,
            bus,
        ),
        device_probe=device_probe_for(config),
    )
    auth = None
    if config.api.auth:
        auth = Auth(
            store,
            RedisSessions(
                client, principal_json, principal_from_json, prefix=config.redis_prefix
            ),  # shared by every control process
            session_ttl_s=config.api.session_ttl_s,
            failures_per_minute=config.api.login_failures_per_minute,
        )
    else:
        logger.warning("api.auth is off: every API request acts as an admin")
    wallboard = WallboardSettings(
        queue_name=config.queue_configs[0].name,
        service_level_s=config.queue_configs[0].service_level_s,
        queues=tuple((q.name, q.service_level_s) for q in config.queue_configs),
        alert_depth=config.wallboard.alert_depth,
        alert_wait_s=config.wallboard.alert_wait_s,
    )
    asr = RedisAsrLatency(client, config.redis_prefix)  # written by the speech service
    app = make_app(queue, store, auth=auth, live=LiveHub(bus), wallboard=wallboard, workers=bus, asr=asr)
    app[LIVE_CALLS] = bus  # the recording pause route sends its command to the call's worker
    app[TICKET_SETTINGS] = ticket_settings(config, store)
    app[TICKET_LIVE_CALLS] = bus  # a live call's caller, for its wrap-up and screen pop
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, config.http.host, config.http.port)
    await site.start()
    logger.info("control ready: API on http://%s:%d/api/v1", config.http.host, config.http.port)
    try:
        await run_until_signalled(control.run())
    finally:
        await runner.cleanup()
        await client.aclose()
        store.close()


# ------------------------------------------------------------------ speech
def speech_engine_spec(config: Config) -> Any:
    """The recognition pool's engine for `asr.engine`, its model checked here (not in the pool)."""
    from hotline.asr.models import vosk_korean_model_dir, whisper_model_dir
    from hotline.asr.pool import VoskSpec, WhisperSpec

    if config.asr.engine == "whisper":
        return WhisperSpec(whisper_model_dir())
    from hotline.asr.models import DEFAULT_MODELS_DIR

    chinese = DEFAULT_MODELS_DIR / "vosk-model-cn-0.22"
    if (chinese / "am" / "final.mdl").is_file():
        return VoskSpec(chinese, language="zh")
    return VoskSpec(vosk_korean_model_dir(), language="ko")


async def run_speech(config: Config) -> None:
    from hotline.asr.intake import Intake, load_lexicon
    from hotline.asr.knowledge import KnowledgeBase
    from hotline.asr.pool import RecognitionPool
    from hotline.queue.asr_latency import RedisAsrLatency
    from hotline.queue.bus import RedisEventBus
    from hotline.runtime.speech import SpeechService, SpeechSettings

    spec = speech_engine_spec(config)
    intake = Intake(load_lexicon(config.intake_lexicon))
    knowledge = KnowledgeBase.load(config.knowledge_dir)
    await asyncio.to_thread(Intake.warm_up)

    def new_pool() -> Any:
        return RecognitionPool([spec], processes=config.asr.processes)

    client = redis_client(config)
    store = open_store(config)
    service = SpeechService(
        SpeechSettings(
            consumer=f"speech-{socket.gethostname()}",  # the same after a restart: it re-reads its pending entries
            engine=spec.name,
            emergency_priority=config.asr.emergency_priority,
            scratch_dir=config.data_path / "tmp",
        ),
        new_pool,
        intake,
        knowledge,
        RedisEventBus(client, config.redis_prefix),
        make_queue(config, client),
        store,
        RedisAsrLatency(client, config.redis_prefix),
    )
    await asyncio.to_thread(service.pool.start, 300)  # models loaded before the first call
    logger.info("speech ready: %s in %d process(es)", spec.name, config.asr.processes)
    try:
        await run_until_signalled(service.run())
    finally:
        await client.aclose()
        store.close()


# ------------------------------------------------------------------ serve
def redis_ping_unix(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def sip_answers(host: str, port: int) -> bool:
    """The SIP endpoint at host:port answers an OPTIONS (any final response)."""
    from hotline.sip.kamailio import options_ping

    return options_ping(host, port, timeout_s=0.3) is not None


def http_ready(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def serve(config: Config, config_file: str | None) -> int:
    from hotline.runtime.supervisor import Child, Supervisor
    from hotline.sip.endpoint import PYPI_CALL_LIMIT, compiled_call_limit
    from hotline.sip.kamailio import KamailioProcess, KamailioSettings

    problems = doctor_problems(config)
    if problems:
        for problem in problems:
            print(f"hotline serve: {problem}", file=sys.stderr)
        return 2
    slots = compiled_call_limit()
    if slots <= PYPI_CALL_LIMIT and not config.sip.allow_dev_build:
        print(
            f"hotline serve: this pjsua2 holds only {slots} calls per process. Run `make pjsua2`, "
            "or set sip.allow_dev_build: true for a development run.",
            file=sys.stderr,
        )
        return 2
    data = config.data_path
    (data / "log").mkdir(parents=True, exist_ok=True)
    sup = Supervisor()
    env: dict[str, str] = {}
    if config_file:
        env["HOTLINE_CONFIG"] = str(Path(config_file).resolve())
    if not config.redis_url:
        redis_dir = data / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        sock = redis_dir / "redis.sock"
        binary = shutil.which("redis-server") or "redis-server"
        sup.add(
            Child(
                "redis",
                [
                    binary,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(sock),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(redis_dir),
                    "--appendonly",
                    "yes",
                    "--save",
                    "60 1",
                ],
                log_path=data / "log" / "redis.log",
                ready=lambda: redis_ping_unix(sock),
            )
        )
        env["HOTLINE_REDIS_URL"] = f"unix://{sock}"
    python = sys.executable
    kamailio: KamailioProcess | None = None
    if config.kamailio.enabled:
        workers = tuple((config.sip.host, config.worker_port(i)) for i in range(config.worker_count))
        kamailio = KamailioProcess(
            KamailioSettings(
                runtime_dir=data / "kamailio",
                workers=workers,
                listen_host=config.sip.host,
                listen_port=config.sip.port,
                ping_interval_s=config.kamailio.ping_interval_s,
            )
        )
    for i in range(config.worker_count):
        port = config.worker_port(i)
        sup.add(
            Child(
                f"worker-{i}",
                [python, "-m", "hotline", "worker", "--index", str(i)],
                env=env,
                log_path=data / "log" / f"worker-{i}.log",
                # Started = answering SIP. Kamailio starts after the workers: its first OPTIONS
                # probe to a worker not yet listening would mark it down until the next round.
                ready=functools.partial(sip_answers, config.sip.host, port),
                ready_timeout_s=60,
            )
        )
    sup.add(
        Child(
            "control",
            [python, "-m", "hotline", "control"],
            env=env,
            log_path=data / "log" / "control.log",
            ready=lambda: http_ready(config.http.host, config.http.port),
        )
    )
    if config.asr.enabled:
        sup.add(Child("speech", [python, "-m", "hotline", "speech"], env=env, log_path=data / "log" / "speech.log"))
    try:
        sup.start_all()
        if kamailio is not None:
            (data / "kamailio").mkdir(parents=True, exist_ok=True)
            kamailio.start()
    except Exception as exc:
        print(f"hotline serve: {exc}", file=sys.stderr)
        sup.stop_all()
        if kamailio is not None:
            kamailio.stop()
        return 1
    where = f"{config.sip.host}:{config.sip.port}"
    print(
        f"hotline: SIP on {where} ({'Kamailio, ' if kamailio else 'dev mode, '}{config.worker_count} worker(s)), "
        f"API on http://{config.http.host}:{config.http.port}/api/v1, data in {data}",
        flush=True,
    )
    try:
        sup.run()
    finally:
        if kamailio is not None:
            kamailio.stop()
    return 0


# ------------------------------------------------------------------ doctor
def doctor_problems(config: Config) -> list[str]:
    problems: list[str] = []
    for binary, package in (("redis-server", "redis-server"), ("sox", "sox")):
        if shutil.which(binary) is None:
            problems.append(f"{binary} not installed: apt-get install {package}")
    if config.kamailio.enabled:
        from hotline.sip.kamailio import check_kamailio

        problems += check_kamailio()
    try:
        from hotline.sip.endpoint import compiled_call_limit

        compiled_call_limit()
    except ImportError:
        problems.append("pjsua2 not importable: run `make pjsua2` (builds it from Debian's ring source)")
    try:
        load_prompts(config)
    except ConfigError as exc:
        problems.append(exc.message)
    try:
        ivr_flow(config)
    except ConfigError as exc:
        problems.append(f"ivr: {exc.message}")
    try:
        queue_policy(config)
    except ConfigError as exc:
        problems.append(exc.message)
    return problems


def doctor(config: Config) -> int:
    from hotline.sip.endpoint import PYPI_CALL_LIMIT

    print(f"python: {sys.version.split()[0]}")
    try:
        from hotline.sip.endpoint import compiled_call_limit

        slots = compiled_call_limit()
        kind = "development build (PyPI limit)" if slots <= PYPI_CALL_LIMIT else "production build"
        print(f"pjsua2: {slots} calls per process ({kind})")
    except ImportError:
        print("pjsua2: missing")
    for binary in ("redis-server", "kamailio", "sipp", "baresip", "sox"):
        print(f"{binary}: {shutil.which(binary) or 'missing'}")
    print(f"workers: {config.worker_count} x {config.sip.max_calls_per_worker} calls")
    print(f"data: {config.data_path}")
    problems = doctor_problems(config)
    for binary, package in (("sipp", "sip-tester"), ("baresip", "baresip")):
        if shutil.which(binary) is None:
            problems.append(f"{binary} not installed (needed by the tests): apt-get install {package}")
    if problems:
        print("problems:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("ok")
    return 0


# ------------------------------------------------------------------ agents, tickets
def agents_cmd(config: Config, args: argparse.Namespace) -> int:
    store = open_store(config)
    try:
        if args.agents_cmd == "add":
            skills: dict[str, int] = {}
            for item in args.skill:
                name, _, level = item.rpartition(":")
                if not name or not level.isdigit():
                    print(f"hotline agents add: --skill wants NAME:LEVEL (e.g. 投诉:3), got {item!r}", file=sys.stderr)
                    return 2
                skills[name] = int(level)
            agent = Agent(
                AgentId(args.agent_id),
                args.name or args.agent_id,
                args.extension or args.agent_id,
                args.sip_uri,
                skills=skills,
            )
            store.add_agent(agent)
            print(json.dumps(agent.to_dict(), ensure_ascii=False))
        else:
            agents = store.list_agents()
            if args.json:
                print(json.dumps([a.to_dict() for a in agents], ensure_ascii=False, indent=2))
            else:
                for a in agents:
                    print(f"{a.agent_id}\t{a.name}\t{a.extension}\t{a.sip_uri or ''}")
        return 0
    finally:
        store.close()


def read_password(args: argparse.Namespace) -> str:
    """The new account's password: from the variable named by --password-env, else typed twice at
    a terminal, else the first line of standard input. Never from the command line (ps shows it)."""
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise InvalidRequest(f"--password-env: the variable {args.password_env} is not set")
        return password
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise InvalidRequest("the two passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def units_cmd(config: Config, args: argparse.Namespace) -> int:
    """The units registry: `units add NAME [--title T] [--webhook URL --secret-env VAR]`, `units list`."""
    store = open_store(config)
    try:
        if args.units_cmd == "add":
            secret = None
            if args.secret_env:
                secret = os.environ.get(args.secret_env)
                if secret is None:
                    raise InvalidRequest(f"--secret-env: the variable {args.secret_env} is not set")
            unit = store.add_unit(args.name, args.title, args.webhook, secret)
            print(json.dumps(unit.to_dict(), ensure_ascii=False))
        else:
            for u in store.list_units():
                print(f"{u.name}\t{u.title}\t{u.webhook_url or '-'}\t{'enabled' if u.enabled else 'disabled'}")
        return 0
    finally:
        store.close()


def accounts_cmd(config: Config, args: argparse.Namespace) -> int:
    store = open_store(config)
    try:
        if args.accounts_cmd == "add":
            agent_id = AgentId(args.agent) if args.agent else None
            account = store.add_account(args.username, read_password(args), args.role, agent_id, args.unit)
            print(json.dumps(account.to_dict(), ensure_ascii=False))
        elif args.accounts_cmd in ("disable", "enable"):
            account = store.set_account_disabled(args.username, args.accounts_cmd == "disable")
            print(json.dumps(account.to_dict(), ensure_ascii=False))
        else:
            for a in store.list_accounts():
                state = "disabled" if a.disabled else "enabled"
                print(f"{a.username}\t{a.role}\t{a.agent_id or a.unit or ''}\t{state}")
        return 0
    finally:
        store.close()


def deadline_cmd(config: Config, args: argparse.Namespace) -> int:
    from hotline.tickets.deadline import deadline_report, parse_local
    from hotline.tickets.policy import load_policies
    from hotline.tickets.workdays import WorkCalendar

    policies = load_policies(Path(config.policies_dir))
    if args.policy not in policies:
        raise InvalidRequest(f"no policy {args.policy!r}; known: {', '.join(sorted(policies))}")
    report = deadline_report(
        policies[args.policy],
        WorkCalendar(),
        args.kind,
        args.stage,
        parse_local(args.start),
        provincial=args.provincial,
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(report["text"])
        print(f"deadline:     {report['deadline']}")
        print(f"yellow light: {report['yellow_light'] or '-'}")
        print(f"red light:    {report['red_light'] or '-'}")
    return 0


def asr_cmd(config: Config, args: argparse.Namespace) -> int:
    from hotline.asr.cli import fetch_cli, transcribe_cli

    if args.asr_cmd == "transcribe":
        try:
            print(transcribe_cli(args.file, args.engine, verbose=args.verbose))
        except OSError as exc:
            print(f"hotline asr transcribe: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(
                f"hotline asr transcribe: {exc}\n(16-bit PCM WAV wanted; convert with: "
                f"sox {args.file} -e signed -b 16 -c 1 out.wav)",
                file=sys.stderr,
            )
            return 1
    else:
        print(fetch_cli(args.name, sha256=args.sha256, url=args.url))
    return 0


def intake_cmd(config: Config, args: argparse.Namespace) -> int:
    from hotline.asr.intake_cli import intake_json

    print(json.dumps(intake_json(args.text, config.intake_lexicon, config.knowledge_dir), ensure_ascii=False, indent=2))
    return 0


def ticket_create_cmd(config: Config, args: argparse.Namespace) -> int:
    from hotline.core.model import CallId, utcnow
    from hotline.tickets.model import Kind
    from hotline.tickets.policy import load_policies
    from hotline.tickets.records import NewTicket, TicketActor

    policies = load_policies(Path(config.policies_dir))
    name = args.policy or (next(iter(policies)) if len(policies) == 1 else None)
    if name is None or name not in policies:
        what = "give --policy" if name is None else f"no policy {name!r}"
        raise InvalidRequest(f"{what}; known: {', '.join(sorted(policies))}")
    new = NewTicket(
        caller=args.caller,
        kind=Kind.parse(args.kind),
        content=args.content,
        caller_name=args.caller_name,
        channel=args.channel,
        transcript=args.transcript,
        place=args.place,
        emergency=args.emergency,
        provincial=args.provincial,
        lead_unit=args.lead_unit,
        assisting_units=tuple(args.assist),
        call_id=CallId(args.call_id) if args.call_id else None,
        answer=args.answer,
    )
    store = open_store(config)
    try:
        stored = store.create_ticket(new, TicketActor(args.by), utcnow(), policies[name])
    finally:
        store.close()
    if args.json:
        print(json.dumps({"number": stored.number, "status": stored.status.value}, ensure_ascii=False))
    else:
        print(stored.number)
    return 0


def ticket_show_cmd(config: Config, args: argparse.Namespace) -> int:
    from hotline.core.errors import NotFound
    from hotline.tickets.show import render_ticket, ticket_view

    store = open_store(config)
    try:
        stored = store.get_ticket(args.number)
        if stored is None:
            raise NotFound(f"no ticket {args.number}")
        calls = store.ticket_calls(stored.number)
        records = {c.call_id: r for c in calls if (r := store.get_call(c.call_id)) is not None}
        intake = next((c for c in calls if c.role == "intake"), None)
        draft = store.get_call_draft(intake.call_id) if intake is not None else None
        view = ticket_view(
            stored, calls, records, draft, store.linked_tickets(stored.number), store.timeline(stored.number)
        )
    finally:
        store.close()
    print(json.dumps(view, ensure_ascii=False, indent=2) if args.json else render_ticket(view))
    return 0


def ticket_stats_cmd(config: Config, args: argparse.Namespace) -> int:
    """stats (per unit), hot (topics), export (CSV): hotline/tickets/unit_stats.py."""
    from hotline.core.model import utcnow
    from hotline.tickets import unit_stats

    now = utcnow()
    today = unit_stats.local_day(now)
    given = getattr(args, "since", None), getattr(args, "until", None)  # hot has no period
    since = unit_stats.parse_date(given[0], "--since") if given[0] else today.replace(day=1)
    until = unit_stats.parse_date(given[1], "--until") if given[1] else today
    store = open_store(config)
    try:
        if args.tickets_cmd == "hot":
            hot = store.hot_topics(now, args.days)
            text = json.dumps(hot.to_dict(), ensure_ascii=False, indent=2) if args.json else None
            print(text or unit_stats.render_hot_topics(hot))
        elif args.tickets_cmd == "export":
            Path(args.csv).write_bytes(store.tickets_csv(since, until, for_units=args.for_units).body)
            print(f"{args.csv}: {since}..{until}, {'units' if args.for_units else 'hotline (callers masked)'}")
        else:
            report = store.unit_report(since, until, now)
            if args.csv:
                sys.stdout.buffer.write(unit_stats.units_csv(report))
            elif args.json:
                print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
            else:
                print(unit_stats.render_units_table(report))
        return 0
    finally:
        store.close()


def tickets_cmd(config: Config, args: argparse.Namespace) -> int:
    if args.tickets_cmd in ("stats", "hot", "export"):
        return ticket_stats_cmd(config, args)
    if args.tickets_cmd == "deadline":
        return deadline_cmd(config, args)
    if args.tickets_cmd == "create":
        return ticket_create_cmd(config, args)
    if args.tickets_cmd == "show":
        return ticket_show_cmd(config, args)
    from hotline.tickets.export import call_record_json, render_calls_table

    store = open_store(config)
    try:
        records = store.list_calls(limit=args.limit)
        if args.json:
            # Each call with the speech service's draft of it (transcript, kind, place, ...) or null.
            rows = [{**call_record_json(r), "draft": store.get_call_draft(r.call_id)} for r in records]
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            print(render_calls_table(records))
        return 0
    finally:
        store.close()


# ------------------------------------------------------------------ recordings
def retention_by_kind(config: Config) -> dict[str, int]:
    """recordings.retention_by_kind with each kind as the store keeps it (投诉 -> complaint)."""
    from hotline.tickets.model import Kind

    try:
        return {Kind.parse(name).value: days for name, days in config.recordings.retention_by_kind.items()}
    except InvalidRequest as exc:
        raise ConfigError(f"recordings.retention_by_kind: {exc.message}") from exc


def system_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry (containers)
        return f"uid-{os.getuid()}"


def recordings_cmd(config: Config, args: argparse.Namespace) -> int:
    """`purge [--dry-run]`: deletes the expired recordings not on legal hold (each logged);
    `hold | release TARGET --why`: a legal hold on a call's recording or a ticket's."""
    from hotline.core.model import CallId, utcnow
    from hotline.recordings.retention import purge

    by_kind = retention_by_kind(config)
    store = open_store(config)
    try:
        if args.recordings_cmd in ("hold", "release"):
            hold = args.recordings_cmd == "hold"
            calls = store.set_legal_hold(args.target, args.by or system_user(), args.why, hold=hold)
            print(json.dumps({"target": args.target, "legal_hold": hold, "recordings": calls}, ensure_ascii=False))
            return 0
        now = utcnow()
        expired = store.recordings_expired(now, config.recordings.retention_days, by_kind)
        report = purge(expired, now, dry_run=args.dry_run)
        if not args.dry_run:
            for item in report.purged:
                store.mark_purged(CallId(item.call_id), now)
    finally:
        store.close()
    if args.json:
        summary = {
            "dry_run": report.dry_run,
            "purged": [item.to_dict() for item in report.purged],
            "failed": [{"call_id": call_id, "error": why} for call_id, why in report.failed],
            "bytes_freed": report.bytes_freed,
        }
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        for item in report.purged:
            state = "missing" if item.missing else ("would delete" if report.dry_run else "deleted")
            print(f"{item.call_id}\t{state}\t{item.age_days:.1f}d\t{item.bytes}\t{item.path}")
        verb = "would free" if report.dry_run else "freed"
        print(f"{len(report.purged)} recordings, {verb} {report.bytes_freed} bytes, {len(report.failed)} failed")
    return 1 if report.failed else 0


# ------------------------------------------------------------------ main
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline", description="12345 government service hotline backend")
    p.add_argument("--config", help="configuration file (default: config/hotline.yaml or $HOTLINE_CONFIG)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="run everything: Redis, Kamailio, workers, control plane")
    w = sub.add_parser("worker", help="run one media worker")
    w.add_argument("--index", type=int, default=0)
    sub.add_parser("control", help="run the control plane (dispatcher, tickets, API)")
    sub.add_parser("speech", help="run the speech service (live transcripts -> ticket drafts)")
    sub.add_parser("doctor", help="check this machine and print what is missing")
    a = sub.add_parser("agents", help="the agent registry")
    asub = a.add_subparsers(dest="agents_cmd", required=True)
    add = asub.add_parser("add")
    add.add_argument("agent_id")
    add.add_argument("--name", default="")
    add.add_argument("--extension", default="", help="SIP user the softphone registers as (default: the id)")
    add.add_argument("--sip-uri", default=None, help="URI to dial in dev mode without Kamailio")
    add.add_argument("--skill", action="append", default=[], help="NAME:LEVEL, repeatable (language:en:2, 投诉:3); 0-9")
    ls = asub.add_parser("list")
    ls.add_argument("--json", action="store_true")
    ac = sub.add_parser("accounts", help="who may sign in to the agent desktop API")
    acsub = ac.add_subparsers(dest="accounts_cmd", required=True)
    aca = acsub.add_parser("add", help="password from --password-env VAR, a terminal, or stdin's first line")
    aca.add_argument("username")
    aca.add_argument("--role", required=True, choices=("agent", "supervisor", "admin", "unit"))
    aca.add_argument("--agent", default=None, help="the agent id the account belongs to (required for agents)")
    aca.add_argument("--unit", default=None, help="the unit (承办单位) a unit account acts for (required for units)")
    aca.add_argument("--password-env", default=None, metavar="VAR", help="read the password from this variable")
    acsub.add_parser("list")
    un = sub.add_parser("units", help="the units (承办单位) tickets are dispatched to, and their webhooks")
    unsub = un.add_subparsers(dest="units_cmd", required=True)
    una = unsub.add_parser("add", help="the HMAC secret from --secret-env VAR, never the command line")
    una.add_argument("name", help="the unit's name, as tickets carry it (e.g. 区住建局)")
    una.add_argument("--title", default="", help="full name (default: the name)")
    una.add_argument("--webhook", default=None, metavar="URL", help="POST the unit's notices here (docs/units.md)")
    una.add_argument("--secret-env", default=None, metavar="VAR", help="the webhook's signing secret (16+ chars)")
    unsub.add_parser("list")
    for verb in ("disable", "enable"):
        acsub.add_parser(verb).add_argument("username")
    t = sub.add_parser("tickets", help="call records and tickets")
    tsub = t.add_subparsers(dest="tickets_cmd", required=True)
    tl = tsub.add_parser("list")
    tl.add_argument("--json", action="store_true")
    tl.add_argument("--limit", type=int, default=100)
    tc = tsub.add_parser("create", help="create a 工单 (prints its number)")
    tc.add_argument("--caller", required=True, help="the caller's number")
    tc.add_argument("--kind", required=True, help="咨询/求助/投诉/举报/意见建议/表扬 (or consultation, help, ...)")
    tc.add_argument("--content", required=True, help="the matter (诉求内容)")
    tc.add_argument("--policy", default=None, help="city policy (config/policy/<name>.yaml); needed if several")
    tc.add_argument("--caller-name", default=None)
    tc.add_argument("--channel", default="phone")
    tc.add_argument("--transcript", default="")
    tc.add_argument("--place", default="")
    tc.add_argument("--emergency", action="store_true")
    tc.add_argument("--provincial", action="store_true", help="a provincial ticket (省级工单)")
    tc.add_argument("--lead-unit", default=None, help="dispatch at once to this unit")
    tc.add_argument("--assist", action="append", default=[], help="an assisting unit (repeatable)")
    tc.add_argument("--call-id", default=None, help="the intake call to link")
    tc.add_argument("--answer", default=None, help="answered at once: closed without dispatch")
    tc.add_argument("--by", default="cli", help="who creates it (recorded on the timeline)")
    tc.add_argument("--json", action="store_true")
    tw = tsub.add_parser("show", help="one 工单: fields, calls, intake transcript, timeline")
    tw.add_argument("number")
    tw.add_argument("--json", action="store_true")
    td = tsub.add_parser("deadline", help="deadline and yellow/red light times under a city's policy")
    td.add_argument("--policy", required=True, help="policy name (config/policy/<name>.yaml)")
    td.add_argument("--kind", required=True, help="咨询/求助/投诉/举报/意见建议/表扬 (or consultation, help, ...)")
    td.add_argument(
        "--stage", required=True, help="dispatch, handle, return, extension, redo, emergency-... (or 转办 ...)"
    )
    td.add_argument("--start", required=True, help='"2025-09-30 10:00" (Asia/Shanghai) or ISO time with offset')
    td.add_argument("--provincial", action="store_true", help="a provincial ticket (省级工单)")
    td.add_argument("--json", action="store_true")
    period_help = ("first day, Asia/Shanghai (default: the 1st of this month)", "last day, included (default: today)")
    ts = tsub.add_parser("stats", help="per unit: 按时办结率, 满意率, overdue, 催办, 督办 over a period")
    tx = tsub.add_parser("export", help="the tickets created in a period as CSV (UTF-8 with BOM)")
    for parser in (ts, tx):
        parser.add_argument("--since", default=None, help=period_help[0])
        parser.add_argument("--until", default=None, help=period_help[1])
    ts.add_argument("--csv", action="store_true", help="CSV on standard output (UTF-8 with BOM)")
    ts.add_argument("--json", action="store_true")
    tx.add_argument("--csv", required=True, metavar="FILE", help="where to write it")
    tx.add_argument("--for-units", action="store_true", help="the units' file: no caller number at all")
    th = tsub.add_parser("hot", help="hot topics: kinds, places, areas this week (or the last N days)")
    th.add_argument("--days", type=int, default=None, help="the last N days including today (default: this week)")
    th.add_argument("--json", action="store_true")
    asr = sub.add_parser("asr", help="offline speech recognition")
    asub = asr.add_subparsers(dest="asr_cmd", required=True)
    tr = asub.add_parser("transcribe", help="print the transcript of a WAV file")
    tr.add_argument("file")
    tr.add_argument("--engine", choices=("whisper", "vosk"), default="whisper")
    tr.add_argument("--verbose", action="store_true", help="segments, timings and real-time factor")
    fe = asub.add_parser("fetch", help="download a Vosk model, checksummed (e.g. vosk-model-cn-0.22)")
    fe.add_argument("name")
    fe.add_argument("--sha256", required=True, help="expected sha256 of the zip (published with the model)")
    fe.add_argument("--url", default=None, help="default: the Vosk models site")
    rec = sub.add_parser("recordings", help="call recordings: retention purge, legal holds")
    rsub = rec.add_subparsers(dest="recordings_cmd", required=True)
    rp = rsub.add_parser("purge", help="delete recordings past their retention (recordings.*) and not on hold")
    rp.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    rp.add_argument("--json", action="store_true")
    for verb, text in (("hold", "put a legal hold on"), ("release", "release the legal hold of")):
        rh = rsub.add_parser(verb, help=f"{text} a call's recording, or every recording of a ticket")
        rh.add_argument("target", metavar="CALL_ID|TICKET")
        rh.add_argument("--why", required=True, help="the reason (logged with who and when)")
        rh.add_argument("--by", default=None, help="who asks (default: the system user)")
    i = sub.add_parser("intake", help="transcript -> ticket draft (kind, place, urgency, ...) as JSON")
    i.add_argument("text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = cfgmod.load(args.config)
    except ConfigError as exc:
        print(f"hotline: configuration: {exc.message}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, args.cmd if args.cmd != "worker" else f"worker-{args.index}")
    try:
        if args.cmd == "serve":
            return serve(config, args.config)
        if args.cmd == "worker":
            asyncio.run(run_worker(config, args.index))
            return 0
        if args.cmd == "speech":
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(run_speech(config))
            return 0
        if args.cmd == "control":
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(run_control(config))
            return 0
        if args.cmd == "doctor":
            return doctor(config)
        if args.cmd == "agents":
            return agents_cmd(config, args)
        if args.cmd == "units":
            return units_cmd(config, args)
        if args.cmd == "accounts":
            return accounts_cmd(config, args)
        if args.cmd == "tickets":
            return tickets_cmd(config, args)
        if args.cmd == "recordings":
            return recordings_cmd(config, args)
        if args.cmd == "intake":
            return intake_cmd(config, args)
        if args.cmd == "asr":
            return asr_cmd(config, args)
    except DomainError as exc:
        print(f"hotline {args.cmd}: {exc.message}", file=sys.stderr)
        return 1
    return 2
