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
