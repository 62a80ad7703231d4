"""A site's broker credentials on the Pi (issue 13 items 12 and 15).

* One permission rule for ``/etc/terril/mqtt.pass``: ``0640 root:terril``. Proved
  by running ``terril check-config`` (the unit's ExecStartPre) as an unprivileged
  user in the file's group, as the service does; ``0600 root`` (the old
  instruction) locks the agent out.
* The client id comes from the slug unless set; a copied ``client_id`` of
  another site is warned about.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "agent.example.yaml"
TERRIL = ROOT / ".venv" / "bin" / "terril"
SERVICE_UID = 65534  # nobody: stands for the `terril` system user
SERVICE_GID = 64999  # stands for the `terril` group (no need to create it on the test machine)


def site_config(folder: Path, slug: str, **broker: object) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["site"]["slug"] = slug
    data["broker"].pop("client_id", None)
    data["broker"].update(broker)
    path = folder / f"{slug}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


@pytest.fixture
def etc_terril() -> Iterator[Path]:
    """A world-traversable folder (pytest's tmp dir is 0700 root) standing for /etc/terril."""
    folder = Path(tempfile.mkdtemp(prefix="terril-etc-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_config_as_service(config: Path) -> subprocess.CompletedProcess[str]:
    """``terril check-config`` as the unit runs it: user terril, group terril."""
    return subprocess.run(["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_GID}", "--clear-groups",
                           str(TERRIL), "check-config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_password_file_rule_0640_root_terril_lets_the_agent_read_it(etc_terril: Path) -> None:
    password = etc_terril / "mqtt.pass"
    # What the README and `terril broker add-site` tell the installer to run:
    subprocess.run(["install", "-m", "0640", "-o", "root", "-g", str(SERVICE_GID), "/dev/null", str(password)],
                   check=True)
    password.write_text("s3cret-from-add-site\n")
    config = site_config(etc_terril, "mairie", username="mairie", password_file=str(password))
    os.chmod(config, 0o644)
    ok = check_config_as_service(config)
    assert ok.returncode == 0, ok.stderr
    assert "s3cret" not in ok.stdout + ok.stderr
    os.chmod(password, 0o600)  # the old instruction: the agent cannot read it
    refused = check_config_as_service(config)
    assert refused.returncode == 2
    assert "broker.password_file" in refused.stderr and "Permission denied" in refused.stderr


def test_add_site_and_docs_give_one_rule() -> None:
    docs = [ROOT / "README.md", ROOT / "config" / "mosquitto" / "README.md", EXAMPLE,
            ROOT / "systemd" / "terril-agent.service"]
    for doc in docs:
        text = doc.read_text()
        assert "mqtt.pass" in text, doc
        for line in text.splitlines():
            if "mqtt.pass" in line and ("0600" in line or "mode" in line):
                assert "0640" in line and "0600" not in line, f"{doc}: {line}"


def test_client_id_follows_the_slug_unless_set(etc_terril: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "\n  client_id:" not in EXAMPLE.read_text(), "the example must not hard-code a client id"
    assert main(["check-config", str(site_config(etc_terril, "ecole"))]) == 0
    out = capsys.readouterr().out
    assert "client id terril-ecole" in out and "warning" not in out


def test_a_copied_client_id_is_warned_about(etc_terril: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site_config(etc_terril, "ecole", client_id="terril-mairie", username="mairie", password="x")
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "warning: broker.client_id 'terril-mairie' is not 'terril-ecole'" in out
    assert "warning: broker.username 'mairie' differs from site.slug 'ecole'" in out
