"""The install steps the README and the unit files give, as an installer follows them (issue 13 item 16).

After the README's own install block, ``terril …`` must be a command on the
PATH (the virtualenv is /opt/terril), every ``terril`` sub-command the docs
name must exist, the agent's user must be in ``dialout`` (RS-485 adapters),
and nothing says ``pip install terril`` (it is on no index).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

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


def _prefix_tree() -> Path:
    """A world-traversable tree holding copies of the account files, for ``useradd --prefix``."""
    root = Path(tempfile.mkdtemp(prefix="terril-pi-"))
    os.chmod(root, 0o755)
    (root / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), root / "etc" / name)
    (root / "usr" / "local" / "bin").mkdir(parents=True)  # present on every Debian system
    return root


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_pi_install_block_as_written_then_check_config_as_the_service(tmp_path: Path) -> None:
    """The README's Pi block, line by line (paths moved under a tree, ``useradd --prefix`` so the
    machine's accounts are untouched, a real ``pip install`` of this checkout), then steps 2-3:
    the password file as documented and ``terril check-config`` through the PATH, as root and as
    the ``terril`` user the unit runs it as."""
    root = _prefix_tree()
    try:
        ca = tmp_path / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")  # check-config only needs it readable
        moves = {"/opt/terril": f"{root}/opt/terril", "/usr/local/bin": f"{root}/usr/local/bin",
                 "/etc/terril": f"{root}/etc/terril", "/path/to/terril": str(ROOT)}

        def move(word: str) -> str:
            if word == "ca.pem":  # the file brought from the central server
                return str(ca)
            for old, new in moves.items():
                if word.startswith(old):
                    return new + word[len(old):]
            return word

        for line in sh_blocks(section("Installing the agent on a Raspberry Pi"))[0].splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            assert words[0] == "sudo", line
            words = words[1:]
            if words[:2] == ["apt-get", "install"]:
                continue  # python3-venv: this test's own `python3 -m venv` needs it
            if words[0] == "useradd":
                words = ["useradd", "--prefix", str(root), *words[1:]]
            words = [move(w) for w in words]
            done = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, f"{line}: {done.stderr[-2000:]}"

        account = next(ln.split(":") for ln in (root / "etc" / "passwd").read_text().splitlines()
                       if ln.startswith("terril:"))
        uid, gid = account[2], account[3]
        dialout = next(ln for ln in (root / "etc" / "group").read_text().splitlines() if ln.startswith("dialout:"))
        assert dialout.split(":")[3].split(",").count("terril") == 1
        password_step = "sudo install -m 0640 -o root -g terril /dev/null /etc/terril/mqtt.pass"
        assert password_step in README
        words = [move(w) for w in shlex.split(password_step)[1:]]
        subprocess.run([gid if w == "terril" else w for w in words], check=True, timeout=30)
        password = root / "etc" / "terril" / "mqtt.pass"
        password.write_text("from-terril-broker-add-site\n")
        config_path = root / "etc" / "terril" / "agent.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["broker"].update(username="mairie", password_file=str(password),
                                tls={"ca": str(root / "etc" / "terril" / "ca.pem")})
        config_path.write_text(yaml.safe_dump(config, allow_unicode=True))

        env = {**os.environ, "PATH": f"{root}/usr/local/bin:/usr/bin:/bin"}
        as_root = subprocess.run(["terril", "check-config", str(config_path)], env=env, capture_output=True,
                                 text=True, timeout=60, check=False)
        assert as_root.returncode == 0, as_root.stderr
        as_service = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                                     "terril", "check-config", str(config_path)],
                                    env=env, capture_output=True, text=True, timeout=60, check=False)
        assert as_service.returncode == 0, as_service.stderr
        assert "client id terril-mairie" in as_service.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
