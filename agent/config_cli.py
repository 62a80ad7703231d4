"""``terril check-config FILE``: validate an agent or ingest config before a service uses it.

Meant for the technician editing ``/etc/terril/agent.yaml`` over SSH: every
problem is printed at once, one per line on stderr (``file: key.path: reason``),
exit status 2. On success a short summary shows what the agent will do, and
which values come from defaults rather than from the file. Secrets are never
printed, only where they come from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.configfile import load_yaml
from agent.edge.config import AgentConfig, DeviceConfig, RtuTransport, load_agent_config
from agent.errors import ConfigError

EXIT_INVALID = 2


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="agent or ingest YAML config file")
    parser.add_argument("--inventory", type=Path, metavar="SITES_YAML",
                        help="with an agent config: also compare its site block with the town's inventory")


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        data = load_yaml(path)
        if isinstance(data, dict) and "influxdb" in data:
            return _check_ingest(path)
        config = load_agent_config(path)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_INVALID
    print(f"{path}: agent config OK")
    for line in agent_summary(config):
        print(line)
    if getattr(args, "inventory", None) is not None:
        return _compare_with_inventory(config, args.inventory)
    return 0


def _compare_with_inventory(config: AgentConfig, path: Path) -> int:
    """Where the agent's site block and the inventory disagree, the inventory wins: say so, as notes."""
    try:
        from agent.central.inventory import agent_site_disagreements, load_inventory
    except ImportError as exc:  # pragma: no cover - central extra missing on a Pi
        print(f"{path}: cannot read inventories on this installation ({exc})", file=sys.stderr)
        return EXIT_INVALID
    try:
        inventory = load_inventory(path)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_INVALID
    site = config.site
    notes = agent_site_disagreements(inventory, site.slug, site.name, site.peak_power_w,
                                     site.latitude, site.longitude)
    for note in notes:
        print(f"note: {note}")
    if not notes:
        print(f"site {site.slug} agrees with the inventory {path}")
    return 0


def _print_problems(exc: ConfigError, what: str = "configuration") -> None:
    print(exc.report(what), file=sys.stderr)


def _check_ingest(path: Path) -> int:
    try:
        from agent.central.config import load_ingest_config  # lazy: central code, not on the Pi
    except ImportError as exc:
        print(
            f"{path}: looks like an ingest config (it has an influxdb section), but this installation "
            f"cannot check ingest configs ({exc})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        config = load_ingest_config(path)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_INVALID
    print(f"{path}: ingest config OK")
    broker = getattr(config, "broker", None)
    influx = getattr(config, "influxdb", None)
    if broker is not None:
        print(f"broker {getattr(broker, 'host', '?')}:{getattr(broker, 'port', '?')}")
    if influx is not None:
        print(f"influxdb {getattr(influx, 'url', '?')} (api {getattr(influx, 'api', '?')})")
    if config.inventory is not None:
        from agent.central.inventory import load_inventory

        inventory = load_inventory(config.inventory)
        territory = inventory.territory
        arrays = sum(len(s.arrays) for s in inventory.sites)
        print(f"inventory {config.inventory}: {territory.name}, {len(territory.communes)} commune"
              f"{'s' if len(territory.communes) != 1 else ''}, {len(inventory.sites)} sites, {arrays} arrays"
              + (f", newborn panels on {inventory.newborn_panels.site}" if inventory.newborn_panels else ""))
        from agent.central.performance.plan import analytics_notes

        for note in analytics_notes(inventory, config.performance.min_peers):
            print(f"note: yield analytics: {note}")
    else:
        print("no inventory: communes, arrays and the public site's owners are unknown (see config/sites.example.yaml)")
    return 0


def agent_summary(config: AgentConfig) -> list[str]:
    """Human lines describing a valid agent config; no secret in them."""
    site, broker = config.site, config.broker
    lines = [
        f"site {site.slug} ({site.name}): {site.peak_power_w / 1000:g} kWp"
        + (f", {site.panels} panels" if site.panels is not None else "")
        + f", owner {site.owner}",
    ]
    if broker.password_file is not None:
        secret = f"password from {broker.password_file}"
    elif broker.password is not None:
        secret = "password inline"
    else:
        secret = "no password"
    tls = "TLS" if broker.tls is not None else "no TLS"
    lines.append(
        f"broker {broker.host}:{broker.port} ({tls}), user {broker.username or '(none)'}, {secret}, "
        f"client id {broker.client_id}, topics {config.topics.readings}"
    )
    lines += broker_identity_warnings(config)
    lines += grid_meter_warnings(config)
    lines.append(f"{len(config.devices)} device{'s' if len(config.devices) != 1 else ''}:")
    for dev in config.devices:
        lines.append("  " + _device_line(dev))
    defaults = defaulted_keys(config)
    if defaults:
        lines.append("defaults used: " + ", ".join(defaults))
    return lines


def broker_identity_warnings(config: AgentConfig) -> list[str]:
    """The central broker knows a site as user ``<slug>`` bound to client id ``terril-<slug>``
    (``terril broker add-site``): say so when the file says otherwise (e.g. copied from another site)."""
    site, broker = config.site, config.broker
    lines = []
    if broker.username is not None and broker.username != site.slug:
        lines.append(
            f"warning: broker.username {broker.username!r} differs from site.slug {site.slug!r}; "
            f"`terril broker add-site {site.slug}` creates the account {site.slug!r}, which may publish only "
            f"under {broker.topic_root}/{site.slug}/"
        )
    expected = f"terril-{site.slug}"
    if "client_id" in broker.model_fields_set and broker.client_id != expected:
        lines.append(
            f"warning: broker.client_id {broker.client_id!r} is not {expected!r} (the default, to which "
            "`terril broker add-site` binds the account); an agent of another site using the same client id "
            "knocks this one offline. Remove the key unless the account was made with --client-id."
        )
    return lines


def grid_meter_warnings(config: AgentConfig) -> list[str]:
    """A hybrid inverter's profile (``sungrow_sh``) publishes the grid meter wired to it: a meter configured
    as well is fine only if it measures something else, otherwise the site's import is counted twice."""
    from agent.devices.profile import available_profiles, load_profile

    shipped = set(available_profiles())
    hybrids = [(i, d) for i, d in enumerate(config.devices) if d.driver in shipped
               and any(r.measurement == "meter" for r in load_profile(d.driver).registers)]
    meters = [(i, d) for i, d in enumerate(config.devices) if d.kind == "meter"]
    return [
        f"warning: devices[{i}] ({hybrid.name}, driver {hybrid.driver}) publishes the grid meter wired to it, "
        f"and devices[{j}] ({meter.name}) is a meter too: if both measure the grid connection, the site's "
        "import and export are counted twice in the daily energy; keep one"
        for i, hybrid in hybrids for j, meter in meters
    ]


def _device_line(dev: DeviceConfig) -> str:
    tr = dev.transport
    if isinstance(tr, RtuTransport):
        where = f"rtu {tr.port} {tr.baudrate} {tr.bytesize}{tr.parity}{tr.stopbits}"
    else:
        where = f"tcp {tr.host}:{tr.port}"
    unit = f"unit {dev.unit}" + (" (default)" if "unit" not in dev.model_fields_set else "")
    every = f"every {dev.interval} s" + (" (default)" if "interval" not in dev.model_fields_set else "")
    logical = f", logical device {dev.logical_device}" if dev.logical_device != 1 else ""
    return f"{dev.name}: {dev.kind}, driver {dev.driver}, {where}, {unit}{logical}, {every}"


def defaulted_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """``key=value`` for every key the file left out (device entries are shown per device instead)."""
    out: list[str] = []
    for name in type(model).model_fields:
        value: Any = getattr(model, name)
        dotted = f"{prefix}{name}"
        if name == "devices" or "password" in name:
            continue
        if name not in model.model_fields_set:
            if isinstance(value, BaseModel):
                out.append(f"{dotted}.*")
            elif value is not None and value != "":
                out.append(f"{dotted}={value}")
        elif isinstance(value, BaseModel):
            out += defaulted_keys(value, dotted + ".")
    return out
