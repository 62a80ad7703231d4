"""``terril broker add-site <slug>``: give a new site its MQTT account on the central Mosquitto.

Each site authenticates as its slug (the shipped ACL's ``pattern write
terril/%u/readings`` … then confine it to its own topics, and ``pattern read
terril/%u/ack`` lets it read only its own acknowledgements). This command generates a
strong random password and prints:

1. the line to append to Mosquitto's password file, in Mosquitto 2.0's
   ``$7$`` format (PBKDF2-SHA512), the same as ``mosquitto_passwd`` writes, so
   the central server needs no extra tool and the password never goes through
   a shell history;
2. the password itself, for ``/etc/terril/mqtt.pass`` on the site's Pi;
3. the ``broker:`` section of the site's agent config.

With ``--password-file-line-only`` stdout carries only the password-file line
(``… >> /etc/mosquitto/terril.passwd``) and the password goes to stderr, or to
``--password-out FILE``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from agent.schema import SLUG_RE, TOPIC_ROOT

PBKDF2_ITERATIONS = 101
"""What ``mosquitto_passwd`` 2.0 uses. The password is 192 random bits, so the
iteration count does not protect it; a low count keeps each CONNECT cheap."""
SALT_BYTES = 12  # as mosquitto_passwd
RESERVED_USERS = frozenset({"ingest", "admin", "root", "grafana"})
"""Names that are accounts of the central side, never site slugs."""
EXIT_USAGE = 2


def generate_password() -> str:
    """32 URL-safe characters (192 bits) — safe in YAML, in a file and in a shell."""
    return secrets.token_urlsafe(24)


def password_file_line(username: str, password: str, *, salt: bytes | None = None,
                       iterations: int = PBKDF2_ITERATIONS) -> str:
    """``username:$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512 hash>`` as Mosquitto 2.0 reads it."""
    if ":" in username or "\n" in username:
        raise ValueError("a Mosquitto user name cannot contain ':' or a newline")
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"{username}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def check_password_line(line: str, password: str) -> bool:
    """True when *line* (``user:$7$…``) accepts *password*; used to check lines from other tools."""
    _, _, hashed = line.strip().partition(":")
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a Mosquitto $7$ (PBKDF2-SHA512) password line")
    iterations, salt, expected = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest, expected)


def agent_broker_snippet(slug: str, host: str, port: int = 8883,
                         password_file: str = "/etc/terril/mqtt.pass", ca: str | None = "/etc/terril/ca.pem") -> str:
    """The ``broker:`` section of the site's ``agent.yaml``."""
    lines = [
        "broker:",
        f"  host: {host}",
        f"  port: {port}",
        f"  username: {slug}",
        f"  password_file: {password_file}",
    ]
    if ca is not None:
        lines.append(f"  tls: {{ca: {ca}}}")
    lines.append(f"  topic_root: {TOPIC_ROOT}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    add = sub.add_parser("add-site", help="create the MQTT account of a site (password-file line + agent config)")
    add.add_argument("slug", help="site slug, e.g. mairie (also its MQTT user name)")
    add.add_argument("--password-file-line-only", action="store_true",
                     help="print only the Mosquitto password-file line on stdout (the password goes to stderr)")
    add.add_argument("--password-out", type=Path, metavar="FILE",
                     help="write the password to FILE (mode 0600) instead of printing it")
    add.add_argument("--host", default="mqtt.example.org", help="broker host name for the agent config snippet")
    add.add_argument("--port", type=int, default=8883, help="broker TLS port for the agent config snippet")


def run(args: argparse.Namespace) -> int:
    slug: str = args.slug
    if not SLUG_RE.fullmatch(slug):
        print(f"terril broker add-site: {slug!r} is not a site slug "
              "(lowercase letters, digits, _ and -, starting with a letter or digit)", file=sys.stderr)
        return EXIT_USAGE
    if slug in RESERVED_USERS:
        print(f"terril broker add-site: {slug!r} is reserved for a central account; choose another slug",
              file=sys.stderr)
        return EXIT_USAGE
    password = generate_password()
    line = password_file_line(slug, password)
    if args.password_out is not None:
        _write_secret(args.password_out, password)
    if args.password_file_line_only:
        print(line)
        if args.password_out is None:
            print(f"password for {slug} (put it in /etc/terril/mqtt.pass on the site): {password}", file=sys.stderr)
        return 0
    print(f"# 1. On the broker: append this line to the password file, then reload Mosquitto\n"
          f"#    (systemctl reload mosquitto):\n{line}\n")
    if args.password_out is not None:
        print(f"# 2. The password was written to {args.password_out}: copy it to /etc/terril/mqtt.pass on the site (mode 0600).\n")
    else:
        print(f"# 2. On the site's Pi: write this password, alone, to /etc/terril/mqtt.pass (mode 0600, root):\n{password}\n")
    print("# 3. In the site's /etc/terril/agent.yaml:\n" + agent_broker_snippet(slug, args.host, args.port))
    return 0


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
