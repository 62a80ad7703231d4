"""``terril agent``: the edge daemon of one site.

Wiring, in the order of a reading's life::

    APScheduler job per interval ─▶ task per link, its devices in turn: DevicePoller.poll
        ─▶ (coalescing buffer) ─▶ Forwarder.submit_poll
        ─▶ Spool (SQLite, one transaction per batch) ─▶ Publisher (MQTT 5, QoS 1)
        ─▶ PUBACK success ─▶ row deleted

Devices with the same interval are polled at the same instants: one scheduler
job per interval starts one task per link (TCP endpoint, RS-485 bus), which
polls that link's devices one after the other (a device whose previous poll is
still running is skipped, so a poll never overlaps itself, and each device keeps
its own back-off and its own timestamp). The polls that end together are spooled in one SQLite
transaction and published as one ``readings`` message: the batch is handed to
the forwarder as soon as every running poll has ended, and at the latest
``COALESCE_S`` after its first poll ended, so a silent device (one timeout)
never holds the others back. Per poll, that saves an fsync, a message and a
PUBACK; a poll's readings wait in RAM for at most ``COALESCE_S`` before they
reach the spool. Devices sharing a link would be serialised by the link's lock
anyway; one task per link saves a task and a lock hand-over per poll.

The asyncio loop runs the scheduler and every Modbus exchange (pymodbus is
async, and one loop serves many devices without a thread each). The forwarder
and paho-mqtt run in their own threads, so a slow broker never delays a poll
and a slow RS-485 bus never delays a publish.

Nothing a device, the broker or the network does makes this process exit: every
job catches its own failures, counts them and logs one line per state change.
Only a configuration error stops it at start (exit code 2), with every problem
named. A spool that cannot be opened, or that becomes unusable while running
(SD-card corruption), stops it with exit code 1 and one clear line: systemd
restarts it, and the open-time check moves a corrupt file aside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from agent.devices.base import DeviceIdentity
from agent.edge.config import AgentConfig, load_agent_config
from agent.edge.fleet import build_pollers
from agent.edge.forwarder import Forwarder
from agent.edge.health import health_metrics
from agent.edge.poller import DevicePoller, PollResult
from agent.edge.publisher import Publisher, PublisherOptions
from agent.edge.spool import Spool, SpoolUnavailable
from agent.errors import ConfigError
from agent.modbus.pool import LinkPool
from agent.schema import health_payload, info_payload
from agent.sdnotify import SystemdNotifier

log = logging.getLogger("agent")

COALESCE_S = 0.25
"""Longest time a finished poll waits in RAM for the others before the batch is spooled."""

EXIT_CONFIG = 2
"""Exit code for a configuration systemd should not retry (``RestartPreventExitStatus=2``)."""

EXIT_FAILURE = 1
"""Exit code for a failure a restart can cure (a broken spool): ``Restart=on-failure`` restarts."""

TIMESYNC_DIR = Path("/run/systemd/timesync")
"""systemd-timesyncd's state directory; it creates ``synchronized`` there once NTP set the clock."""

CLOCK_WAIT_S = 600
"""How long polling waits for a synchronized clock before it starts anyway (see ``Agent.wait_for_clock``)."""

SPOOL_CHECK_ALLOWANCE_S = 600
"""How long systemd should wait for READY=1 while the spool is checked (quick_check of a 2 GB
file on a slow SD card takes a few minutes; sent as EXTEND_TIMEOUT_USEC)."""

STOP_POLLS_WAIT_S = 2.0
"""At stop, how long polls in flight may take to end before they are cancelled."""


def publisher_options(config: AgentConfig) -> PublisherOptions:
    """Map the ``broker`` section onto the MQTT link's options (the password stays a secret)."""
    b = config.broker
    password = b.password.get_secret_value() if b.password is not None else None
    return PublisherOptions(
        host=b.host,
        site=config.site.slug,
        port=b.port,
        username=b.username,
        password=password,
        tls=b.tls is not None,
        tls_ca=str(b.tls.ca) if b.tls and b.tls.ca else None,
        tls_cert=str(b.tls.cert) if b.tls and b.tls.cert else None,
        tls_key=str(b.tls.key) if b.tls and b.tls.key else None,
        client_id=b.client_id,
        keepalive=b.keepalive,
        topic_root=b.topic_root,
    )


class Agent:
    """One site's agent: its devices, its spool, its broker link and its schedule."""

    def __init__(self, config: AgentConfig, timesync_dir: Path = TIMESYNC_DIR,
                 clock_wait_s: float = CLOCK_WAIT_S) -> None:
        self.config = config
        self.timesync_dir = timesync_dir
        self.clock_wait_s = clock_wait_s
        self._polling = False
        """Poll jobs are scheduled (false while waiting for the clock)."""
        self.topics = config.topics
        self.started_at = time.time()
        self.notifier = SystemdNotifier()
        self._identities: dict[str, DeviceIdentity] = {}
        self._job_errors: dict[str, str] = {}
        spool_path = Path(config.spool.path)
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(spool_path, config.spool.max_rows, config.spool.max_age_days * 86400,
                           before_check=self._extend_start_timeout)
        try:
            self.publisher = Publisher(publisher_options(config), info=self.info_document)
            self.forwarder = Forwarder(self.spool, self.publisher, self.topics, batch_size=config.spool.batch_size,
                                       resend_after=config.spool.resend_after)
            self.pool = LinkPool(source=f"{config.site.slug} devices")
            self.pollers: list[DevicePoller] = build_pollers(config, self.pool, on_identity=self._on_identity)
        except BaseException:
            self.spool.close()
            raise
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._batch: list[tuple[DevicePoller, PollResult]] = []
        """Polls that ended and wait to be spooled together (see the module docstring)."""
        self._flush_timer: asyncio.TimerHandle | None = None
        self._polls_running = 0
        self._poll_tasks: dict[str, asyncio.Task[None]] = {}
        """The running poll of each device, by name."""
        self.exit_code = 0
        """What the process exits with once ``run`` returns (non-zero after a fatal failure)."""
        self._stop: asyncio.Event | None = None
        self._watchdog_problem: str | None = None

    def _extend_start_timeout(self) -> None:
        """The spool is checked before READY=1: a large spool on an SD card takes minutes, not seconds."""
        log.info("checking the spool %s (it was not closed cleanly)", self.config.spool.path)
        self.notifier.notify(f"EXTEND_TIMEOUT_USEC={int(SPOOL_CHECK_ALLOWANCE_S * 1_000_000)}")

    # ------------------------------------------------------------------ documents

    def info_document(self) -> dict[str, Any]:
        """The retained ``info`` payload: site metadata and what each device said about itself."""
        s = self.config.site
        devices = []
        for device in self.config.devices:
            entry: dict[str, Any] = {"name": device.name, "kind": device.kind, "driver": device.driver}
            identity = self._identities.get(device.name)
            if identity is not None:
                entry.update(identity.to_dict())
                if "models" in entry:
                    entry["models"] = list(entry["models"])
            devices.append(entry)
        site_fields = {
            "name": s.name,
            "peak_power_w": s.peak_power_w,
            "panels": s.panels,
            "owner": s.owner,
            "latitude": s.latitude,
            "longitude": s.longitude,
        }
        return info_payload(s.slug, int(time.time() * 1000), site_fields, devices)

    def health_document(self) -> dict[str, Any]:
        stats = self.spool.stats()
        metrics, devices = health_metrics(
            self.started_at,
            self.pollers,
            spool_depth=stats.depth,
            spool_oldest_s=stats.oldest_age_s or 0.0,
            spool_dropped=stats.dropped,
            publish_refused=self.publisher.refused,
        )
        forwarding = self.forwarder.health()
        metrics.update(spool_unacked=forwarding.unacked_rows,
                       spool_unacked_oldest_s=round(forwarding.unacked_oldest_s, 1),
                       rows_resent=forwarding.rows_resent)
        return health_payload(self.config.site.slug, int(time.time() * 1000), metrics, devices)

    def _on_identity(self, name: str, identity: DeviceIdentity) -> None:
        if self._identities.get(name) != identity:
            self._identities[name] = identity
            self.publisher.publish_info()

    # ------------------------------------------------------------------ jobs

    async def start_polls(self, pollers: list[DevicePoller]) -> None:
        """One tick of an interval: for each link, one task polls its devices in turn.

        Devices on one link (a TCP connection, an RS-485 bus) are serialised by the
        link's lock anyway; polling them one after the other in one task costs one task
        per link instead of one per device plus a lock hand-over per poll. A device
        whose last poll has not ended yet (a slow or silent device, or one still
        queued behind it) is skipped this tick, as APScheduler's max_instances=1 would;
        each device keeps its own back-off and its own timestamp (when its first
        request goes on the wire).
        """
        loop = asyncio.get_running_loop()
        busy = self._poll_tasks
        groups: dict[int, list[DevicePoller]] = {}
        for poller in pollers:
            if poller.name not in busy:
                groups.setdefault(id(poller.reader.link), []).append(poller)
        for due in groups.values():
            task = loop.create_task(self.poll_link(due))
            for poller in due:
                busy[poller.name] = task
            self._polls_running += len(due)

    async def poll_link(self, pollers: list[DevicePoller]) -> None:
        """Poll the devices of one link in turn (see ``start_polls``). Never raises.

        Each device is counted as running from the tick until its own poll ends, so
        the round is spooled once the last one ended (or ``COALESCE_S`` after the
        first one did: a silent device never holds the others' readings back).
        """
        done = 0
        try:
            for poller in pollers:
                try:
                    await self.poll_device(poller)
                finally:
                    done += 1
                    self._poll_tasks.pop(poller.name, None)
                    self._polls_running -= 1
                if self._polls_running == 0 and self._batch:
                    self.flush()  # every poll of this round has ended: no reason to wait
        finally:
            for poller in pollers[done:]:  # cancelled at stop: the rest never ran
                self._poll_tasks.pop(poller.name, None)
                self._polls_running -= 1

    async def poll_device(self, poller: DevicePoller) -> None:
        """One scheduled poll of one device. Never raises: an unexpected failure is logged once and counted."""
        status_before = poller.stats.status
        try:
            result = await poller.poll()
            if poller.stats.status != status_before and status_before is not None:
                self.publish_health()  # a device changed state: say so now, not in up to 60 s
            if result is not None and (result.readings or result.events):
                self._batch.append((poller, result))
                if self._flush_timer is None:
                    self._flush_timer = asyncio.get_running_loop().call_later(COALESCE_S, self.flush)
            elif poller.name in self._job_errors:
                self._works_again(poller)
        except Exception as exc:  # a bug or a device answer nobody foresaw: never kill the daemon
            self._poll_failed(poller, exc)

    def flush(self) -> None:
        """Spool the polls that ended (one transaction) and hand them to the forwarder. Never raises.

        If the batch cannot be spooled, each poll is tried on its own, so that a
        poll the spool refuses (a bug, a full disk) costs itself only, as when
        every poll was its own transaction.
        """
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, self._batch = self._batch, []
        if not batch:
            return
        readings = [r for _, result in batch for r in result.readings]
        events = [e for _, result in batch for e in result.events]
        try:
            self.forwarder.submit_poll(readings, events)
        except Exception:
            for poller, result in batch:
                try:
                    self.forwarder.submit_poll(result.readings, result.events)
                except Exception as exc:
                    self._poll_failed(poller, exc)
                else:
                    _log_spooled(poller, result)
                    self._works_again(poller)
            return
        if log.isEnabledFor(logging.DEBUG):  # one line per poll (tests read them); nothing to format at INFO
            for poller, result in batch:
                _log_spooled(poller, result)
        if self._job_errors:
            for poller, _ in batch:
                self._works_again(poller)

    def _works_again(self, poller: DevicePoller) -> None:
        if self._job_errors.pop(poller.name, None) is not None:
            log.info("%s: polling works again", poller.name)

    def _poll_failed(self, poller: DevicePoller, exc: Exception) -> None:
        poller.stats.polls_failed += 1
        kind = f"{type(exc).__name__}: {exc}"
        if self._job_errors.get(poller.name) != kind:
            self._job_errors[poller.name] = kind
            log.error("%s: poll failed unexpectedly (%s); will keep trying", poller.name, kind, exc_info=exc)

    def publish_health(self) -> None:
        try:
            payload = json.dumps(self.health_document(), separators=(",", ":")).encode()
            self.publisher.publish(self.topics.health, payload, qos=0, retain=True)
            self.notifier.status(self._status_line())
        except Exception:
            log.exception("could not publish health")

    def _status_line(self) -> str:
        states: dict[str, int] = {}
        for p in self.pollers:
            key = p.stats.status or "starting"
            states[key] = states.get(key, 0) + 1
        spool = self.spool.stats()
        parts = [f"{n} {s}" for s, n in sorted(states.items())]
        broker = "up" if self.publisher.connected else "down"
        return f"devices: {', '.join(parts)}; spool {spool.depth}; broker {broker}"

    def health_problem(self, now: float | None = None) -> str | None:
        """Why systemd should not hear WATCHDOG=1 now, or None when every part of the agent works:
        every device's poll job starts on time, the forwarder thread lives and its loop turns,
        and paho's network thread lives (without those two the spool only fills, for days)."""
        now = time.time() if now is None else now
        if not self.scheduler.running:
            return "the scheduler is not running"
        late = [p.name for p in self.pollers if self._polling and now - p.last_started >= 3 * p.interval_s + 30]
        if late:
            return f"poll job of {', '.join(late)} has not run for too long"
        if not self.forwarder.healthy():
            return "the forwarder thread is dead or hung"
        if not self.publisher.network_thread_alive:
            return "the MQTT network thread is dead"
        return None

    def ping_watchdog(self) -> None:
        if self.spool.broken is not None:
            return  # the agent is stopping to restart with a checked spool (logged once by the spool)
        problem = self.health_problem()
        if problem is None:
            self.notifier.watchdog()
        if problem != self._watchdog_problem:  # one line per change, not one per ping period
            if problem is not None:
                log.error("%s; not pinging the systemd watchdog (systemd will restart the agent)", problem)
            else:
                log.info("healthy again; pinging the systemd watchdog")
            self._watchdog_problem = problem

    def _spool_broken(self, reason: str) -> None:
        """The spool became unusable: stop with a failure so systemd restarts the agent (see the docstring)."""
        if self.exit_code == 0:
            self.exit_code = EXIT_FAILURE
            log.critical("stopping with exit code %d so that systemd restarts the agent and the spool is checked",
                         EXIT_FAILURE)
        if self._stop is not None:
            self._stop.set()

    # ------------------------------------------------------------------ life cycle

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stop = stop
        # The spool may break in the forwarder's thread as well as in this loop's.
        def on_broken(reason: str) -> None:
            loop.call_soon_threadsafe(self._spool_broken, reason)

        self.spool.on_broken = on_broken
        if self.spool.broken is not None:
            self._spool_broken(self.spool.broken)
        self.publisher.start()
        self.forwarder.start()
        self.scheduler.add_job(self.publish_health, "interval", seconds=self.config.health.interval, id="health",
                               next_run_time=_soon(5.0))
        watchdog = self.notifier.watchdog_interval_s()
        if watchdog:
            self.scheduler.add_job(self.ping_watchdog, "interval", seconds=watchdog, id="watchdog")
        self.scheduler.start()
        s = self.config.site
        log.info(
            "agent %s (%s) started: %d device(s), broker %s:%d, spool %s",
            s.slug, s.name, len(self.pollers), self.config.broker.host, self.config.broker.port, self.config.spool.path,
        )
        self.notifier.ready(f"polling {len(self.pollers)} device(s)")
        await self.wait_for_clock(stop)
        if not stop.is_set():
            self._schedule_polls()
        await stop.wait()
        await self.close()

    def _schedule_polls(self) -> None:
        # One start for every interval: devices with the same interval poll at the same
        # instants, and their polls are spooled and published together.
        start = _soon(0.5)
        for poller in self.pollers:
            poller.last_started = time.time()  # the watchdog counts from now (not from a clock wait)
        groups: dict[float, list[DevicePoller]] = {}
        for poller in self.pollers:
            groups.setdefault(poller.interval_s, []).append(poller)
        for interval, pollers in sorted(groups.items()):
            self.scheduler.add_job(
                self.start_polls,
                "interval",
                seconds=interval,
                start_date=start,
                args=[pollers],
                id=f"poll:every-{interval:g}s",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
                next_run_time=start,
            )
        self._polling = True

    def clock_synchronized(self) -> bool | None:
        """Whether systemd-timesyncd says the clock is synchronized; None without timesyncd."""
        if not self.timesync_dir.is_dir():
            return None
        return (self.timesync_dir / "synchronized").exists()

    async def wait_for_clock(self, stop: asyncio.Event) -> None:
        """Hold polling until the clock is synchronized, for at most ``clock_wait_s``.

        A Raspberry Pi has no RTC: after a power cut it boots with fake-hwclock's
        last saved time (minutes to days behind), and with the 4G link down NTP
        cannot correct it. Every poll is stamped with that clock and the
        timestamps are the readings' identity in InfluxDB, so readings taken
        before the sync would land at the wrong time for good. When
        systemd-timesyncd runs (``/run/systemd/timesync/`` exists) and has not
        created ``synchronized`` yet, polling waits for it; after ``clock_wait_s``
        it starts anyway (a site with no NTP at all must still be monitored).
        """
        if self.clock_synchronized() is not False:
            return
        log.warning("system clock not synchronized yet (no %s): polling waits for it, at most %d s",
                    self.timesync_dir / "synchronized", self.clock_wait_s)
        deadline = time.monotonic() + self.clock_wait_s
        while not stop.is_set() and time.monotonic() < deadline:
            if self.clock_synchronized():
                log.info("system clock synchronized: polling starts")
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                pass
        if not stop.is_set():
            log.warning("system clock still not synchronized after %d s: polling anyway, timestamps may be wrong",
                        self.clock_wait_s)

    async def close(self) -> None:
        self.notifier.stopping()
        log.info("agent stopping")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        running = set(self._poll_tasks.values())
        if running:  # let polls in flight end (their readings are spooled below), but not for long
            _, late = await asyncio.wait(running, timeout=STOP_POLLS_WAIT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.pool.close()
        if self.spool.broken is None:
            self.flush()  # polls that ended and are not spooled yet
        elif self._batch:
            log.error("%d poll(s) not spooled: the spool is unusable", len(self._batch))
        self.forwarder.stop()
        self.publisher.stop()
        self.spool.close()
        log.info("agent stopped")
        self.notifier.close()


def _log_spooled(poller: DevicePoller, result: PollResult) -> None:
    first = result.readings[0].ts if result.readings else result.events[0].ts
    log.debug("spooled %s ts=%d: %d reading(s), %d event(s)", poller.name, first,
              len(result.readings), len(result.events))


def _soon(offset_s: float) -> Any:
    from datetime import datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=offset_s)


# ---------------------------------------------------------------------- command line


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="agent configuration file (YAML)")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_agent_config(args.config)
    except ConfigError as exc:
        print(exc.report("configuration"), file=sys.stderr)
        return EXIT_CONFIG
    if not getattr(args, "verbose", False):
        logging.getLogger().setLevel(config.log.level)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    return asyncio.run(_main(config))


async def _main(config: AgentConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        agent = Agent(config)
    except ConfigError as exc:  # a problem only building the links shows (check-config cannot see it)
        print(exc.report("configuration"), file=sys.stderr)
        return EXIT_CONFIG
    except SpoolUnavailable as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    await agent.run(stop)
    return agent.exit_code
