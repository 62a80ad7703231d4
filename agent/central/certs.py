"""The town's own certificate authority and the broker's TLS certificate (``terril broker certs``).

Sites connect to the central broker over the internet with TLS. A public CA
is not needed: the town makes its own, keeps its key on the central server
(``/etc/terril/ca.key``, root only), and puts its certificate on every Pi as
``/etc/terril/ca.pem`` (the agent's ``broker.tls.ca``). The broker gets a
certificate for the names the Pis use to reach it.

The work is done by Debian's ``openssl`` command (present on every Debian
system) so the central server needs no extra Python package. EC P-256 keys:
small, fast on a Raspberry Pi's handshake, accepted by every TLS 1.2 stack.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
"""Ten years: the CA's certificate is copied to every Pi; renewing it means visiting them all."""
SERVER_DAYS = 825
"""The broker certificate is renewed on the central server only (rerun ``terril broker certs``)."""
_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


class CertError(Exception):
    """openssl is missing or refused; the message says what to do."""


@dataclass(frozen=True)
class ServerCertFiles:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        raise CertError("the openssl command is missing: apt-get install openssl")
    result = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")


def subject_alt_names(hosts: list[str]) -> str:
    """``DNS:mqtt.ville.fr,IP:192.0.2.10``: an IP address gets an IP entry, a name a DNS entry."""
    if not hosts:
        raise CertError("give at least one --host: the name (or address) the Pis use to reach the broker")
    entries = []
    for host in hosts:
        try:
            entries.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            entries.append(f"DNS:{host}")
    return ",".join(entries)


def ensure_ca(ca_cert: Path, ca_key: Path, name: str) -> bool:
    """Create the CA unless both files exist; True when it was created. The key is 0600."""
    if ca_cert.exists() and ca_key.exists():
        return False
    if ca_cert.exists() or ca_key.exists():
        raise CertError(f"only one of {ca_cert} and {ca_key} exists: restore the other, or remove both "
                        "to make a new CA (every Pi then needs the new ca.pem)")
    ca_key.parent.mkdir(parents=True, exist_ok=True)
    ca_cert.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _openssl("req", "-x509", *_EC_KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(CA_DAYS),
                 "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)
        _install(work / "ca.key", ca_key, 0o600)
        _install(work / "ca.pem", ca_cert, 0o644)
    return True


def make_server_cert(ca_cert: Path, ca_key: Path, hosts: list[str], out_dir: Path,
                     key_group: str | None = None) -> ServerCertFiles:
    """``server.pem`` (0644) and ``server.key`` (0640, group *key_group* so the broker,
    which drops root, can read it) signed by the CA, for the names in *hosts*."""
    san = subject_alt_names(hosts)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "ext").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n"
                                  "basicConstraints=critical,CA:FALSE\n", encoding="utf-8")
        _openssl("req", *_EC_KEY, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hosts[0]}", cwd=work)
        _openssl("x509", "-req", "-in", "server.csr", "-CA", str(ca_cert), "-CAkey", str(ca_key),
                 "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(SERVER_DAYS),
                 "-extfile", "ext", "-out", "server.pem", cwd=work)
        files = ServerCertFiles(out_dir / "server.pem", out_dir / "server.key")
        _install(work / "server.key", files.key, 0o640, key_group)
        _install(work / "server.pem", files.cert, 0o644)
    return files


def _install(src: Path, dest: Path, mode: int, group: str | None = None) -> None:
    """Copy with *mode* (and *group* when given), replacing *dest* atomically.

    The copy is created 0600 (a stale one removed first, never followed if it is a link)
    and opened up to *mode* only then: a key is never readable by others, not even
    for the instant a copy made with the umask's mode would be."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(src.read_bytes())
    os.chmod(tmp, mode)
    if group is not None:
        try:
            shutil.chown(tmp, group=group)
        except (LookupError, PermissionError) as exc:
            tmp.unlink()
            raise CertError(f"cannot give {dest} to group {group!r} ({exc}): is Mosquitto installed? "
                            "(--key-group names the group the broker runs as)") from None
    os.replace(tmp, dest)
