"""TOML -> ``Config``: reading the file, validating every key, command-line overrides.

``load_config(None)`` reads the embedded default (``revproxy/conf/revproxy.toml``, shipped as
package data). Every problem raises ``ConfigError`` naming the file, the key with its table
path, the bad value and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

try:
    import tomllib
except ImportError:  # Python < 3.11 (PyPy 3.9): the same parser, packaged separately
    import tomli as tomllib  # type: ignore[no-redef]

from revproxy.config.errors import NO_VALUE, ConfigError
from revproxy.config.firewall import parse_firewall
from revproxy.config.hooks import parse_hooks
from revproxy.config.iplists import parse_ip_lists
from revproxy.config.tls import parse_tls
from revproxy.config.model import Cache, Config, Pool
from revproxy.config.pools import parse_pools
from revproxy.config.ratelimits import parse_rate_limits
from revproxy.config.reader import Table, table_key
from revproxy.config.routemodel import Route
from revproxy.config.routes import parse_routes
from revproxy.config.sections import (
    parse_admin,
    parse_buffering,
    parse_cache,
    parse_compression,
    parse_demo,
    parse_http2,
    parse_limits,
    parse_logging,
    parse_server,
    proxy_protocol_problem,
)
from revproxy.config.values import check_endpoint, parse_member_url

__all__ = [
    "COMMAND_LINE_SOURCE",
    "EMBEDDED_SOURCE",
    "ConfigError",
    "apply_overrides",
    "check_balancers",
    "check_hooks",
    "embedded_config_text",
    "load_config",
    "parse_config",
    "quick_config",
]

EMBEDDED_SOURCE = "<embedded>"
COMMAND_LINE_SOURCE = "<command line>"
CLI_NAME = "cli"
TOP_LEVEL_KEYS = (
    "server", "limits", "buffering", "logging", "pools", "routes", "demo", "admin", "cache",
    "hooks", "ip_lists", "tls", "rate_limits", "rate_limits_shared", "http2", "compression",
    "firewall",
)
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


def embedded_config_text() -> str:
    """The text of the embedded default config (works from an installed wheel too)."""
    conf = resources.files("revproxy").joinpath("conf").joinpath("revproxy.toml")
    return conf.read_text(encoding="utf-8")


def _parse_toml(text: str, source: str) -> Dict[str, Any]:
    """The TOML document as a dict; a syntax error becomes a ConfigError with its line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        where = ""
        if found:
            where = "line %s, column %s" % found.groups()
            message = message[: found.start()] + message[found.end():]
        raise ConfigError(source, where, NO_VALUE, "invalid TOML: %s" % message) from None


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(path, "", NO_VALUE, "cannot read the file: %s" % reason) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            path, "byte %d" % exc.start, NO_VALUE, "expected UTF-8 text (TOML files are UTF-8)"
        ) from None


def load_config(path: Optional[str]) -> Config:
    """Read, parse and validate the config at ``path`` (``None``: the embedded default)."""
    if path is None:
        return parse_config(_parse_toml(embedded_config_text(), EMBEDDED_SOURCE), EMBEDDED_SOURCE)
    return parse_config(_parse_toml(_read_file(path), path), path)


def parse_config(data: Dict[str, Any], source: str) -> Config:
    """Validate a parsed TOML document; ``source`` names it in errors and in ``Config``."""
    root = Table(data, source, "")
    root.check_keys(TOP_LEVEL_KEYS)
    server = parse_server(root)
    limits = parse_limits(root)
    buffering = parse_buffering(root)
    logging = parse_logging(root)
    pools = parse_pools(root)
    routes = parse_routes(root, pools)
    demo = parse_demo(root)
    admin = parse_admin(root)
    cache = parse_cache(root)
    hooks = parse_hooks(root)
    ip_lists = parse_ip_lists(root)
    tls = parse_tls(root)
    rate_limits = parse_rate_limits(root, routes, cache)
    http2 = parse_http2(root)
    compression = parse_compression(root)
    firewall = parse_firewall(root, tuple(route.name for route in routes))
    return Config(
        firewall=firewall,
        compression=compression,
        http2=http2,
        ip_lists=ip_lists,
        tls=tls,
        rate_limits=rate_limits,
        hooks=hooks,
        cache=cache,
        source=source,
        server=server,
        limits=limits,
        buffering=buffering,
        logging=logging,
        pools=pools,
        routes=routes,
        demo=demo,
        admin=admin,
    )


def check_hooks(config: Config, known: Mapping[str, str]) -> None:
    """Refuse a ``[[hooks]]`` entry whose ``plugin`` names no hook plugin in ``known``."""
    names = ", ".join(sorted(known)) or "(no hook plugin is installed)"
    for index, entry in enumerate(config.hooks):
        if entry.plugin not in known:
            raise ConfigError(config.source, "[[hooks]] #%d plugin" % (index + 1), entry.plugin,
                              "expected one of: " + names)


def check_balancers(config: Config, known: Mapping[str, str]) -> None:
    """Refuse a pool whose ``balance`` names no policy in ``known`` (name -> description).

    Called at start-up with the plugin registry: the file alone cannot know which plugins
    are installed. The error names the config's source and the pool, and lists the names.
    """
    names = ", ".join(sorted(known)) or "(no policy is registered)"
    for pool in config.pools:
        if pool.balance not in known:
            raise ConfigError(
                config.source, "[pools.%s] balance" % table_key(pool.name), pool.balance,
                "expected one of: " + names,
            )


# --- command-line overrides -----------------------------------------------------------------


def _check_option(option: str, parse: Callable[[Any], Any], values: Sequence[str]) -> Tuple:
    result = []
    for value in values:
        try:
            result.append(parse(value))
        except ValueError as exc:
            raise ConfigError(COMMAND_LINE_SOURCE, option, value, str(exc)) from None
    return tuple(result)


def is_catch_all(route: Route) -> bool:
    """True for a route with no match condition (a path prefix of "/" counts as none)."""
    return not (
        route.hosts
        or route.path_prefix not in (None, "/")
        or route.path_regex is not None
        or route.methods
        or route.headers
        or route.query
        or route.cookies
    )


def _default_route_index(routes: Sequence[Route]) -> Optional[int]:
    """Index of the last catch-all route, or None."""
    for index in range(len(routes) - 1, -1, -1):
        if is_catch_all(routes[index]):
            return index
    return None


def _route_to_cli_pool(config: Config, members: Tuple[str, ...]) -> Config:
    """Add pool "cli" and point the default route at it (appending one if there is none)."""
    if any(pool.name == CLI_NAME for pool in config.pools):
        raise ConfigError(
            COMMAND_LINE_SOURCE, "--upstream", NO_VALUE,
            'the config at %s already defines a pool named "cli"; rename it to use --upstream'
            % config.source,
        )
    routes: List[Route] = list(config.routes)
    index = _default_route_index(routes)
    if index is not None:
        routes[index] = replace(routes[index], pool=CLI_NAME, split=(), split_sticky="")
    elif any(route.name == CLI_NAME for route in routes):
        raise ConfigError(
            COMMAND_LINE_SOURCE, "--upstream", NO_VALUE,
            'the config at %s has a route named "cli" but no catch-all route; '
            "rename it or add a catch-all route" % config.source,
        )
    else:
        routes.append(Route(name=CLI_NAME, pool=CLI_NAME))
    return replace(
        config,
        pools=config.pools + (Pool(name=CLI_NAME, members=members),),
        routes=tuple(routes),
        demo=replace(config.demo, enabled=False),
    )


CACHE_FLAG_EXPECTED = (
    'expected "memory", "disk:PATH" or "memcached:HOST:PORT[,HOST:PORT...]"'
)


def parse_cache_flag(spec: str) -> Cache:
    """``--cache memory|disk:PATH|memcached:HOST:PORT,...`` -> the [cache] it stands for."""
    kind, _, rest = spec.partition(":")
    if kind == "memory" and not rest:
        return Cache(store="memory")
    if kind == "disk" and rest:
        return Cache(store="disk", store_options=(("path", rest),))
    if kind == "memcached" and rest and all(_host_port(s) for s in rest.split(",")):
        return Cache(store="memcached", store_options=(("servers", rest),))
    raise ConfigError(COMMAND_LINE_SOURCE, "--cache", spec, CACHE_FLAG_EXPECTED)


def _host_port(text: str) -> bool:
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def apply_overrides(config: Config, listen: Sequence[str], upstreams: Sequence[str],
                    cache: Optional[str] = None) -> Config:
    """Apply ``--listen`` (replaces server.listen), ``--upstream`` (pool "cli") and
    ``--cache`` (replaces the [cache] store, keeping its other settings).

    Upstreams create pool "cli", point the default route (the last catch-all) at it or append
    a catch-all route "cli", and turn the demo backends off.
    """
    if cache:
        chosen = parse_cache_flag(cache)
        config = replace(config, cache=replace(
            config.cache, store=chosen.store, store_options=chosen.store_options))
    if listen:
        entries = _check_option("--listen", check_endpoint, listen)
        config = replace(config, server=replace(config.server, listen=entries))
        problem = proxy_protocol_problem(entries, config.server.proxy_protocol_from)
        if problem is not None:
            raise ConfigError(COMMAND_LINE_SOURCE, "--listen", problem[1], problem[2])
    if upstreams:
        members = _check_option("--upstream", parse_member_url, upstreams)
        config = _route_to_cli_pool(config, members)
    return config


def quick_config(listen: Sequence[str], upstreams: Sequence[str],
                 cache: Optional[str] = None) -> Config:
    """No --config: the embedded defaults with the overrides applied (demo off with upstreams).

    Pools no route uses any more (the demo pool) are dropped.
    """
    config = apply_overrides(load_config(None), listen, upstreams, cache)
    used = set(route.pool for route in config.routes)
    pools = tuple(pool for pool in config.pools if pool.name in used)
    return replace(config, source=COMMAND_LINE_SOURCE, pools=pools)
