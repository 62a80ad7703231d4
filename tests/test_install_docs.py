"""The install steps the README and the unit files give, as an installer follows them (issue 13 item 16).

After the README's own install block, ``terril …`` must be a command on the
PATH (the virtualenv is /opt/terril), every ``terril`` sub-command the docs
name must exist, the agent's user must be in ``dialout`` (RS-485 adapters),
and nothing says ``pip install terril`` (it is on no index).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from agent.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", ROOT / "config" / "mosquitto" / "README.md", ROOT / "grafana" / "README.md",
        ROOT / "systemd" / "terril-agent.service", ROOT / "systemd" / "terril-ingest.service"]
VENV_TERRIL = ROOT / ".venv" / "bin" / "terril"
LINK = "ln -sf /opt/terril/bin/terril /usr/local/bin/terril"


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 3)
    return README[start:end]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("title", ["Installing the agent on a Raspberry Pi", "Installing the central server"])
def test_install_block_puts_terril_on_the_path_before_it_is_used(title: str) -> None:
    text = section(title)
    install = sh_blocks(text)[0]
    assert LINK in install, f"{title}: the install block must link /opt/terril/bin/terril into the PATH"
    assert "pip install /path/to/terril" in install or "pip install '/path/to/terril[central]'" in install
    before_link = text[: text.index(LINK)]
    assert not re.search(r"(?<![/\w])terril (scan|read|check-config|broker|rollup)", before_link)


def test_agent_user_is_in_dialout_everywhere() -> None:
    for doc in (README, (ROOT / "systemd" / "terril-agent.service").read_text()):
        useradds = [ln for ln in doc.splitlines() if "useradd" in ln and "terril" in ln]
        assert useradds
    pi = sh_blocks(section("Installing the agent on a Raspberry Pi"))[0]
    assert "--groups dialout terril" in pi
    unit = (ROOT / "systemd" / "terril-agent.service").read_text()
    assert "useradd --system --no-create-home --shell /usr/sbin/nologin --groups dialout terril" in unit


def test_nothing_installs_terril_from_an_index() -> None:
    for doc in DOCS:
        assert not re.search(r"pip install ['\"]?terril\b", doc.read_text()), doc


def test_every_documented_terril_command_exists(tmp_path: Path) -> None:
    """Through a symlink on the PATH, as after the install block: ``terril X --help`` answers for each X named."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "terril").symlink_to(VENV_TERRIL)
    named: set[tuple[str, ...]] = set()
    for doc in DOCS:
        for match in re.finditer(r"(?<![\w/.-])terril ([a-z][a-z-]+)(?: ([a-z][a-z-]+))?", doc.read_text()):
            command, action = match.group(1), match.group(2)
            if command not in COMMANDS:
                continue
            named.add((command, action) if command == "broker" and action else (command,))
    assert ("broker", "add-site") in named and ("check-config",) in named and ("scan",) in named
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    for words in sorted(named):
        result = subprocess.run(["terril", *words, "--help"], env=env, capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, (words, result.stderr)
