"""Telling PyPy's garbage collector about the memory each TLS connection holds in OpenSSL.

pyOpenSSL frees a connection's ``SSL`` object (its record buffers, BIOs and session, some
45-64 KiB) from a cffi destructor, when the garbage collector finds the connection
unreachable. CPython does that at once (reference counting). PyPy's collector only sees
the Python objects, so under a stream of new TLS connections it lets garbage pile up: in
bench/tls.py's handshake scenario (about 2,400 new connections a second) the process grew
by about 110 MiB a second, to 3.5 GiB after 30 s and still growing. Each new connection
therefore adds memory pressure, so that the collector runs in proportion to the
connections made. The figure is a hint measured to bound the growth, not an exact size
(same load, RSS after 30 s: no hint 3,566 MiB and rising; 64 KiB 2,254 MiB; 128 KiB
1,377 MiB, flat; 256 KiB 831 MiB, flat; the handshake rate did not change). A no-op on
CPython.
"""

from __future__ import annotations

try:
    from __pypy__ import add_memory_pressure
except ImportError:  # CPython: freed as soon as unreachable
    add_memory_pressure = None

SSL_CONNECTION_BYTES = 256 * 1024  # a hint, see above: what bounded the growth best


def connection_created() -> None:
    """Account for one new ``SSL.Connection`` (call it where each one is made)."""
    if add_memory_pressure is not None:
        add_memory_pressure(SSL_CONNECTION_BYTES)
