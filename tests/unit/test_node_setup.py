"""Node.js for the setup commands: taken from PATH, else installed with apt-get.

apt-get here is a script on a PATH of the test's own, which "installs" node and npm scripts the
way NodeSource's package (node with npm) or Debian's (node alone, npm apart) would, so the
machine's packages are not touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_migration import apt
from model_migration.domain.errors import DomainError
from model_migration.node_setup import node_tools

SCRIPT = "#!/bin/sh\n{body}\n"


def _executable(path: Path, body: str) -> None:
    path.write_text(SCRIPT.format(body=body), encoding="utf-8")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with nothing but the fake apt-get's work on it; policy-rc.d kept in the test's directory."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    monkeypatch.setattr(apt, "POLICY_RC", tmp_path / "policy-rc.d")
    return path


def _apt_get(bin_dir: Path, node: str, npm_with_nodejs: bool) -> Path:
    """An apt-get whose ``nodejs`` brings a node printing ``node`` (and npm when ``npm_with_nodejs``)
    and whose ``npm`` brings npm; every call is logged."""
    log = bin_dir.parent / "apt.log"
    npm = f'printf "#!/bin/sh\\necho 10.0.0\\n" > "{bin_dir}/npm"; /bin/chmod +x "{bin_dir}/npm"'
    _executable(bin_dir / "apt-get", f"""echo "$*" >> "{log}"
for p in "$@"; do
  case "$p" in
    nodejs) printf '#!/bin/sh\\necho {node}\\n' > "{bin_dir}/node"; /bin/chmod +x "{bin_dir}/node"{'; ' + npm if npm_with_nodejs else ''} ;;
    npm) {npm} ;;
  esac
done""")
    return log


def test_a_missing_node_comes_from_apt_with_its_npm(bin_dir: Path) -> None:
    log = _apt_get(bin_dir, "v20.19.2", npm_with_nodejs=True)
    node, npm = node_tools("promptfoo 0.118.0", 20)
    assert (node, npm) == (str(bin_dir / "node"), str(bin_dir / "npm"))
    assert log.read_text(encoding="utf-8").splitlines() == ["install -y --no-install-recommends nodejs"]
    assert not apt.POLICY_RC.exists()  # held only while apt-get ran


def test_npm_apart_is_installed_after_node(bin_dir: Path) -> None:
    log = _apt_get(bin_dir, "v20.19.2", npm_with_nodejs=False)
    node_tools("unleash-server 8.2.0")
    assert log.read_text(encoding="utf-8").splitlines() == [
        "install -y --no-install-recommends nodejs", "install -y --no-install-recommends npm",
    ]


def test_node_on_path_is_used_as_it_is(bin_dir: Path) -> None:
    log = _apt_get(bin_dir, "v20.19.2", npm_with_nodejs=True)
    _executable(bin_dir / "node", "echo v22.1.0")
    _executable(bin_dir / "npm", "echo 10.0.0")
    assert node_tools("promptfoo 0.118.0", 20) == (str(bin_dir / "node"), str(bin_dir / "npm"))
    assert not log.exists()


def test_debians_node_18_is_too_old_and_says_where_20_is(bin_dir: Path) -> None:
    _apt_get(bin_dir, "v18.19.0", npm_with_nodejs=False)
    with pytest.raises(DomainError) as caught:
        node_tools("promptfoo 0.118.0", 20)
    message = caught.value.message
    assert "node v18.19.0 is too old: promptfoo 0.118.0 needs Node.js >= 20" in message
    assert "deb.nodesource.com" in message and "\n" not in message


def test_without_root_it_names_the_command_and_installs_nothing(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _apt_get(bin_dir, "v20.19.2", npm_with_nodejs=True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DomainError) as caught:
        node_tools("promptfoo 0.118.0", 20)
    assert caught.value.message == (
        "node and npm not found: promptfoo 0.118.0 needs Node.js >= 20 and npm; as root, run: apt-get install -y nodejs npm"
    )
    assert not log.exists()


def test_without_apt_get_it_names_what_is_needed(bin_dir: Path) -> None:
    with pytest.raises(DomainError) as caught:
        node_tools("unleash-server 8.2.0")
    assert caught.value.message == (
        "node and npm not found: unleash-server 8.2.0 needs Node.js and npm; as root, run: apt-get install -y nodejs npm"
    )


def test_an_apt_that_brings_no_node_is_one_line(bin_dir: Path) -> None:
    _executable(bin_dir / "apt-get", "exit 0")
    with pytest.raises(DomainError) as caught:
        node_tools("promptfoo 0.118.0", 20)
    assert caught.value.message == "node and npm still not found after apt-get: promptfoo 0.118.0 needs Node.js and npm on PATH"
