"""``terril broker``: set up the central Mosquitto and give each site its account.

* ``init``: the dynamic-security plugin's first file (admin account, admin and
  ingest roles, deny by default), written before Mosquitto first starts;
* ``certs``: the town's CA (``/etc/terril/ca.pem``, which every Pi needs) and
  the broker's TLS certificate;
* ``add-site SLUG``: over MQTT, as the plugin's admin, a role confining the
  site to its own topics and an account (user = slug) bound to its client id;
  prints the password's place and the ``broker:`` section of the site's
  agent configuration;
* ``add-ingest``: the ingest's account, bound to its client id.

Secrets: a file a terril service reads (the ingest's broker password, a Pi's
``/etc/terril/mqtt.pass``) is ``0640 root:terril``; a file only root's
commands read (the broker admin password, the CA key, a password in transit
to a Pi) is ``0600 root``.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any

from agent.central import certs, dynsec
from agent.central.config import _default_client_id as default_ingest_client_id
from agent.schema import SLUG_RE, TOPIC_ROOT

RESERVED_USERS = frozenset({dynsec.INGEST_USER, dynsec.ADMIN_USER, "admin", "root", "grafana"})
"""Names that are accounts of the central side, never site slugs."""
SERVICE_GROUP = "terril"
"""The group the terril services run as: it may read the secrets they need."""
SERVICE_SECRET_MODE = 0o640
ROOT_SECRET_MODE = 0o600
DEFAULT_ADMIN_PASSWORD_FILE = "/etc/terril/broker-admin.pass"
DEFAULT_DYNSEC_FILE = "/var/lib/mosquitto/dynamic-security.json"
EXIT_USAGE = 2
EXIT_FAILED = 1


def generate_password() -> str:
    """32 URL-safe characters (192 bits) — safe in YAML, in a file and in a shell."""
    return secrets.token_urlsafe(24)


def agent_broker_snippet(slug: str, host: str, port: int = 8883,
                         password_file: str = "/etc/terril/mqtt.pass", ca: str | None = "/etc/terril/ca.pem") -> str:
    """The ``broker:`` section of the site's ``agent.yaml`` (client id left to its default)."""
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


def write_secret(path: Path, secret: str, *, service: bool) -> None:
    """Write *secret* alone in *path*: ``0640 root:terril`` when a terril service reads it
    (*service*), else ``0600``. The group is set only when it exists (run as root)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    if service:
        if _group_exists(SERVICE_GROUP) and os.geteuid() == 0:
            shutil.chown(tmp, user="root", group=SERVICE_GROUP)
        else:
            print(f"terril broker: warning: group {SERVICE_GROUP!r} missing or not root: {path} keeps your group; "
                  f"the service needs it root:{SERVICE_GROUP}, mode 0640", file=sys.stderr)
        os.chmod(tmp, SERVICE_SECRET_MODE)
    os.replace(tmp, path)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _read_admin_password(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip("\r\n")
    except OSError as exc:
        raise dynsec.DynsecError(f"cannot read the broker admin password {path}: {exc.strerror} "
                                 "(made by `terril broker init`; run as root)") from None


# --------------------------------------------------------------------------- command line


def _add_connection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--admin-password-file", type=Path, default=Path(DEFAULT_ADMIN_PASSWORD_FILE), metavar="FILE",
                   help=f"the broker admin's password (default {DEFAULT_ADMIN_PASSWORD_FILE})")
    p.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT",
                   help="where to reach the broker as admin (default 127.0.0.1:1883, its loopback listener)")
    p.add_argument("--tls-ca", metavar="FILE", help="CA file when --broker is a TLS listener")
    p.add_argument("--topic-root", default=TOPIC_ROOT, help=f"MQTT topic root (default {TOPIC_ROOT})")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="broker_command", metavar="ACTION", required=True)

    init = sub.add_parser("init", help="write the dynamic-security file (admin account, roles) before Mosquitto starts")
    init.add_argument("--dynsec-file", type=Path, default=Path(DEFAULT_DYNSEC_FILE), metavar="FILE",
                      help=f"the plugin's file, plugin_opt_config_file in terril.conf (default {DEFAULT_DYNSEC_FILE})")
    init.add_argument("--admin-password-file", type=Path, default=Path(DEFAULT_ADMIN_PASSWORD_FILE), metavar="FILE",
                      help=f"where to write the generated admin password, 0600 (default {DEFAULT_ADMIN_PASSWORD_FILE})")
    init.add_argument("--owner", default="mosquitto", help="user the broker runs as; owns the file (default mosquitto)")
    init.add_argument("--topic-root", default=TOPIC_ROOT, help=f"MQTT topic root (default {TOPIC_ROOT})")
    init.add_argument("--group", default=dynsec.DEFAULT_GROUP,
                      help=f"the ingest's shared-subscription group (default {dynsec.DEFAULT_GROUP})")

    cert = sub.add_parser("certs", help="make the town's CA (once) and the broker's TLS certificate")
    cert.add_argument("--host", action="append", required=True, metavar="NAME",
                      help="name or address the Pis use to reach the broker (repeat for several)")
    cert.add_argument("--ca", type=Path, default=Path("/etc/terril/ca.pem"), metavar="FILE",
                      help="the CA certificate, copied to every Pi (default /etc/terril/ca.pem)")
    cert.add_argument("--ca-key", type=Path, default=Path("/etc/terril/ca.key"), metavar="FILE",
                      help="the CA key, root only (default /etc/terril/ca.key)")
    cert.add_argument("--ca-name", default="terril CA", help="the CA's common name")
    cert.add_argument("--out", type=Path, default=Path("/etc/mosquitto/certs"), metavar="DIR",
                      help="where the broker's server.pem and server.key go (default /etc/mosquitto/certs)")
    cert.add_argument("--key-group", default="mosquitto",
                      help="group that may read server.key (default mosquitto; '' to leave it)")

    add = sub.add_parser("add-site", help="create a site's MQTT account and role on the running broker")
    add.add_argument("slug", help="site slug, e.g. mairie (also its MQTT user name)")
    add.add_argument("--password-out", type=Path, metavar="FILE",
                     help="write the site's password to FILE (0600, to carry to the Pi) instead of printing it")
    add.add_argument("--client-id",
                     help="bind the account to this client id (default terril-<slug>, the agent's default)")
    add.add_argument("--host", default="mqtt.example.org", help="broker host name for the agent config snippet")
    add.add_argument("--port", type=int, default=8883, help="broker TLS port for the agent config snippet")
    _add_connection_options(add)

    ing = sub.add_parser("add-ingest", help="create an ingest account (bound to its client id) on the running broker")
    ing.add_argument("--username", default=dynsec.INGEST_USER, help=f"default {dynsec.INGEST_USER}")
    ing.add_argument("--client-id", default=default_ingest_client_id(),
                     help="the ingest's subscription.client_id (default terril-ingest-<hostname>, its default)")
    ing.add_argument("--password-out", type=Path, required=True, metavar="FILE",
                     help="the ingest's broker.password_file, e.g. /etc/terril/ingest.pass (0640 root:terril)")
    _add_connection_options(ing)


def run(args: argparse.Namespace) -> int:
    try:
        handler = {"init": _run_init, "certs": _run_certs, "add-site": _run_add_site,
                   "add-ingest": _run_add_ingest}[args.broker_command]
        return handler(args)
    except (dynsec.DynsecError, certs.CertError) as exc:
        print(f"terril broker {args.broker_command}: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _run_init(args: argparse.Namespace) -> int:
    path: Path = args.dynsec_file
    if path.exists():
        print(f"terril broker init: {path} already exists; it holds every account. Remove it only to start over.",
              file=sys.stderr)
        return EXIT_USAGE
    password = generate_password()
    write_secret(args.admin_password_file, password, service=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dynsec.initial_config(password, args.topic_root, args.group), f, indent=1)
    if args.owner:
        try:
            shutil.chown(path, user=args.owner, group=args.owner)
        except (LookupError, PermissionError) as exc:
            print(f"terril broker init: warning: {path} not given to {args.owner} ({exc}); "
                  "the broker must be able to write it", file=sys.stderr)
    print(f"wrote {path} (admin {dynsec.ADMIN_USER}, roles {dynsec.ADMIN_ROLE} and {dynsec.INGEST_ROLE}); "
          f"admin password in {args.admin_password_file}")
    return 0


def _run_certs(args: argparse.Namespace) -> int:
    created = certs.ensure_ca(args.ca, args.ca_key, args.ca_name)
    files = certs.make_server_cert(args.ca, args.ca_key, list(args.host), args.out, args.key_group or None)
    print(f"{'created' if created else 'kept'} CA {args.ca} (key {args.ca_key}, root only)")
    print(f"broker certificate {files.cert} and key {files.key} for {', '.join(args.host)}")
    print(f"copy {args.ca} to /etc/terril/ca.pem on every Pi (mode 0644)")
    return 0


def _address(args: argparse.Namespace) -> dynsec.BrokerAddress:
    host, _, port = str(args.broker).rpartition(":")
    if not host or not port.isdigit():
        raise dynsec.DynsecError(f"--broker {args.broker!r}: expected HOST:PORT")
    return dynsec.BrokerAddress(host, int(port), args.tls_ca)


def _send(args: argparse.Namespace, commands: list[dict[str, Any]]) -> None:
    """Run the commands as admin; an existing role is reused, any other refusal stops."""
    password = _read_admin_password(args.admin_password_file)
    responses = dynsec.run_commands(_address(args), dynsec.ADMIN_USER, password, commands)
    if len(responses) != len(commands):
        raise dynsec.DynsecError(f"the broker answered {len(responses)} of {len(commands)} commands: {responses}")
    for command, response in zip(commands, responses, strict=True):
        error = response.get("error")
        if error is None or (command["command"] == "createRole" and "exists" in str(error)):
            continue
        who = command.get("username") or command.get("rolename")
        raise dynsec.DynsecError(f"{command['command']} {who}: {error}")


def _refuse_taken_client_id(args: argparse.Namespace, username: str, client_id: str) -> None:
    """Stop when another account is already bound to *client_id*: connecting with it, the
    new account would disconnect that one (a site slug ``ingest-<host>`` would take the ingest's)."""
    password = _read_admin_password(args.admin_password_file)
    (response,) = dynsec.run_commands(_address(args), dynsec.ADMIN_USER, password, [dynsec.list_clients_command()])
    if response.get("error") is not None:
        raise dynsec.DynsecError(f"listClients: {response['error']}")
    holder = dynsec.client_id_holder(response, client_id)
    if holder is not None and holder != username:
        raise dynsec.DynsecError(f"client id {client_id} is already bound to account {holder}: two accounts "
                                 "with one client id disconnect each other; choose another slug or --client-id")


def _run_add_site(args: argparse.Namespace) -> int:
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
    client_id = args.client_id or dynsec.site_client_id(slug)
    _refuse_taken_client_id(args, slug, client_id)
    _send(args, dynsec.create_site_commands(slug, password, args.topic_root, client_id))
    print(f"# Account {slug} created: publishes only {args.topic_root}/{slug}/…, reads only its ack,\n"
          f"# connects only as client id {client_id}.")
    install = "sudo install -m 0640 -o root -g terril /dev/null /etc/terril/mqtt.pass"
    if args.password_out is not None:
        write_secret(args.password_out, password, service=False)
        print(f"# 1. The password is in {args.password_out}. On the site's Pi, put it alone in\n"
              f"#    /etc/terril/mqtt.pass, owned root:terril, mode 0640 (the agent runs as terril):\n"
              f"#    {install}   then paste it in.\n")
    else:
        print(f"# 1. On the site's Pi, put this password alone in /etc/terril/mqtt.pass, owned root:terril,\n"
              f"#    mode 0640 (the agent runs as terril):  {install}   then paste it in.\n{password}\n")
    print("# 2. In the site's /etc/terril/agent.yaml (and copy the CA to /etc/terril/ca.pem):\n"
          + agent_broker_snippet(slug, args.host, args.port))
    if args.client_id:
        print(f"  client_id: {client_id}")
    return 0


def _run_add_ingest(args: argparse.Namespace) -> int:
    _refuse_taken_client_id(args, args.username, args.client_id)
    password = generate_password()
    _send(args, dynsec.create_ingest_commands(args.username, password, args.client_id))
    write_secret(args.password_out, password, service=True)
    print(f"account {args.username} (role {dynsec.INGEST_ROLE}) bound to client id {args.client_id}; "
          f"password in {args.password_out}")
    return 0
