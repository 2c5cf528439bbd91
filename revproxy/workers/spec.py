"""What a worker is told by its supervisor: a small JSON file in the supervisor's private
runtime directory (0700), written 0600, named by the worker's ``--worker`` flag.

Fields: ``index`` (the worker slot, 0-based), ``supervisor`` (its pid), ``admin`` (the
endpoint of the worker's private admin API: a Unix socket in the runtime directory) and
``listeners``: ``[{"role", "description", "fd", "family"}]``, the listening sockets the
worker inherited as file descriptors (fd 3 upward, the same in every worker), and
``ticket_secret`` (hex): the supervisor's secret every worker derives its TLS session ticket
keys from (``revproxy.tls.ticketkeys``), so a session resumes on any worker.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, NamedTuple, Tuple


class InheritedSocket(NamedTuple):
    role: str
    description: str
    fd: int
    family: int


class WorkerSpec(NamedTuple):
    index: int
    supervisor: int
    admin: str
    listeners: Tuple[InheritedSocket, ...]
    ticket_secret: bytes = b""

    def by_key(self) -> Dict[Tuple[str, str], InheritedSocket]:
        return {(s.role, s.description): s for s in self.listeners}


FIRST_FD = 3  # after stdin, stdout, stderr


def admin_endpoint(runtime_dir: str, index: int) -> str:
    """The private admin endpoint of worker ``index`` (a Unix socket only its user reaches:
    the directory is 0700, the socket 0600)."""
    return "unix:%s:mode=600" % os.path.join(runtime_dir, "worker-%d.sock" % index)


def socket_path(endpoint: str) -> str:
    """The path of an ``admin_endpoint``."""
    return endpoint[len("unix:"):].rsplit(":mode=", 1)[0]


def child_fds(parent_fds: List[Tuple[Tuple[str, str], int, int]]):
    """``(childFDs mapping for spawnProcess, [InheritedSocket])`` for parent sockets
    ``[((role, description), fd, family)]``: the i-th socket is fd ``FIRST_FD + i`` in the
    child."""
    mapping = {0: "w", 1: "r", 2: "r"}
    inherited = []
    for offset, ((role, description), fd, family) in enumerate(parent_fds):
        mapping[FIRST_FD + offset] = fd
        inherited.append(InheritedSocket(role, description, FIRST_FD + offset, int(family)))
    return mapping, inherited


def write_spec(path: str, spec: WorkerSpec) -> None:
    data = {"index": spec.index, "supervisor": spec.supervisor, "admin": spec.admin,
            "listeners": [s._asdict() for s in spec.listeners],
            "ticket_secret": spec.ticket_secret.hex()}
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def read_spec(path: str) -> WorkerSpec:
    """Raises ValueError (unreadable, not the expected JSON)."""
    try:
        with open(path) as f:
            data = json.load(f)
        return WorkerSpec(int(data["index"]), int(data["supervisor"]), str(data["admin"]),
                          tuple(InheritedSocket(str(s["role"]), str(s["description"]),
                                                int(s["fd"]), int(s["family"]))
                                for s in data["listeners"]),
                          bytes.fromhex(str(data.get("ticket_secret", ""))))
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError("cannot read the worker spec %s: %s" % (path, e)) from None
