"""Every public plugin point of revproxy, each method's contract written down.

Plugins are found with ``twisted.plugin``: a module in any ``revproxy/plugins/`` directory on
``sys.path`` (no ``__init__.py`` there) holding objects that provide ``twisted.plugin.IPlugin``
and one of the ``I...Factory`` interfaces below. The config names a plugin by its ``name``;
an unknown name fails at start-up listing the known ones. Keep plugin modules light:
discovery imports all of them.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IMember(Interface):
    """What a balancing policy sees of one backend member. Policies only read it."""

    name = Attribute("str: the member's address, ``host:port`` (``[v6]:port``); unique in a pool.")
    weight = Attribute(
        "float > 0: the member's effective weight now: its configured weight, scaled by "
        "slow start and by the load it reports. Weight-aware policies use this one."
    )
    in_flight = Attribute("int >= 0: requests this proxy process has in progress on the member.")
    ewma = Attribute(
        "float >= 0: peak-EWMA of the member's response time in seconds (time to the "
        "response head); 0.0 before its first response."
    )


class IRequestFacts(Interface):
    """What a policy may know of the request being balanced."""

    client_ip = Attribute("str: the client's address as the proxy saw it.")
    host = Attribute("bytes: the request's host (Host header or absolute-form authority).")
    path = Attribute("str: the normalised path (no query).")

    def header(name):
        """The first value of header ``name`` (lower-case bytes) as bytes, or None."""

    def cookie(name):
        """The value of cookie ``name`` (bytes) from the Cookie header(s), or None."""

    def note(fmt, *args):
        """Record why the policy chose what it chose: ``fmt % args`` is formatted only when
        a trusted client asked for the decision header. Cheap to call; returns None."""


class IBalancer(Interface):
    """A balancing policy for one pool: which member serves the next request.

    One instance serves one pool in one process; it is called from the reactor thread only.
    It must not block and must not keep references to requests after ``pick`` returns.
    """

    name = Attribute("str: the policy's name, as written in the config (``balance = ...``).")

    def set_members(members):
        """The pool's members are now ``members`` (a sequence of ``IMember``, in config and
        resolution order); called once before the first ``pick`` and again whenever members
        are added or removed. Policies with precomputed structures (hash rings, weighted
        schedules) rebuild them here. Returns None."""

    def pick(candidates, request):
        """Choose the member for ``request`` (an ``IRequestFacts``).

        ``candidates`` is a non-empty sequence of ``IMember``, a subset of the members given
        to ``set_members`` (those healthy, not draining and under their connection limit;
        all of them when the pool is in panic). Returns one element of ``candidates``; never
        None. May call ``request.note(...)`` to explain the choice."""

    def started(member):
        """A request was sent to ``member`` (after ``pick``, or on a retry). Returns None."""

    def finished(member, ok, duration):
        """The request on ``member`` ended: ``ok`` is False for a connect failure, a timeout,
        a broken response or a 5xx; ``duration`` is seconds from ``started`` to the response
        head (or to the failure). Exactly one ``finished`` follows each ``started``."""


class IBalancerFactory(Interface):
    """A plugin offering a balancing policy under a name."""

    name = Attribute("str: the name the config uses (``balance = \"name\"``).")
    description = Attribute("str: one line for ``--help`` and error messages.")

    def build(options, random):
        """A new ``IBalancer`` for one pool. ``options`` is a dict of the pool's
        ``balance_options`` table (plain TOML values), ``random`` a ``random.Random`` to
        draw from (seeded in tests). Raises ValueError with a readable message for bad
        options; start-up then fails naming the pool and the option."""


class ICacheStore(Interface):
    """Where the HTTP cache keeps its values, by key.

    Values are what ``revproxy.cache.entry`` defines: a ``CacheEntry`` (one stored response,
    under its full key) or a ``VariantIndex`` (under a primary key: the Vary header names and
    the variant keys known). ``get`` gives back an equal value to the one ``put`` got (an
    ``IStreamingCacheStore`` may give a large body back as a source in its file); a store
    that keeps values outside the process serialises them with ``value_to_bytes`` /
    ``value_from_bytes`` and treats a value that fails to parse (ValueError) as a miss.

    Keys are bytes. Every method is called from the reactor thread. Deferreds may be returned
    already fired (a memory hit costs no reactor turn); none of them ever fails: a store that
    cannot do its job (I/O error, server down) reports a miss, ``False``, or 0, and logs why.
    Every method may be called after ``close``: it then does nothing and fires with the
    documented "nothing" value (None, False, 0), without raising.
    """

    name = Attribute("str: the store's kind, as written in the config (``store = ...``).")

    def get(key):
        """Look ``key`` up.

        Returns a Deferred firing with the value stored under ``key`` (a ``CacheEntry`` or
        ``VariantIndex``) or None when there is none: never stored, deleted, purged, evicted,
        past its ``ttl``, unreadable. A soft-purged ``CacheEntry`` comes back with
        ``stale=True``. Counts a hit or a miss in ``stats``; a hit makes the key the most
        recently used for eviction."""

    def put(key, value, ttl, tags=()):
        """Store ``value`` under ``key``, replacing any value there.

        ``ttl`` (float seconds) is the longest the store may keep it: freshness plus the
        stale windows, decided by the caller; the value is gone for ``get`` once ``ttl`` has
        passed (a store may drop it sooner, e.g. to respect its size bound). ``tags`` (an
        iterable of bytes) are the names ``purge(tag=...)`` finds it by.

        Returns a Deferred firing with True once stored (a following ``get`` sees it), or
        False when it was not: larger than the store takes, ``ttl`` <= 0, store closed, I/O
        error. After False, ``key`` holds no value at all (the old one is removed too): a
        cache must not go on serving a response the origin has replaced."""

    def delete(key):
        """Remove the value under ``key``, if any. Returns a Deferred firing with None."""

    def purge(prefix=None, tag=None, soft=False):
        """Remove every value whose key starts with ``prefix`` (bytes) and/or that was put
        with ``tag`` (bytes); both given means both must match; neither means everything.

        With ``soft=True`` the values are not removed but marked stale: a ``CacheEntry``
        comes back from ``get`` with ``stale=True`` (the cache then revalidates it); a
        ``VariantIndex`` is left as it is.

        Returns a Deferred firing with the number of values removed (or marked). A store
        that cannot list its keys (memcached) may implement purges with generation counters
        (keys and tags carry a generation; a purge bumps it, so older values miss), and then
        fires with -1: "done, count unknown"."""

    def stats():
        """Counters, now, as a dict (no Deferred): at least ``entries`` and ``bytes`` (held
        now, -1 if unknown), ``hits``, ``misses`` and ``evictions`` (values dropped to
        respect the size bound) since the store was built. Stores may add keys."""

    def close():
        """Release files, connections and memory. Returns a Deferred firing with None when
        done. Calling it again is harmless."""


class IStreamingCacheStore(ICacheStore):
    """A store that keeps large bodies in files and never holds them whole in memory (the
    disk store). Memory and memcached stores keep whole bodies and do not provide it.

    Differences from ``ICacheStore``: ``get`` may answer a ``CacheEntry`` whose ``body`` is
    not bytes but a *body source* kept in a file (``revproxy.cache.bodies.FileBody``:
    ``len()``, ``read(start, size)`` -> Deferred of bytes, read off the reactor thread); the
    caller streams it (``revproxy.server.streaming``) and never joins it. ``put`` accepts an
    entry whose body is such a source (one this store gave back, or ``BodyFill.end()``'s) and
    copies it without reading it into memory; the source stays usable by its other readers.
    """

    max_object = Attribute("int: the largest record (head and body) the store takes: a body "
                           "this large may be filled with ``begin_body``.")

    def begin_body(expected=None):
        """A ``revproxy.cache.bodies.BodyFill`` to write a body into as it arrives (then
        ``put`` an entry with ``fill.end()``'s body), readable meanwhile behind the writer;
        None when the store takes none now (closed, or ``expected``, the announced length,
        over ``max_object``)."""


class ICacheStoreFactory(Interface):
    """A plugin offering a kind of cache store under a name."""

    name = Attribute("str: the name the config uses (``store = \"name\"``).")
    description = Attribute("str: one line for ``--help`` and error messages.")

    def build(options, reactor):
        """A new ``ICacheStore``. ``options`` is a dict of the cache's ``store_options``
        table (plain TOML values); ``reactor`` provides ``IReactorTime`` at least: the store
        reads the time with ``reactor.seconds()`` (tests pass a ``task.Clock``) and may use
        the reactor's other interfaces it provides (TCP, threads). Raises ValueError with a
        readable message for bad options; start-up then fails naming the option."""


class IResponseSink(Interface):
    """Where one request's answer goes: the client connection's HTTP/1.1 writer, or a
    background revalidation that drops it (``DiscardSink``). Stages write only here; nothing
    fakes a connection. Called from the reactor thread.

    The order is ``informational()``* then ``start()`` (or ``start_prepared()``), ``write()``*,
    then ``finish()`` or ``abort()``; after either the sink tells the request
    (``response_done()``) once.
    """

    started = Attribute("bool: ``start`` was called (the status line is committed).")
    status = Attribute("int: the status started (0 before); the access log reads it.")
    bytes_sent = Attribute("int: body bytes accepted by ``write``.")
    keep_alive = Attribute("bool: the connection stays open after this response (settable "
                           "before ``start``; False closes it after the response).")
    writing_paused = Attribute("bool: the receiver is not keeping up: spool what follows.")
    pending_head = Attribute("bytes or None: the serialised head ``start`` holds back until "
                             "the first body bytes (a cache reuses it with ``start_prepared``).")

    def informational(status, reason, headers):
        """Relay a 1xx (not 100, not 101) before the final response. Returns None."""

    def start(status, reason, headers, content_length=None):
        """Start the final response. ``headers``: (bytes, bytes) pairs without framing
        fields; ``content_length`` the body length when known (None: chunked, or close-
        delimited for HTTP/1.0). Returns None."""

    def start_prepared(status, head, content_length):
        """Start with a head serialised earlier by ``start`` for the same request shape."""

    def write(data):
        """One piece of the body (bytes). Returns None."""

    def flush():
        """Send what is held back now (the backend has nothing more for the moment)."""

    def finish():
        """The body is complete."""

    def abort(reason):
        """The answer cannot be completed: the receiver must see a broken message."""

    def send_continue():
        """``100 Continue`` for a request that asked for it, once it is accepted."""

    def start_tunnel(upstream):
        """After a started 101: relay bytes both ways with ``upstream`` (an
        ``UpstreamConnection``) until either side closes."""

    def registerProducer(producer, streaming):
        """The relay feeding this sink: it is paused and resumed with the receiver."""

    def unregisterProducer():
        """The relay is done."""


class IRequestHook(Interface):
    """A pipeline hook: code that sees each connection and request at fixed points and may
    answer instead of the backend. Built by an ``IRequestHookFactory`` named in ``[[hooks]]``.

    Every phase method returns None to let the request continue, a
    ``revproxy.pipeline.hooks.Answer`` to answer it (the first answer ends the phase: later
    hooks and stages are skipped), or a Deferred firing with one of those when it must wait
    (the request waits; the synchronous case creates no Deferred). A phase method that raises,
    or whose Deferred fails, answers 500 (the failure is logged). Hooks run in the reactor
    thread, in configuration order, and must not block. A hook may implement only some
    phases: subclass ``revproxy.pipeline.hooks.RequestHook`` and the phases it does not
    override cost nothing.

    ``ctx`` is the request's ``revproxy.pipeline.context.RequestContext``: read it, never
    change its head; ``ctx.note(key, value)`` passes facts to later phases.
    """

    name = Attribute("str: the hook's name, for logs.")

    def connection_made(peer):
        """A client connected (``peer``: ``PeerFacts``: address, scheme, listener, TLS facts);
        nothing has been read yet. An Answer is sent as the only response and the connection
        closed (use 403 or 429, say)."""

    def request_head(ctx):
        """The head is parsed and checked, the route chosen (``ctx.route``); the body (if any)
        has not been accepted yet (no 100-continue sent). Rate limits, firewall phase 1."""

    def request_body(ctx):
        """The whole body is buffered: ``ctx.body`` is a ``BodyView`` (``size``,
        ``read(limit)``), None-sized for bodiless requests. Firewall phase 2."""

    def upstream_request(ctx, headers):
        """Just before the request goes to a member: ``headers`` is the list of (name, value)
        pairs that will be sent (forwarding headers included; framing fields are added
        after). The hook may change it in place. Not called for cache hits."""

    def response_head(ctx, response):
        """The backend's final answer head: ``response`` is a ``ResponseView`` (``status``,
        ``reason``, ``headers`` as about to be sent, changeable in place). An Answer replaces
        the backend's response (its body is dropped, nothing is stored in the cache). Not
        called for cache hits or 101 tunnels."""

    def response_body(ctx, data):
        """One piece of the backend's body, as it passes (the head is already out). Returns
        None to go on; anything else cuts the response (the client sees a broken message)
        and is logged as the reason. Synchronous only."""

    def request_end(ctx, status):
        """The request is over (answered, failed or the client left; ``status`` as logged).
        The return value is ignored. Synchronous only."""


class IRequestHookFactory(Interface):
    """A plugin offering a pipeline hook under a name."""

    name = Attribute("str: the name the config uses (``[[hooks]] plugin = \"name\"``).")
    description = Attribute("str: one line for ``--help`` and error messages.")

    def build(options, reactor):
        """A new ``IRequestHook``. ``options`` is a dict of the entry's ``options`` table
        (plain TOML values); ``reactor`` provides ``IReactorTime`` at least (tests pass a
        ``task.Clock``). Raises ValueError with a readable message for bad options; start-up
        (and a reload) then fails naming the hook and the option."""


class ITLSProvider(Interface):
    """Where the client-facing TLS certificates come from (``[tls] provider``).

    Called in the reactor thread, during handshakes: every method must answer at once
    (no I/O, no Deferred). A provider is built for one configuration snapshot; a reload
    builds a new one, and connections already open keep the contexts they got.
    """

    def server_context(server_name):
        """The ``OpenSSL.SSL.Context`` serving ``server_name`` (str, lower-case, from the
        client's SNI; None when the client sent none). Never None: unknown names get the
        provider's default certificate. The context carries certificates (and chains), and
        should be built with ``revproxy.tls.contexts.build_certificate_context`` or apply the
        ``TLSOptions`` it was given (ALPN selection, CA store for client certificates): the
        listener switches each connection to it from its own dispatch context, which owns the
        protocol versions, groups, client-certificate mode and session tickets."""

    def client_policy(pool):
        """The TLS policy for connections to the members of upstream pool ``pool`` (a
        ``revproxy.config.model.Pool``), or None for the default: the pool's own ``tls_*``
        keys (verification on, the system trust store or ``tls_ca``). A policy is an object
        with ``verify`` (bool, logged at start-up) and ``creator_for(host)`` returning the
        ``IOpenSSLClientConnectionCreator`` for a member whose URL names ``host``, such as a
        ``revproxy.upstream.tls.ClientTLSPolicy``. Called when the runtime is built (start-up
        and each reload), for the ``[tls] provider``; the built-in provider returns the
        pool's own policy (None for a pool without https:// members)."""


class ITLSProviderFactory(Interface):
    """A plugin offering a TLS provider under a name."""

    name = Attribute("str: the name the config uses (``[tls] provider = \"name\"``).")
    description = Attribute("str: one line for ``--help`` and error messages.")

    def build(options, context_options):
        """A new ``ITLSProvider``. ``options`` is a dict (``[tls] provider_options``; for the
        built-in "pem" provider, the ``[tls]`` certificate keys); ``context_options`` a
        ``revproxy.tls.contexts.TLSOptions`` the contexts must follow. Raises ValueError with
        a readable message (for a bad certificate, ``revproxy.tls.pem.CertificateProblem``,
        a ValueError naming the file); start-up and a reload then fail with it."""


class IFirewallRule(Interface):
    """A firewall rule written in Python (``[[firewall.python]]``), beside the SecLang rules.

    Called in the reactor thread once per request, after the request body is buffered,
    before (``order = "before"``) or after (``"after"``) the SecLang phase-2 rules; it must
    answer at once (no I/O, no Deferred) and must not keep the request view past the call.

    Optional attribute ``needs_body`` (True when absent, so it is not part of the verified
    interface): False says the rule judges the head only; an ``order = "before"`` rule then
    runs at head time, before SecLang phase 1, and its view's ``body`` is b"".
    """

    name = Attribute("str: the rule's name, for the decision log and the counters.")

    def evaluate(request):
        """Judge ``request`` (a ``revproxy.firewall.view.FirewallRequest``: immutable; peer,
        method, decoded path, args, headers, cookies, parsed body, TLS facts, request id).

        Returns a verdict from ``revproxy.firewall.verdicts``: ``allow()`` (or None: no
        objection, the other rules still run), ``deny(status, reason)`` (the request is
        answered ``status`` with the request id; in detect mode it is only logged and
        counted) or ``score(n, reason)`` (``n`` is added to the request's anomaly score,
        which blocks once it reaches ``[firewall] inbound_threshold``). An exception is
        logged with its traceback and counts as no objection (a rule's bug must not take
        the site down)."""


class IFirewallRuleFactory(Interface):
    """A plugin offering a Python firewall rule under a name."""

    name = Attribute("str: the name the config uses (``[[firewall.python]] plugin = \"name\"``).")
    description = Attribute("str: one line for ``--help`` and error messages.")

    def build(options, reactor):
        """A new ``IFirewallRule``. ``options`` is a dict of the entry's ``options`` table
        (plain TOML values); ``reactor`` provides ``IReactorTime`` at least. Raises
        ValueError with a readable message for bad options; start-up (and a reload) then
        fails naming the entry."""
