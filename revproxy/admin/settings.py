"""``--admin ENDPOINT`` on the command line: replaces ``[admin] listen`` (pure)."""

from __future__ import annotations

from dataclasses import replace

from revproxy.config.errors import ConfigError
from revproxy.config.values import check_endpoint


def with_admin_listen(config, endpoints):
    """``config`` with ``[admin] listen`` replaced by ``endpoints`` (unchanged when there
    are none). Raises ``ConfigError`` (key ``--admin``) for an endpoint that is not one."""
    if not endpoints:
        return config
    checked = []
    for endpoint in endpoints:
        try:
            checked.append(check_endpoint(endpoint))
        except ValueError as e:
            raise ConfigError("command line", "--admin", endpoint, str(e))
    return replace(config, admin=replace(config.admin, listen=tuple(checked)))
