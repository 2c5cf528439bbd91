"""revproxy.nursery: when the proxy runs itself again with PYPY_GC_NURSERY set."""

from __future__ import annotations

from revproxy import nursery
from revproxy.nursery import NURSERY, VARIABLE, nursery_note, restart_plan

PYPY = "/opt/pypy/bin/pypy3"


def _twistd(tmp_path):
    path = tmp_path / "twistd"
    path.write_text("#!/bin/sh\n")
    return str(path)


def test_pypy_twistd_runs_again_with_the_nursery_set(tmp_path):
    twistd = _twistd(tmp_path)
    argv = [twistd, "-n", "revproxy", "--upstream", "http://127.0.0.1:1"]
    plan = restart_plan("pypy", {"PATH": "/bin"}, argv, PYPY)
    assert plan == (PYPY, [PYPY] + argv, {"PATH": "/bin", VARIABLE: NURSERY})


def test_python_m_twisted_runs_again_as_a_module():
    argv = ["/v/lib/pypy3.9/site-packages/twisted/__main__.py", "-n", "revproxy"]
    executable, again, env = restart_plan("pypy", {}, argv, PYPY)
    assert again == [PYPY, "-m", "twisted", "-n", "revproxy"] and env[VARIABLE] == NURSERY


def test_no_restart_on_cpython_with_a_set_nursery_or_another_program(tmp_path):
    twistd = _twistd(tmp_path)
    assert restart_plan("cpython", {}, [twistd, "revproxy"], "/usr/bin/python3") is None
    assert restart_plan("pypy", {VARIABLE: "8MB"}, [twistd, "revproxy"], PYPY) is None
    assert restart_plan("pypy", {}, ["/v/bin/pytest", "tests"], PYPY) is None
    assert restart_plan("pypy", {}, ["-c", "revproxy"], PYPY) is None  # python -c
    assert restart_plan("pypy", {}, [str(tmp_path / "missing" / "twistd")], PYPY) is None
    assert restart_plan("pypy", {}, [], PYPY) is None


def test_ensure_execs_only_when_planned(monkeypatch, tmp_path):
    calls = []
    twistd = _twistd(tmp_path)
    monkeypatch.setattr(nursery.sys, "argv", [twistd, "-n", "revproxy"])
    monkeypatch.setattr(nursery.os, "environ", {})
    monkeypatch.setattr(nursery.sys, "implementation", type("I", (), {"name": "pypy"}))
    nursery.ensure(execve=lambda *a: calls.append(a))
    assert len(calls) == 1 and calls[0][2][VARIABLE] == NURSERY
    monkeypatch.setattr(nursery.os, "environ", {VARIABLE: "1MB"})
    nursery.ensure(execve=lambda *a: calls.append(a))
    assert len(calls) == 1


def test_the_start_up_note():
    assert nursery_note("cpython", {}) == ""
    assert nursery_note("pypy", {VARIABLE: "64MB"}) == "64MB"
    assert "default" in nursery_note("pypy", {})
