"""Write a whole site beside the live one, then swap it in with one atomic rename.

``out`` is a symbolic link to the current build, ``<out>.builds/<stamp>/``.
A build writes a new folder there, then points a new link at it and renames
the link over ``out`` (``rename(2)`` replaces atomically): a visitor, or the
web server, sees the old site or the new one, never half of one. The
previous build is kept for a minute's worth of slow downloads and removed at
the next build; older ones are removed.

A first build where ``out`` is a real folder (made by hand, or by an older
version) moves that folder into ``<out>.builds/`` first; that one rename is the
only moment ``out`` is briefly missing. nginx, Caddy and Apache follow the
link by default.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

KEEP_BUILDS = 2
"""The live build and the one before it."""


def builds_dir(out: Path) -> Path:
    return out.with_name(out.name + ".builds")


def publish(out: Path, files: Mapping[str, bytes]) -> Path:
    """Write *files* (relative path -> content) as a new build and make *out* point to it; return the build."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise ValueError(f"{out}: the site folder needs a name")
    builds = builds_dir(out)
    builds.mkdir(parents=True, exist_ok=True)
    os.chmod(builds, 0o755)  # the web server must traverse it, whatever the service's umask (0077)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    build = builds / f"{stamp}-{os.getpid()}"
    tmp = builds / f".{build.name}.tmp"
    try:
        for rel, content in files.items():
            target = tmp / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise ValueError(f"{rel}: not a relative path inside the site")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            os.chmod(target, 0o644)
        for folder in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            os.chmod(folder, 0o755)
        os.rename(tmp, build)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    if out.exists() and not out.is_symlink():
        os.rename(out, builds / f"{stamp}-previous")
    link = out.with_name(f".{out.name}.{os.getpid()}.link")
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(os.path.relpath(build, out.parent), link)
    os.replace(link, out)
    _prune(builds, build)
    return build


def _prune(builds: Path, live: Path) -> None:
    """Keep the live build and the one before it; remove older builds and abandoned temporary folders."""
    done = sorted((p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    for old in [p for p in done if p != live][: -(KEEP_BUILDS - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in builds.glob(".*.tmp"):
        if tmp.stat().st_mtime < datetime.now().timestamp() - 3600:
            shutil.rmtree(tmp, ignore_errors=True)
