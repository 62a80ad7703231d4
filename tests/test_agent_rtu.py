"""The agent on an RS-485 bus (socat pty pair, simulator with emulated wire time at 9600 baud)."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.mosquitto import Subscriber
from tests.test_agent_e2e import AgentProcess, readings_of


def test_two_rtu_devices_on_one_bus_are_polled_every_interval_despite_a_silent_one(
    tmp_path: Path, serial_bus_factory: Any, mosquitto: Any
) -> None:
    bus = serial_bus_factory(
        [{"unit": 1, "kind": "inverter", "peak_power_w": 5000, "strings": 2},
         {"unit": 2, "kind": "meter", "measures": [1]}],
        baudrate=9600,
    )
    rtu = {"type": "rtu", "port": str(bus.client_port), "baudrate": 9600, "timeout": 0.5, "pause": 0.02}
    config = {
        "site": {"slug": "ecole", "name": "École", "peak_power_w": 5000, "latitude": 50.457, "longitude": 2.793},
        "broker": {"host": "127.0.0.1", "port": mosquitto.port},
        "devices": [
            {"name": "onduleur", "kind": "inverter", "driver": "sunspec", "unit": 1, "interval": 2, "transport": rtu},
            {"name": "compteur", "kind": "meter", "driver": "sunspec", "unit": 2, "interval": 2, "transport": rtu},
            # configured but absent from the bus: every attempt costs one timeout
            {"name": "compteur-absent", "kind": "meter", "driver": "sunspec", "unit": 7, "interval": 2,
             "transport": rtu},
        ],
        "spool": {"path": str(tmp_path / "spool.db")},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    sub = Subscriber(mosquitto.port, "terril/ecole/readings")
    agent = AgentProcess(path, tmp_path / "agent.log").start()
    try:
        time.sleep(22)
    finally:
        agent.stop()
        sub.close()
    readings = readings_of(sub.snapshot(), site="ecole")
    for device in ("onduleur", "compteur"):
        ts = sorted({r.ts for r in readings if r.device == device and r.kind != "mppt"})
        gaps = [(b - a) / 1000 for a, b in itertools.pairwise(ts)]
        assert len(ts) >= 6, (device, ts, agent.log[-2000:])
        # every interval (2 s): the silent unit may cost one timeout (0.5 s), never a stall of the bus
        assert statistics.median(gaps) < 2.6, (device, gaps)
        assert max(gaps[2:]) < 2 * 2 + 0.5 + 1.0, (device, gaps)
    assert not [r for r in readings if r.device == "compteur-absent"]
    assert set(bus.function_codes(1)) <= {3, 4} and set(bus.function_codes(2)) <= {3, 4}
    log = agent.log
    assert log.count("compteur-absent: start -> unreachable") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_a_device_queued_on_the_bus_is_stamped_when_its_request_is_sent(serial_bus_factory: Any) -> None:
    """Two devices of one interval start together; the second waits for the first's exchange on the
    9600-baud bus. Its timestamp is when its request went out (the simulator's receive time), not the tick."""
    import asyncio
    import threading

    from agent.devices.sunspec import SunSpecDriver
    from agent.edge.poller import DevicePoller, Site
    from agent.modbus.pool import LinkPool

    bus = serial_bus_factory([{"unit": 1, "kind": "inverter", "peak_power_w": 5000, "strings": 2},
                              {"unit": 2, "kind": "meter", "measures": [1]}], baudrate=9600)
    received: dict[int, list[float]] = {1: [], 2: []}
    lock = threading.Lock()
    recorder = bus.server.recorder
    original = recorder.record

    def record(unit: int, function_code: int) -> None:  # the simulator's receive time, per unit
        with lock:
            received.setdefault(unit, []).append(time.time())
        original(unit, function_code)

    recorder.record = record  # type: ignore[method-assign]

    async def scenario() -> list[tuple[float, int, int, int]]:
        pool = LinkPool()
        bus_link = pool.rtu(bus.client_port, 9600, timeout=1.0, pause=0.02)
        site = Site(50.457, 2.793)
        inverter = DevicePoller(SunSpecDriver("onduleur", "inverter"), pool.unit(bus_link, 1), site, 10)
        meter = DevicePoller(SunSpecDriver("compteur", "meter"), pool.unit(bus_link, 2), site, 10)
        rounds = []
        try:
            await asyncio.gather(inverter.poll(), meter.poll())  # discovery
            for _ in range(3):
                with lock:
                    before, before_inverter = len(received[2]), len(received[1])
                tick = time.time()
                _, result = await asyncio.gather(inverter.poll(), meter.poll())
                assert result is not None and result.readings
                with lock:
                    first_receive = received[2][before]
                    inverter_requests = [t for t in received[1][before_inverter:] if t < first_receive]
                assert inverter_requests, "the inverter's exchange went first on the bus"
                rounds.append((tick, result.readings[0].ts, int(first_receive * 1000),
                               int(max(inverter_requests) * 1000)))
        finally:
            await pool.close()
        return rounds

    for tick, ts, receive_ms, inverter_last_request_ms in asyncio.run(scenario()):
        assert receive_ms - tick * 1000 > 100, "the meter did wait for the inverter's exchange"
        # Stamped once the bus was free (after the inverter's last request reached the simulator, so
        # not at the tick) and before its own request arrived: bounds no scheduling delay can break.
        assert inverter_last_request_ms <= ts <= receive_ms + 1, (tick, inverter_last_request_ms, ts, receive_ms)
