"""`terril broker`: passwords in the dynamic-security plugin's format, roles as data, the shipped
conf.d file's sizing. The rights themselves are proved on a real broker in test_broker_dynsec.py."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.central import dynsec
from agent.central.broker import generate_password

ROOT = Path(__file__).resolve().parents[1]
TERRIL = ROOT / ".venv" / "bin" / "terril"
CONF = ROOT / "config" / "mosquitto" / "terril.conf"


def add_site(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TERRIL), "broker", "add-site", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_password_hash_is_what_mosquitto_ctrl_writes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_ctrl")
    if tool is None:
        pytest.skip("mosquitto_ctrl not installed (Debian package mosquitto-clients or mosquitto)")
    subprocess.run([tool, "dynsec", "init", str(tmp_path / "d.json"), "admin", "correct horse"], check=True,
                   capture_output=True)
    theirs = json.loads((tmp_path / "d.json").read_text())["clients"][0]
    ours = dynsec.hash_password("correct horse", salt=base64.b64decode(theirs["salt"]),
                                iterations=theirs["iterations"])
    assert ours == {k: theirs[k] for k in ("password", "salt", "iterations")}
    assert dynsec.hash_password("correct horse")["salt"] != theirs["salt"]  # fresh salt each time


def test_generated_password_is_long_and_shell_safe() -> None:
    password = generate_password()
    assert len(password) == 32 and re.fullmatch(r"[A-Za-z0-9_-]+", password)


def test_site_role_confines_the_site() -> None:
    acls = {(a.acltype, a.topic, a.allow) for a in dynsec.site_acls("ecole")}
    assert acls == {
        ("publishClientSend", "terril/ecole/ack", False),
        ("publishClientSend", "terril/ecole/#", True),
        ("subscribePattern", "terril/ecole/ack", True),
        ("publishClientReceive", "terril/ecole/ack", True),
        ("subscribePattern", "terril/_ingest/+/status", True),
        ("publishClientReceive", "terril/_ingest/+/status", True),
    }
    config = dynsec.initial_config("pw")
    assert config["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                          "subscribe": False, "unsubscribe": True}
    assert [c["username"] for c in config["clients"]] == [dynsec.ADMIN_USER]


@pytest.mark.parametrize("slug", ["Mairie", "ingest", "terril-admin", "a/b", "_deadletter"])
def test_cli_refuses_bad_or_reserved_slugs_before_connecting(slug: str) -> None:
    result = add_site(slug, "--broker", "127.0.0.1:1")
    assert result.returncode == 2 and result.stdout == "" and slug in result.stderr


def test_queue_is_sized_for_a_day_of_ingest_outage() -> None:
    settings = dict(
        line.split(None, 1) for line in CONF.read_text().splitlines() if line.strip() and not line.startswith("#")
    )
    assert int(settings["max_queued_messages"]) >= 50 * 4 * 8640
    assert settings["allow_anonymous"] == "false"
    assert settings["plugin"].endswith("/mosquitto_dynamic_security.so")


def test_certs_keep_the_ca_and_renew_the_server_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    args = ["broker", "certs", "--host", "mqtt.ville.fr", "--host", "192.0.2.10", "--ca", str(tmp_path / "ca.pem"),
            "--ca-key", str(tmp_path / "ca.key"), "--out", str(tmp_path / "certs"), "--key-group", ""]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TERRIL), *args], capture_output=True, text=True, timeout=60, check=False)

    first = run()
    assert first.returncode == 0 and "created CA" in first.stdout, first.stderr
    ca, server = (tmp_path / "ca.pem").read_bytes(), (tmp_path / "certs" / "server.pem").read_bytes()
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "certs" / "server.key").stat().st_mode & 0o777 == 0o640
    second = run()
    assert second.returncode == 0 and "kept CA" in second.stdout
    assert (tmp_path / "ca.pem").read_bytes() == ca and (tmp_path / "certs" / "server.pem").read_bytes() != server
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(tmp_path / "certs" / "server.pem")],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:mqtt.ville.fr" in text and "IP Address:192.0.2.10" in text
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"),
                             str(tmp_path / "certs" / "server.pem")], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    (tmp_path / "ca.key").unlink()  # half a CA: refuse rather than silently make a new one
    lost = run()
    assert lost.returncode == 1 and "only one of" in lost.stderr and "Traceback" not in lost.stderr


def test_no_key_is_ever_readable_by_others_on_its_way_into_place(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA key is copied next to its final place, then given its mode: the copy must be
    created private (0600), not with the umask's mode, even for the instant before chmod."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    from agent.central import certs

    seen: dict[str, int] = {}
    real_chmod = certs.os.chmod

    def chmod(path: str | Path, mode: int) -> None:
        seen.setdefault(Path(path).name, Path(path).stat().st_mode & 0o777)  # the mode it was created with
        real_chmod(path, mode)

    monkeypatch.setattr(certs.os, "chmod", chmod)
    old = os.umask(0)
    try:
        certs.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key", "terril CA")
        certs.make_server_cert(tmp_path / "ca.pem", tmp_path / "ca.key", ["mqtt.ville.fr"], tmp_path / "certs")
    finally:
        os.umask(old)
    assert seen[".ca.key.tmp"] & 0o077 == 0 and seen[".server.key.tmp"] & 0o077 == 0, seen
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "certs" / "server.key").stat().st_mode & 0o777 == 0o640
