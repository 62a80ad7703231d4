"""The identity guard: a profile never decodes a device it does not describe.

One pymodbus server holds a device of every shipped family, each at its own unit
id, its registers laid out from its own document (the profile's image, plus the
identification registers the family answers). Every profile is pointed at every
other family through the real agent path (LinkPool, DevicePoller): the device is
refused before anything is decoded, with one log line naming what was found, the
profile configured and the profile that fits; the poller publishes nothing and
reports ``wrong_device`` in health; nothing raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import pytest
import yaml

from agent.devices import identify
from agent.devices.profile import encode_value, load_profile
from agent.devices.profile_driver import ProfileDriver
from agent.edge.poller import MAX_BACKOFF_S, DevicePoller, Site
from agent.errors import DeviceBusy, IllegalAddress, ModbusExceptionResponse, TransportError, WrongDevice
from agent.modbus.backoff import Backoff
from agent.modbus.pool import LinkPool
from tests.test_modbus_support import Traffic
from tests.test_profile_images import Image, expected_values, identify_as, profile_image
from tests.test_profile_server import _fill, _serve
from tests.test_tools import _run

# unit id -> (family, the profile that describes it, what its identification register holds)
FAMILIES: dict[int, tuple[str, str, int | float | str | None]] = {
    11: ("Huawei SUN2000-10KTL-M1", "huawei_sun2000", "SUN2000-10KTL-M1"),
    12: ("Sungrow SG10RT", "sungrow_sg", 0x2433),
    13: ("Sungrow SH8.0RT-20", "sungrow_sh", 0x0E12),
    14: ("Eastron SDM630 (3P4W)", "sdm630", 3.0),
    15: ("Eastron SDM120", "sdm120", None),  # no System Type register
}


READ_THROUGH: dict[str, list[tuple[str, int, int]]] = {
    "huawei_sun2000": [("holding", 32064, 32089)],
    "sungrow_sg": [("input", 5004, 5038)],
    "sungrow_sh": [("input", 5008, 5036), ("input", 13000, 13046)],
    "sdm630": [("input", 0x0000, 0x004B)],
    "sdm120": [("input", 0x0000, 0x004B)],
}
"""Documented registers each family answers although its profile does not use them."""


def family_image(profile_name: str, code: int | float | str | None) -> Image:
    """A device of that family: every register of its document's map, its identity, its serial."""
    profile = load_profile(profile_name)
    running = [code for code, v in profile.state.values.items() if v.st == "MPPT"] if profile.state else [None]
    image = profile_image(profile, expected_values(profile), state_code=running[0])
    for table, first, last in READ_THROUGH[profile_name]:
        _fill(image, profile, table, first, last)  # type: ignore[arg-type]
    if code is not None:
        identify_as(image, profile, code)
    if profile_name.startswith("sungrow"):  # SN (4990..4999) and nominal power (5001) as the protocols give them
        for offset, word in enumerate(encode_value("str", "A2231234567", length=10)):
            image[("input", 4989 + offset)] = word
        image[("input", 5000)] = 80
    return image


def _pairs() -> list[tuple[str, int]]:
    return [(name, unit) for name in sorted({f[1] for f in FAMILIES.values()})
            for unit, (_, own, _) in FAMILIES.items() if own != name]


def test_every_profile_refuses_every_other_family_and_accepts_its_own(caplog: pytest.LogCaptureFixture) -> None:
    images = {unit: family_image(name, code) for unit, (_, name, code) in FAMILIES.items()}

    async def scenario() -> dict[tuple[str, int], DevicePoller]:
        traffic = Traffic()
        server, port = await _serve({}, traffic, images)
        pool = LinkPool(backoff=lambda: Backoff(initial=0.1, maximum=0.4, jitter=0.0))
        pollers: dict[tuple[str, int], DevicePoller] = {}
        try:
            link = pool.tcp("127.0.0.1", port)
            for unit, (_, own, _) in FAMILIES.items():  # each family is accepted by its own profile
                profile = load_profile(own)
                poller = DevicePoller(ProfileDriver(f"own-{unit}", profile.kind, profile),
                                      pool.unit(link, unit),
                                      Site(50.45, 2.79), 10.0, clock=lambda: 1_750_000_000.0)
                result = await poller.poll()
                assert result is not None and result.readings, (own, poller.stats.last_error)
                assert poller.stats.status != "wrong_device"
            for name, unit in _pairs():
                profile = load_profile(name)
                poller = DevicePoller(ProfileDriver(f"{name.replace('_', '-')}-on-{unit}", profile.kind, profile),
                                      pool.unit(link, unit), Site(50.45, 2.79), 10.0, clock=lambda: 1_750_000_000.0)
                pollers[(name, unit)] = poller
                assert await poller.poll() is None  # nothing decoded, nothing to spool or publish
                before = poller.reader.requests
                assert await poller.poll() is None  # backed off: no second look before MAX_BACKOFF_S
                assert poller.reader.requests == before
        finally:
            await pool.close()
            await server.shutdown()
        assert traffic.function_codes() <= {3, 4}
        return pollers

    with caplog.at_level(logging.INFO, logger="agent"):
        pollers = asyncio.run(scenario())
    for (name, unit), poller in pollers.items():
        family, own, _ = FAMILIES[unit]
        stats = poller.stats.to_dict()
        assert stats["status"] == "wrong_device", (name, family, stats)
        assert stats["poll_errors"] == 1
        lines = [r for r in caplog.records if r.getMessage().startswith(f"{poller.name}: ")]
        changes = [r for r in lines if "wrong_device" in r.getMessage()]
        assert len(changes) == 1, [r.getMessage() for r in lines]  # one line, however often it is retried
        message = changes[0].getMessage()
        assert changes[0].levelno == logging.WARNING and f"profile {name!r}" in message
        assert all(r.exc_info is None for r in lines)  # no traceback
        if own in identify.fitting_profiles(load_profile(name), FAMILIES[unit][2]):
            assert f"set driver: {own}" in message, message


def test_sungrow_sg_refuses_an_sh_hybrid_and_names_the_profile_that_fits() -> None:
    sg, sh = load_profile("sungrow_sg"), load_profile("sungrow_sh")
    verdict = identify.judge(sg, 0x0E12, {**sh.identify.values} if sh.identify else None)
    assert not verdict.accepted
    message = identify.refusal_message(sg, verdict, 0x0E12)
    assert message == ("Device type code 0x0E12 (SH8.0RT-20): not a device of profile 'sungrow_sg' (Sungrow); "
                       "profile 'sungrow_sh' fits it: set driver: sungrow_sh")
    assert identify.judge(sh, 0x0E12).model == "SH8.0RT-20"
    # and the other way round: an SG string inverter is not an SH hybrid
    sg_names = sg.identify.values if sg.identify else {}
    refused = identify.judge(sh, 0x2432, sg_names)
    assert not refused.accepted
    message = identify.refusal_message(sh, refused, 0x2432)
    assert message.endswith("profile 'sungrow_sg' fits it: set driver: sungrow_sg"), message
    # a code no shipped profile knows is refused too, and says so
    unknown = identify.judge(sg, 0x7777)
    assert "no shipped profile lists it" in identify.refusal_message(sg, unknown, 0x7777)
    # the two Sungrow lists never overlap: one code, one profile
    assert not set(sg_names) & set(sh.identify.values if sh.identify else {})


@pytest.mark.parametrize(("name", "value", "accepted", "model"), [
    ("huawei_sun2000", "SUN2000-5KTL-L1", True, "SUN2000-5KTL-L1"),
    ("huawei_sun2000", "SG10RT", False, None),
    ("huawei_sun2000", None, False, None),
    ("sdm630", 3.0, True, "SDM630 (3P4W)"),
    ("sdm630", 1.0, True, "SDM630 (1P2W)"),
    ("sdm630", None, False, None),
    ("sdm630", 2.5, False, None),
    ("sdm120", None, True, None),
    ("sdm120", 1.0, True, None),
    ("sdm120", 3.0, False, None),
    ("sungrow_sg", 0x2433, True, "SG10RT"),
    ("sungrow_sh", 0x0D0F, True, "SH5.0RS"),
    ("sungrow_sh", None, False, None),
])
def test_guard_table(name: str, value: int | float | str | None, accepted: bool, model: str | None) -> None:
    verdict = identify.judge(load_profile(name), value)
    assert (verdict.accepted, verdict.model) == (accepted, model)


def test_device_supplied_model_text_is_made_safe() -> None:
    verdict = identify.judge(load_profile("huawei_sun2000"), "EVIL\x1b[31m\nrm -rf" + "x" * 80)
    assert not verdict.accepted
    assert "\x1b" not in verdict.shown and "\n" not in verdict.shown and len(verdict.shown) < 80


def test_wrong_device_is_an_error_the_caller_can_name() -> None:
    profile = load_profile("sungrow_sg")
    image = family_image("sungrow_sh", 0x0E12)

    async def scenario() -> None:
        server, port = await _serve(image, Traffic())
        pool = LinkPool(backoff=lambda: Backoff(initial=0.1, maximum=0.4, jitter=0.0))
        try:
            reader = pool.unit(pool.tcp("127.0.0.1", port), 3)
            with pytest.raises(WrongDevice, match=r"0x0E12 \(SH8\.0RT-20\).*set driver: sungrow_sh"):
                await ProfileDriver("onduleur", "inverter", profile).discover(reader)
            assert reader.requests == 1  # the guard read only: nothing else was asked of the device
            suggestions = await identify.suggest(reader)
            assert [(s.profile, s.model) for s in suggestions] == [("sungrow_sh", "SH8.0RT-20")]
        finally:
            await pool.close()
            await server.shutdown()

    asyncio.run(scenario())
    assert MAX_BACKOFF_S >= 60


class _ServerThread:
    """A pymodbus server with family images, on its own event loop, for the CLI (a subprocess) to reach."""

    def __init__(self, images: dict[int, Image]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server, self.port = asyncio.run_coroutine_threadsafe(_serve({}, Traffic(), images), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_terril_read_and_scan_name_the_profile_that_fits(tmp_path: Path) -> None:
    server = _ServerThread({13: family_image("sungrow_sh", 0x0E12)})
    try:
        config = {
            "site": {"slug": "toit-citoyen", "name": "Toit", "peak_power_w": 8000, "latitude": 50.457,
                     "longitude": 2.793},
            "broker": {"host": "127.0.0.1", "port": 1, "username": "toit-citoyen", "password": "never-printed"},
            "devices": [{"name": "onduleur", "kind": "inverter", "driver": "sungrow_sg", "unit": 13,
                         "transport": {"type": "tcp", "host": "127.0.0.1", "port": server.port}}],
            "spool": {"path": str(tmp_path / "spool.db")},
        }
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(config))
        read = _run("read", "-c", str(path), "--json")
        scan = _run("scan", f"127.0.0.1:{server.port}", "--unit", "13", "--timeout", "1", "--json")
        human = _run("scan", f"127.0.0.1:{server.port}", "--unit", "13", "--timeout", "1")
    finally:
        server.close()
    assert read.returncode == 1
    assert "Traceback" not in read.stderr
    assert ("onduleur: wrong_device: Device type code 0x0E12 (SH8.0RT-20): not a device of profile 'sungrow_sg' "
            "(Sungrow); profile 'sungrow_sh' fits it: set driver: sungrow_sh") in read.stderr, read.stderr
    assert json.loads(read.stdout)["readings"] == []  # nothing decoded with the wrong map
    assert scan.returncode == 0, scan.stderr
    (entry,) = json.loads(scan.stdout)
    assert entry["profiles"] == [{"driver": "sungrow_sh", "model": "SH8.0RT-20",
                                  "found": "Device type code 0x0E12 (SH8.0RT-20)"}]
    assert "driver: sungrow_sh" in human.stdout and human.returncode == 0


class _Answering:
    """A reader that answers every request with one Modbus outcome (the codes come from agent.errors)."""

    requests = 0

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def read(self, table: str, address: int, count: int) -> list[int]:
        self.requests += 1
        raise self.error


@pytest.mark.parametrize(("error", "outcome"), [
    (IllegalAddress("illegal data address"), WrongDevice),
    (ModbusExceptionResponse("illegal function", 0x01), WrongDevice),
    (ModbusExceptionResponse("slave device failure", 0x04), ModbusExceptionResponse),  # a hiccup, not an identity
    (DeviceBusy("busy"), DeviceBusy),
    (TransportError("timeout"), TransportError),
])
def test_only_a_missing_register_counts_as_an_answer(error: Exception, outcome: type[Exception]) -> None:
    with pytest.raises(outcome):
        asyncio.run(identify.check(load_profile("sungrow_sg"), _Answering(error)))  # type: ignore[arg-type]


def test_check_config_warns_when_a_hybrid_and_a_meter_may_count_the_grid_twice(tmp_path: Path) -> None:
    from agent.config_cli import agent_summary
    from agent.edge.config import load_agent_config

    transport = {"type": "tcp", "host": "192.168.1.50", "port": 502}
    config = {
        "site": {"slug": "toit-citoyen", "name": "Toit", "peak_power_w": 8000, "latitude": 50.457,
                 "longitude": 2.793},
        "broker": {"host": "mqtt.example.org", "username": "toit-citoyen", "password": "x"},
        "devices": [{"name": "onduleur", "kind": "inverter", "driver": "sungrow_sh", "unit": 1,
                     "transport": transport}],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    assert not [line for line in agent_summary(load_agent_config(path)) if line.startswith("warning")]
    config["devices"].append({"name": "compteur", "kind": "meter", "driver": "sdm630", "unit": 2,  # type: ignore[attr-defined]
                              "transport": transport})
    path.write_text(yaml.safe_dump(config))
    warnings = [line for line in agent_summary(load_agent_config(path)) if line.startswith("warning")]
    assert warnings == ["warning: devices[0] (onduleur, driver sungrow_sh) publishes the grid meter wired to it, "
                        "and devices[1] (compteur) is a meter too: if both measure the grid connection, the site's "
                        "import and export are counted twice in the daily energy; keep one"]


class _DeviceFailureOnOthers:
    """A Sungrow SH8.0RT-20 that answers exception 0x04 (device failure) to any register it lacks,
    as some firmware does instead of 0x02 (illegal address)."""

    requests = 0

    async def read(self, table: str, address: int, count: int) -> list[int]:
        self.requests += 1
        if (table, address, count) == ("input", 4999, 1):  # device type code 5000, numbered from 1
            return [0x0E12]
        raise ModbusExceptionResponse("slave device failure", 0x04)


def test_scan_suggestion_survives_a_device_failure_answer_to_another_profiles_register() -> None:
    """``terril scan`` asks every profile's identification register; a 0x04 to the Eastron or Huawei
    one must not abort the scan (a traceback) before the Sungrow one is asked."""
    found = asyncio.run(identify.suggest(_DeviceFailureOnOthers()))  # type: ignore[arg-type]
    assert [s.profile for s in found] == ["sungrow_sh"]


class _HoldingOnly:
    """A device with holding registers only (a Huawei SUN2000 implements functions 03/06/10): a
    register it lacks is 0x02, and any input-register read (function 04) is 0x01, illegal function."""

    requests = 0

    async def read(self, table: str, address: int, count: int) -> list[int]:
        self.requests += 1
        if table == "input":
            raise ModbusExceptionResponse("illegal function", 0x01)
        raise IllegalAddress("illegal data address")


def test_a_device_without_the_profiles_register_table_is_a_wrong_device() -> None:
    """sdm120 lets a device without System Type through (``missing: accept``) and then reads its first
    input registers: "illegal function" there means the device has no such table, so it is refused as
    wrong_device with the profile's name, not left 'unreachable' and retried as if it were a hiccup."""
    profile = load_profile("sdm120")
    driver = ProfileDriver("compteur", profile.kind, profile)
    with pytest.raises(WrongDevice, match="not a device of that profile"):
        asyncio.run(driver.discover(_HoldingOnly()))  # type: ignore[arg-type]
