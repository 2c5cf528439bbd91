"""The open-files limit at start-up: raised to the hard limit, and checked against the
connection ceiling.

Each proxied client connection can hold two descriptors (the client's and a backend's), plus
a spool file now and then; a process left at the usual soft limit of 1024 fails ``accept``
long before ``max_connections`` (10000) is reached. Raising the soft limit up to the hard one
needs no privilege.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

# descriptors per client connection (client + backend) and a reserve for listeners, logs,
# pooled idle connections and spool files
PER_CONNECTION = 2
RESERVE = 100


class FileLimit(NamedTuple):
    before: int  # soft limit found
    soft: int  # soft limit now in force
    hard: int


def raise_open_files(resource_module=None) -> Optional[FileLimit]:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit where allowed; None where there is
    no ``resource`` module. A refusal (some containers) keeps the limit found."""
    if resource_module is None:
        try:
            import resource as resource_module
        except ImportError:  # not Unix
            return None
    soft, hard = resource_module.getrlimit(resource_module.RLIMIT_NOFILE)
    wanted = hard
    if hard == resource_module.RLIM_INFINITY:
        wanted = 1 << 20  # "unlimited" is refused for NOFILE on Linux: a large finite value
    if soft != resource_module.RLIM_INFINITY and soft < wanted:
        try:
            resource_module.setrlimit(resource_module.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return FileLimit(soft, soft, hard)
        return FileLimit(soft, wanted, hard)
    return FileLimit(soft, soft, hard)


def limit_lines(found: Optional[FileLimit], max_connections: int, per_ip: int) -> List[tuple]:
    """Start-up log lines ``(level, text)``: the effective limits, and a warning when
    ``max_connections`` cannot fit in the open-files limit (pure)."""
    per_ip_text = "off" if not per_ip else str(per_ip)
    if found is None:
        return [("info", "limits: open files unknown, max_connections %d, max_connections_per_ip %s"
                 % (max_connections, per_ip_text))]
    raised = " (raised from %d)" % found.before if found.soft != found.before else ""
    lines = [("info", "limits: open files %d%s, max_connections %d, max_connections_per_ip %s"
              % (found.soft, raised, max_connections, per_ip_text))]
    needed = max_connections * PER_CONNECTION + RESERVE
    if needed > found.soft:
        lines.append(("warn", "limits: max_connections %d needs about %d open files (client and "
                      "backend per connection) but the limit is %d (hard %d): raise the hard "
                      "limit (ulimit -Hn, LimitNOFILE=) or lower [limits] max_connections to %d"
                      % (max_connections, needed, found.soft, found.hard,
                         max(1, (found.soft - RESERVE) // PER_CONNECTION))))
    return lines
