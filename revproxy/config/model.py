"""Frozen configuration objects. Built only by ``revproxy.config.load``; read everywhere.

A running proxy holds one ``Config`` snapshot; a reload swaps the whole snapshot and requests in
flight keep the one they began with. Sizes are bytes, durations are seconds (float). A route's
objects (``Route`` and its parts) are in ``revproxy.config.routemodel``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from revproxy.config.firewall import FirewallSettings
from revproxy.config.routemodel import Route


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
    tunnel_idle_timeout: float = 3600.0  # a tunnel (after 101) with no byte either way is closed
    tunnel_max_lifetime: float = 0.0  # a tunnel is closed after this however busy (0 = off)
    # Slow clients (revproxy.protection.rates): bytes/s over each window of min_rate_grace
    # seconds while the client is the bottleneck; 0 = off.
    min_request_rate: int = 512  # request body upload -> 408
    min_response_rate: int = 1024  # a client taking our output slower than this is cut off
    min_rate_grace: float = 10.0  # the measuring window (and grace before the first verdict)
    max_connections_per_ip: int = 512  # open connections from one client address; 0 = off


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
    backlog: int = 0  # listen queue per listener; 0 = the system maximum (somaxconn)
    error_pages: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()  # when no route has its own
    workers: int = 1  # worker processes; 1 = no supervisor ("auto" = os.cpu_count())
    proxy_protocol_from: Tuple[str, ...] = ()  # CIDRs whose PROXY header haproxy: listeners believe


@dataclass(frozen=True)
class HealthCheck:
    """Active HTTP probe of every member of a pool (``[pools.NAME.health]``)."""

    path: str = "/"  # probed with `method path HTTP/1.1`; its presence turns probing on
    method: str = "GET"
    host: str = ""  # Host header of the probe; "" = the member's address
    expect_status: Tuple[Tuple[int, int], ...] = ((200, 399),)  # inclusive ranges
    expect_body: Optional[str] = None  # regex searched in the first 64 KiB of the body
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 2  # consecutive passes that make a down member healthy
    fall: int = 3  # consecutive failures that take a healthy member down


@dataclass(frozen=True)
class Outlier:
    """Passive checks: ejection of members that keep failing (``[pools.NAME.outlier]``)."""

    consecutive_failures: int = 5  # connect failures / timeouts / 5xx in a row; 0 = off
    base_ejection: float = 30.0  # first ejection; doubles while the member keeps failing
    max_ejection: float = 300.0
    max_ejected_percent: int = 50  # never eject more than this share of the pool


@dataclass(frozen=True)
class Pool:
    name: str
    members: Tuple[str, ...]  # "http://host:port"; a host name may resolve to several members
    weights: Tuple[int, ...] = ()  # parallel to members; () = every member weight 1
    balance: str = "round-robin"  # a built-in policy or an IBalancerFactory plugin name
    balance_options: Tuple[Tuple[str, object], ...] = ()  # the policy's options, sorted items
    sticky_cookie: str = ""  # "" = off; else the cookie that pins a client to a member
    load_header: str = ""  # "" = off; response header where members report load (agent syntax)
    agent_port: int = 0  # 0 = off; HAProxy-style agent on each member's address at this port
    agent_interval: float = 5.0
    slow_start: float = 0.0  # a member coming back ramps its weight up over this; 0 = off
    max_connections_per_member: int = 0  # 0 = unlimited; else requests beyond wait in a queue
    queue_size: int = 100  # requests waiting for a member under its limit; beyond: 503
    queue_timeout: float = 5.0  # longest wait in that queue: 503
    retries: int = 1  # extra attempts on another member for retryable failures
    retry_on: Tuple[str, ...] = ("connect-failure", "timeout", "502", "503", "504")
    retry_budget: float = 0.2  # retries may add at most this share of the pool's requests
    panic_threshold: float = 0.0  # healthy share below which traffic spreads over all; 0 = off
    health: Optional[HealthCheck] = None  # None = no active probes
    outlier: Outlier = field(default_factory=Outlier)
    max_idle_per_member: int = 128  # idle persistent connections kept per member
    idle_timeout: float = 60.0  # a pooled idle connection is closed after this
    connect_timeout: float = 5.0  # -> next member, 504 when none is left (refused -> 502)
    first_byte_timeout: float = 60.0  # request sent, no response head yet -> 504
    read_timeout: float = 60.0  # longest silence inside a response -> abort
    resolve_interval: float = 30.0  # host names re-resolved this often
    # TLS to https:// members (revproxy.upstream.tls); ignored for http:// members.
    tls_verify: bool = True  # chain + host name; False is logged (warn) at start-up
    tls_ca: str = ""  # "" = the system trust store; else a PEM bundle of trusted CAs
    tls_server_name: str = ""  # "" = each member's host; else sent as SNI and verified
    tls_client_cert: str = ""  # PEM certificate (+ chain) presented to members; "" = none
    tls_client_key: str = ""  # its PEM private key (required with tls_client_cert)
    tls_min_version: str = "1.2"  # "1.2" or "1.3"
    # "" = off; "v1" / "v2": each member connection opens with a PROXY header naming its
    # client, and is private to that client connection (revproxy.upstream.proxysend)
    send_proxy_protocol: str = ""

    def weight_of(self, url: str) -> int:
        if not self.weights:
            return 1
        return self.weights[self.members.index(url)]


@dataclass(frozen=True)
class Demo:
    """Demo backends started in-process; only the embedded default config turns them on."""

    enabled: bool = False
    ports: Tuple[int, ...] = (8001, 8002)


@dataclass(frozen=True)
class Cache:
    """The shared HTTP cache (RFC 9111). ``store = ""`` turns it off."""

    store: str = ""  # "" = off; "memory", "disk", "memcached" or an ICacheStoreFactory plugin
    store_options: Tuple[Tuple[str, object], ...] = ()  # the store's options, sorted items
    max_object: int = 8 * 1024 * 1024  # larger responses are relayed, never stored
    heuristic_fraction: float = 0.1  # of (Date - Last-Modified), when nothing explicit is said
    heuristic_max: float = 86400.0  # cap of that heuristic freshness
    lock_timeout: float = 5.0  # concurrent misses wait this long for the one fetch in flight
    stale_while_revalidate: float = 0.0  # window when a response states none; 0 = off
    stale_if_error: float = 0.0  # window when a response states none; 0 = off
    key_query: str = "keep"  # "keep" as sent, "sorted" (parameters sorted), "ignore"
    key_headers: Tuple[str, ...] = ()  # request headers added to every key (lower-case)
    key_cookies: Tuple[str, ...] = ()  # cookies added to every key
    tag_headers: Tuple[str, ...] = ("cache-tag", "surrogate-key")  # purge tags, not relayed
    # RFC 9213 targeted fields, in precedence order; the first valid one replaces
    # Cache-Control and Expires for this cache's decisions
    targeted_fields: Tuple[str, ...] = ("revproxy-cache-control", "cdn-cache-control")
    strip_targeted_fields: Tuple[str, ...] = ("revproxy-cache-control",)  # never relayed
    # after a ranged miss, fetch the whole object in the background only up to this size
    # (its Content-Range length); 0 = never
    range_fill_max: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class Admin:
    """The admin listener: read-only status now (the operations issue grows it)."""

    listen: Tuple[str, ...] = ()  # () = no admin listener; keep it on loopback
    debug_clients: Tuple[str, ...] = ()  # CIDRs allowed to ask for the decision header
    debug_header: str = "x-revproxy-debug"  # request header ("1") that asks for it
    token: str = ""  # bearer token every admin call must carry ("": none; see docs/admin.md)
    token_file: str = ""  # or a file holding it (read at start-up and on every reload)


@dataclass(frozen=True)
class Http2:
    """HTTP/2 to clients (``revproxy.http2``): offered by ALPN on TLS listeners."""

    enabled: bool = True  # offer h2 in ALPN; false: every client speaks HTTP/1.1
    prior_knowledge: bool = False  # cleartext listeners also accept the h2 preface (no h2c Upgrade)
    max_concurrent_streams: int = 100  # SETTINGS_MAX_CONCURRENT_STREAMS
    max_header_list_size: int = 65536  # decoded header list; beyond: GOAWAY (HPACK bomb)
    max_header_block_size: int = 65536  # encoded HEADERS + CONTINUATION bytes; beyond: GOAWAY
    max_continuation_frames: int = 16  # CONTINUATION frames in one header block; beyond: GOAWAY
    initial_window_size: int = 65535  # per-stream receive window (request bodies)
    connection_window_size: int = 1048576  # connection receive window
    max_resets_per_minute: int = 200  # streams reset (by either side) per connection; beyond: GOAWAY


@dataclass(frozen=True)
class HookEntry:
    """One ``[[hooks]]`` entry: the plugin's name and its options (sorted (key, value) pairs)."""

    plugin: str
    options: Tuple[Tuple[str, object], ...] = ()


@dataclass(frozen=True)
class IPList:
    """One ``[[ip_lists]]`` entry: an allow or deny list and where it applies (the semantics
    are in docs/protection.md, "IP lists")."""

    name: str
    action: str  # "allow" | "deny"
    addresses: Tuple[str, ...] = ()  # inline entries, checked when the config is read
    files: Tuple[str, ...] = ()  # absolute paths, read at start-up and on every reload
    listeners: Tuple[str, ...] = ()  # [server] listen endpoints; () with no routes = every one
    routes: Tuple[str, ...] = ()  # route names: checked per request (403)


@dataclass(frozen=True)
class CertificateEntry:
    """One ``[tls] certificates`` entry: a PEM certificate (leaf first, then its chain) and
    its key ("" = in the certificate file)."""

    cert: str
    key: str = ""
    passphrase_file: str = ""  # a file holding the key's passphrase (first line)
    ocsp_response: str = ""  # a DER OCSP response to staple, re-read on reload


@dataclass(frozen=True)
class TLS:
    """Client-facing TLS (``[tls]``): certificates for ``tls:`` listeners and the settings of
    every TLS listener (``ssl:`` ones included). See docs/tls.md."""

    certificates: Tuple[CertificateEntry, ...] = ()
    certificate_dir: str = ""  # every NAME.pem/.crt there (key inside or in NAME.key)
    default_certificate: str = ""  # cert path served without SNI / to unknown names; "" = first
    provider: str = "pem"  # ITLSProvider plugin; "pem" reads the keys above
    provider_options: Tuple[Tuple[str, object], ...] = ()  # a plugin provider's options
    alpn: Tuple[str, ...] = ()  # () = h2 + http/1.1 when HTTP/2 is on, else http/1.1
    min_version: str = "1.2"  # "1.2" | "1.3"
    ciphers: str = ""  # TLS 1.2 cipher list; "" = Mozilla intermediate (ECDHE + AEAD)
    tls13_ciphersuites: str = ""  # "" = the three TLS 1.3 AEAD suites
    groups: Tuple[str, ...] = ("X25519", "P-256", "P-384")
    session_tickets: bool = True
    ticket_key_lifetime: float = 43200.0  # ticket keys (and the session cache) renewed after this
    session_timeout: float = 7200.0  # a session (ticket or cache entry) resumes within this
    client_auth: str = "off"  # "off" | "optional" | "required"; tls:/ssl: client_auth= overrides
    client_ca: str = ""  # PEM bundle that client certificates must chain to
    client_subject_header: str = "x-client-subject"  # "" = not sent; always stripped from clients
    client_fingerprint_header: str = "x-client-cert-sha256"
    openssl_provider: str = ""  # an OpenSSL 3 provider that must be active (acceleration)


@dataclass(frozen=True)
class Compression:
    """Defaults of the routes with ``compress = true`` (revproxy.compression)."""

    codings: Tuple[str, ...] = ("br", "gzip")  # preference order; those not installed are skipped
    types: Tuple[str, ...] = (  # media types ("type/subtype" or "type/*"), parameters ignored
        "text/*", "application/json", "application/javascript", "application/xml",
        "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
        "application/ld+json", "application/manifest+json", "application/wasm", "image/svg+xml",
    )
    min_size: int = 1024  # a known length under this is sent as is; unknown: compressed
    level: int = 5  # gzip 1-9 (isal, when installed: 1-3 -> 1, 4-6 -> 2, 7-9 -> 3)
    brotli_level: int = 4  # 0-11
    zstd_level: int = 3  # 1-19


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
    admin: Admin = field(default_factory=Admin)
    cache: Cache = field(default_factory=Cache)
    hooks: Tuple[HookEntry, ...] = ()  # pipeline hooks, in the order they run
    ip_lists: Tuple[IPList, ...] = ()  # allow / deny lists by client address
    tls: TLS = field(default_factory=TLS)
    rate_limits: "RateLimits" = field(default_factory=lambda: RateLimits())
    http2: Http2 = field(default_factory=Http2)
    compression: Compression = field(default_factory=Compression)
    firewall: FirewallSettings = field(default_factory=FirewallSettings)  # [firewall]

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)


@dataclass(frozen=True)
class RateLimit:
    """One ``[[rate_limits]]`` entry: a token bucket per key (see revproxy.protection)."""

    name: str
    key: Tuple[str, ...] = ("ip",)  # "ip", "route", "header:<name>", "cookie:<name>"
    rate: float = 10.0  # tokens per second (requests, or bytes with unit = "bytes")
    burst: float = 10.0  # bucket size: what may pass at once after a quiet spell
    unit: str = "requests"  # "requests" | "bytes" (response body bytes, charged at the end)
    routes: Tuple[str, ...] = ()  # route names; () = every route
    action: str = "reject"  # "reject" (429) | "delay" | "detect" (logged, counted, passes)
    delay_queue: int = 10  # action "delay": requests held per key beyond the burst
    max_delay: float = 2.0  # action "delay": longest hold; beyond -> 429
    shared: bool = False  # counters in memcached ([rate_limits_shared]) shared by proxies
    max_keys: int = 100000  # buckets kept (least recently used evicted first)


@dataclass(frozen=True)
class RateLimitsShared:
    """``[rate_limits_shared]``: the memcached servers of shared rate limits."""

    servers: Tuple[str, ...] = ()  # "host:port"; () = the [cache] memcached store's servers
    timeout: float = 0.1  # a slower answer counts as an outage: local buckets take over
    retry_interval: float = 1.0  # after a failure, local buckets only for this long
    key_prefix: str = "revproxy-rl:"
    connections_per_server: int = 2


@dataclass(frozen=True)
class RateLimits:
    """Every rate limit of a config, and where shared counters live."""

    limits: Tuple[RateLimit, ...] = ()
    shared: RateLimitsShared = field(default_factory=RateLimitsShared)
