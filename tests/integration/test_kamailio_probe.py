"""Kamailio answers the control plane's device probe from its registrar (route[PROBE]): 200 for an
agent whose softphone is registered, 404 for one that is not; never forwarded to the phone. The
control plane's device_step records it per agent in the queue (real Redis). A real Kamailio and a
sipp softphone, as in test_kamailio.py (whose fixtures these are)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio

from hotline.core.model import Agent, AgentId, CallId, WorkerId
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.runtime.control import Control, ControlSettings
from hotline.runtime.legs import epoch_ms
from hotline.sip.kamailio import KamailioProcess, registration_probe
from hotline.tickets.store import SqlTicketStore
from tests.integration.test_kamailio import HOST, Sipp, sip_ports, sipp, sipp_binary, start_kamailio

__all__ = ["sipp", "sipp_binary", "start_kamailio"]  # the fixtures, used by name


def test_the_probe_tells_registered_from_unregistered(
    start_kamailio: Callable[..., KamailioProcess], sipp: Sipp
) -> None:
    kamailio = start_kamailio(sip_ports(1))
    port = kamailio.settings.listen_port
    (phone,) = sip_ports(1)
    assert registration_probe(HOST, port, "1001") is False
    sipp.call("uac_register.xml", port, "1001", "register", keys={"contact_port": str(phone)})
    assert registration_probe(HOST, port, "1001") is True
    assert registration_probe(HOST, port, "1002") is False
    (dead,) = sip_ports(1)
    assert registration_probe(HOST, dead, "1001", timeout_s=0.3) is None  # no Kamailio there
    with pytest.raises(ValueError):
        registration_probe(HOST, port, "1001@evil")


async def test_the_control_plane_records_each_agents_softphone(
    start_kamailio: Callable[..., KamailioProcess], sipp: Sipp, client: redis.asyncio.Redis, tmp_path: Path
) -> None:
    kamailio = start_kamailio(sip_ports(1))
    port = kamailio.settings.listen_port
    (phone,) = sip_ports(1)
    sipp.call("uac_register.xml", port, "1001", "register", keys={"contact_port": str(phone)})

    async def probe(extension: str) -> bool | None:
        return await asyncio.to_thread(registration_probe, HOST, port, extension)

    queue, bus = RedisCallQueue(client), RedisEventBus(client)
    store = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    try:
        ctl = Control(ControlSettings(), queue, bus, store, lambda offer: "", device_probe=probe)
        now = epoch_ms()
        for n in (1, 2, 3):
            await queue.agent_login(Agent(AgentId(f"a{n}"), f"坐席{n}", f"100{n}"), now)
        await queue.agent_logout(AgentId("a3"), now)  # logged out: not probed
        assert await ctl.device_step() is False
        assert {s.agent_id: s.device for s in await queue.agents()} == {
            "a1": "registered",
            "a2": "unreachable",
            "a3": "",
        }
        await queue.enqueue(CallId("c1"), WorkerId("w1"), "138", now)
        offer = await queue.dispatch_once(epoch_ms(), 30_000)
        assert offer is not None and offer.agent_id == "a1"
        kamailio.stop()  # no answer about anyone: nothing concluded, nothing changed
        assert await ctl.device_step() is False
        assert {s.agent_id: s.device for s in await queue.agents()}["a1"] == "registered"
    finally:
        store.close()
