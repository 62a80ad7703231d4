"""Helpers for the end-to-end acknowledgement scenarios: the shipped broker, an agent and an ingest.

The broker is the shipped ``config/mosquitto/terril.conf`` on Debian's layout
(``tests/fixtures/debian_broker.py``): dynamic-security accounts made by
``terril broker add-site`` / ``add-ingest``, TLS for the sites, Debian's
``persistence true`` with the shipped ``autosave_interval 30``. What it loses
when killed is what a production broker loses.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.debian_broker import DebianBroker
from tests.fixtures.influx import InfluxServer
from tests.ingest_support import DB, ingest_config_dict, write_config


class ShippedBroker:
    """The shipped broker, set up by config/mosquitto/README.md's commands, with an account for
    each of *sites* and for the ingest (client id *ingest_id*); kill, restart, wipe its store."""

    def __init__(self, sites: list[str], ingest_id: str) -> None:
        self.debian = b = DebianBroker()
        try:
            b.run_readme_setup({
                "certs": ["--host", "127.0.0.1", "--ca", str(b.ca), "--ca-key", str(b.terril_etc / "ca.key"),
                          "--out", str(b.etc / "certs")],
                "init": ["--dynsec-file", str(b.dynsec_file), "--admin-password-file", str(b.admin_password_file)],
                "add-ingest": ["--client-id", ingest_id, *b.admin_options()],
            }, hosts={"mqtt.ville.fr": "localhost"})
            self.ingest_id = ingest_id
            self.passwords: dict[str, str] = {"ingest": (b.terril_etc / "ingest.pass").read_text().strip()}
            for slug in sites:
                out = b.root / f"{slug}.pass"
                self._check(b.terril("broker", "add-site", slug, "--host", "localhost", "--password-out", str(out),
                                     *b.admin_options()))
                self.passwords[slug] = out.read_text().strip()
        except BaseException:
            b.remove()
            raise

    def _check(self, result: Any) -> None:
        assert result.returncode == 0, result.stderr + self.debian.log()

    @property
    def running(self) -> bool:
        return self.debian.proc is not None and self.debian.proc.poll() is None

    def start(self) -> None:
        self.debian.start()

    def stop(self) -> None:
        self.debian.stop()

    def kill(self) -> None:
        """A power cut of the broker host: SIGKILL, nothing saved since the last autosave."""
        proc = self.debian.proc
        assert proc is not None and proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def wipe(self) -> None:
        """A new broker with an empty store (no sessions, no queued or retained messages); the accounts
        (dynamic-security.json) are kept, as an installer recreates them. Call while stopped."""
        assert not self.running
        for store in self.debian.lib.glob("mosquitto.db*"):
            store.unlink()

    def remove(self) -> None:
        self.debian.remove()

    def site_broker(self, slug: str) -> dict[str, Any]:
        """The ``broker:`` section of a site's agent config: TLS by name, checked against the town's CA."""
        return {"host": "localhost", "port": self.debian.tls_port, "username": slug,
                "password": self.passwords[slug], "tls": {"ca": str(self.debian.ca)}}

    def ingest_broker(self) -> dict[str, Any]:
        """The ingest's: the loopback listener of the central server."""
        return {"host": "127.0.0.1", "port": self.debian.port, "username": "ingest",
                "password": self.passwords["ingest"]}


def write_ingest_config(tmp_path: Path, broker: ShippedBroker, influx: InfluxServer, **extra: Any) -> Path:
    data = ingest_config_dict(0, influx.url, client_id=broker.ingest_id, max_delay=0.2, retry_max_delay=2.0,
                              **extra)
    data["broker"] = broker.ingest_broker()
    return write_config(tmp_path / "ingest.yaml", data)


def write_agent_config(tmp_path: Path, sim: Any, broker: ShippedBroker, resend_after: float,
                       site: str = "mairie") -> Path:
    config = {
        "site": {"slug": site, "name": "Hôtel de ville", "peak_power_w": 10000, "panels": 30,
                 "latitude": 50.457, "longitude": 2.793},
        "broker": {**broker.site_broker(site), "keepalive": 10},
        "devices": [
            {"name": "onduleur-1", "kind": "inverter", "driver": "sunspec", "unit": 1, "interval": 1,
             "transport": {"type": "tcp", "host": sim.host, "port": sim.port, "timeout": 1.0}},
            {"name": "compteur", "kind": "meter", "driver": "sunspec", "unit": 3, "interval": 1,
             "transport": {"type": "tcp", "host": sim.host, "port": sim.port, "timeout": 1.0}},
        ],
        "spool": {"path": str(tmp_path / "spool.db"), "resend_after": resend_after},
        "health": {"interval": 5},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def stored_polls(influx: InfluxServer, site: str = "mairie") -> set[tuple[str, int]]:
    """(device, ts) of every inverter and meter row of *site* in InfluxDB."""
    out: set[tuple[str, int]] = set()
    for measurement, field in (("inverter", "ac_power_w"), ("meter", "power_w")):
        rows = influx.rows(f"SELECT {field}, device FROM {measurement} WHERE site = '{site}'", DB)
        out |= {(str(r["device"]), int(r["time"])) for r in rows}
    return out


def stored_row_count(influx: InfluxServer, site: str = "mairie") -> int:
    """Rows in InfluxDB (a doubled point would be one row: the count proves nothing is stored twice)."""
    total = 0
    for measurement, field in (("inverter", "ac_power_w"), ("meter", "power_w")):
        rows = influx.rows(f"SELECT count({field}) FROM {measurement} WHERE site = '{site}'", DB)
        total += int(rows[0]["count"]) if rows else 0
    return total
