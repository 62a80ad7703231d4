"""Helpers for the end-to-end acknowledgement scenarios: the shipped broker config, an agent and an ingest.

The broker is the shipped ``config/mosquitto/mosquitto.conf`` and ``acl`` (TLS,
passwords, persistence with ``autosave_interval 30``), only its paths and port
moved into the test's folder (``tests/test_broker_conf.render``): what it loses
when killed is what a production broker loses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent.central.broker import password_file_line
from tests.fixtures.influx import InfluxServer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.ingest_support import DB, ingest_config_dict, write_config
from tests.test_broker_conf import ACL, CONF, make_certificates, render

PASSWORDS = {"mairie": "mairie-secret-0123456789", "ingest": "ingest-secret-0123456789"}


class ShippedBroker(MosquittoBroker):
    """Mosquitto running the shipped config and ACL; ``wipe()`` deletes its store (a replaced broker)."""

    def __init__(self, tmp_path: Path, users: dict[str, str] | None = None) -> None:
        super().__init__(tmp_path, persistence=True)
        make_certificates(self.workdir)
        users = users or PASSWORDS
        (self.workdir / "passwd").write_text("".join(password_file_line(u, p) + "\n" for u, p in users.items()))
        (self.workdir / "acl").write_text(ACL.read_text())
        self.config_path.write_text(render(CONF.read_text(), self.workdir, self.port))

    def wipe(self) -> None:
        """A new broker with an empty store (restored from nothing, or replaced): call while stopped."""
        assert not self.running
        for store in self.workdir.glob("mosquitto.db*"):
            store.unlink()


def tls_broker(broker: ShippedBroker, user: str, password: str | None = None) -> dict[str, Any]:
    return {"host": "localhost", "port": broker.port, "username": user,
            "password": password or PASSWORDS[user], "tls": {"ca": str(broker.ca_path)}}


def write_ingest_config(tmp_path: Path, broker: ShippedBroker, influx: InfluxServer, client_id: str,
                        **extra: Any) -> Path:
    data = ingest_config_dict(broker.port, influx.url, client_id=client_id, max_delay=0.2, retry_max_delay=2.0,
                              **extra)
    data["broker"] = tls_broker(broker, "ingest")
    return write_config(tmp_path / f"{client_id}.yaml", data)


def write_agent_config(tmp_path: Path, sim: Any, broker: ShippedBroker, resend_after: float,
                       site: str = "mairie") -> Path:
    config = {
        "site": {"slug": site, "name": "Hôtel de ville", "peak_power_w": 10000, "panels": 30,
                 "latitude": 50.457, "longitude": 2.793},
        "broker": {**tls_broker(broker, site), "keepalive": 10},
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
