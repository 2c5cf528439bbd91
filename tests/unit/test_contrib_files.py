"""contrib/: the systemd unit verifies with ``systemd-analyze verify`` (when the tool is
here) and reloads with SIGHUP; logrotate reopens the logs with SIGUSR1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, "contrib", "systemd", "revproxy.service")
LOGROTATE = os.path.join(ROOT, "contrib", "logrotate", "revproxy")


def read(path):
    with open(path) as f:
        return f.read()


def test_unit_reloads_with_sighup_and_raises_the_fd_limit():
    unit = read(UNIT)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "LimitNOFILE=1048576" in unit
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in unit
    assert "--check" in unit and "--nodaemon" in unit


def test_logrotate_sends_sigusr1():
    conf = read(LOGROTATE)
    assert "postrotate" in conf and "--signal=SIGUSR1" in conf


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    """With the venv path pointed at this interpreter's, the unit verifies with no
    warning at all (an unknown key or a missing binary would be reported)."""
    bindir = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(bindir, "twistd"))
    unit = read(UNIT).replace("/opt/revproxy/venv/bin", bindir)
    path = tmp_path / "revproxy.service"
    path.write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                            text=True, timeout=60)
    report = [line for line in (result.stdout + result.stderr).splitlines()
              if "revproxy.service" in line]
    assert result.returncode == 0, result.stderr
    assert report == []
