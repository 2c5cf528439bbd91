"""Frozen configuration objects. Built only by ``revproxy.config.load``; read everywhere.

A running proxy holds one ``Config`` snapshot; a reload swaps the whole snapshot and requests in
flight keep the one they began with. Sizes are bytes, durations are seconds (float).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple


@dataclass(frozen=True)
class Limits:
    """Client-side protections (the protection issue adds rates and attack defences)."""

    max_request_line: int = 8192  # longer target -> 414
    max_header_bytes: int = 32768  # whole header block -> 431
    max_header_count: int = 100  # -> 431
    max_body_size: int = 10 * 1024 * 1024  # request body -> 413 (early, on Content-Length)
    max_connections: int = 10000  # total client connections; beyond, new ones are closed
    header_timeout: float = 10.0  # the request head must arrive within this
    body_timeout: float = 60.0  # longest silence while a request body is being read
    idle_timeout: float = 60.0  # keep-alive connection with no request in progress
    send_timeout: float = 60.0  # longest the client may leave a response unread
    max_pipeline_bytes: int = 65536  # unparsed input buffered while a request is in flight


@dataclass(frozen=True)
class Buffering:
    """Spoon-feeding: bodies are read at full speed into memory, then a temp file."""

    request_memory: int = 64 * 1024  # per request body, then a temp file
    response_memory: int = 256 * 1024  # per response, then a temp file
    response_file_max: int = 1024 * 1024 * 1024  # per response; past this: stream with back-pressure
    total_memory: int = 256 * 1024 * 1024  # all spools in this process, in memory
    total_disk: int = 10 * 1024 * 1024 * 1024  # all spools in this process, on disk
    temp_dir: str = ""  # "" -> <system temp>/revproxy-<uid>; cleaned at start-up


@dataclass(frozen=True)
class Logging:
    access_log: str = "-"  # "-" = stdout, "" = off, else a file path
    access_format: str = "combined"  # "combined" | "json"
    error_log: str = "-"  # "-" = stderr (twistd's log), else a file path


@dataclass(frozen=True)
class Server:
    listen: Tuple[str, ...] = ("tcp:8080:interface=127.0.0.1",)  # Twisted endpoint strings
    proxy_name: str = "revproxy"  # pseudonym in Via; a Via naming it means a loop (508)
    trusted_proxies: Tuple[str, ...] = ()  # CIDRs whose X-Forwarded-*/Forwarded/X-Request-ID we keep
    allow_upgrade: Tuple[str, ...] = ("websocket",)  # Upgrade tokens tunnelled; h2c never
    allow_encoded_slash: bool = False  # %2F / %5C in the path; refused (400) by default
    shutdown_timeout: float = 30.0  # SIGTERM: in-flight requests get this long to finish
    request_id_header: str = "x-request-id"


@dataclass(frozen=True)
class Pool:
    name: str
    members: Tuple[str, ...]  # "http://host:port"; a host name may resolve to several members
    max_idle_per_member: int = 128  # idle persistent connections kept per member
    idle_timeout: float = 60.0  # a pooled idle connection is closed after this
    connect_timeout: float = 5.0  # -> 504 (connect refused -> 502)
    first_byte_timeout: float = 60.0  # request sent, no response head yet -> 504
    read_timeout: float = 60.0  # longest silence inside a response -> abort
    resolve_interval: float = 30.0  # host names re-resolved this often


@dataclass(frozen=True)
class HeaderMatch:
    name: str  # lower-cased
    value: Optional[str] = None  # exact value (None = header present)
    regex: Optional[str] = None  # or a regex searched in the value


@dataclass(frozen=True)
class Route:
    name: str
    pool: str
    hosts: Tuple[str, ...] = ()  # exact ("example.com") or wildcard ("*.example.com"); () = any
    path_prefix: Optional[str] = None
    path_regex: Optional[str] = None
    methods: Tuple[str, ...] = ()  # () = any
    headers: Tuple[HeaderMatch, ...] = ()
    host_header: str = ""  # "" = preserve the client's Host; else send this Host upstream
    buffering: bool = True  # False: stream the response with back-pressure (no spool)


@dataclass(frozen=True)
class Demo:
    """Demo backends started in-process; only the embedded default config turns them on."""

    enabled: bool = False
    ports: Tuple[int, ...] = (8001, 8002)


@dataclass(frozen=True)
class Config:
    source: str  # file the config came from ("<embedded>", "<command line>", or a path)
    server: Server = field(default_factory=Server)
    limits: Limits = field(default_factory=Limits)
    buffering: Buffering = field(default_factory=Buffering)
    logging: Logging = field(default_factory=Logging)
    pools: Tuple[Pool, ...] = ()
    routes: Tuple[Route, ...] = ()
    demo: Demo = field(default_factory=Demo)

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)
