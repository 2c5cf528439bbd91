"""Telling PyPy's garbage collector about memory it cannot see, so it collects in time.

Some objects hold memory outside PyPy's heap and free it only when the collector finds
them unreachable: pyOpenSSL's ``SSL`` objects (record buffers, BIOs, session: freed by a
cffi destructor) and the raw buffers of PyPy's own socket calls (``accept``'s address,
``getpeername``, ``send``/``recv``, ``epoll.poll``, ``ioctl``: measured in a loop, each
grows the process until a ``gc.collect()``, which gives it all back). CPython frees such
objects at once (reference counting); PyPy's collector only sees the small Python objects,
runs a major collection rarely under a steady load (the garbage dies young), and the raw
memory piles up: the proxy grew by megabytes a second, with or without the firewall, and
a ``gc.collect()`` every second kept it flat, so it was all garbage. Measured with new connections in a closed loop (wrk ``Connection: close``), RSS of the
PyPy proxy:

- TLS, about 2,400 handshakes a second (bench/tls.py's certificates): 3,566 MiB after 30 s
  and rising; with the hint per TLS connection at 64 KiB 2,254 MiB, 128 KiB 1,377 MiB
  (flat), 256 KiB 831 MiB (flat); the handshake rate did not change;
- plain HTTP, firewall off, about 22,000 connections a second: 621 MiB after 60 s and
  rising (about 260 bytes per connection); 302 MiB flat with 16 KiB per connection;
- plain HTTP, the default config (CRS on), about 3,500 connections a second: 1,005 MiB
  after 180 s and rising; 402 MiB flat after 30 s with the hint;
- keep-alive plain HTTP, firewall off, about 75,000 requests a second: 576 MiB after 120 s,
  rising by 2.4 MiB a second; 314 MiB flat with 1 KiB per request, throughput unchanged;
- the same with the CRS on, about 4,500 requests a second: still rising by 1.2 MiB a second
  with 1 KiB per request; 345 MiB flat with 16 KiB more per firewall transaction.

Each accepted client connection (``server.admission.admit``), each request
(``ProxyRequest``), each firewall transaction and each TLS connection, to a client or a
backend, therefore adds memory pressure. Too much costs latency: every hint makes major
collections more frequent, and 16 KiB per request (rather than per firewall transaction)
took PyPy's cache hits from 0.98 to 24 ms at p99 (bench/cache.py, 1k-c50, 100,000 hits a
second); at 1 KiB they are back at 1.1 ms. The figures are hints measured to bound the growth, not exact sizes. A no-op on
CPython (one call and a test per request).
"""

from __future__ import annotations

try:
    from __pypy__ import add_memory_pressure
except ImportError:  # CPython: freed as soon as unreachable
    add_memory_pressure = None

SSL_CONNECTION_BYTES = 256 * 1024  # a hint, see above: what bounded the growth best
CONNECTION_BYTES = 16 * 1024  # a hint for any accepted client connection, see above
REQUEST_BYTES = 1024  # a hint for each request (its socket calls' raw buffers)
FIREWALL_BYTES = 16 * 1024  # a hint for each firewall transaction (its regex and body work)


def tls_connection_created() -> None:
    """Account for one new ``SSL.Connection`` (call it where each one is made)."""
    if add_memory_pressure is not None:
        add_memory_pressure(SSL_CONNECTION_BYTES)


def connection_accepted() -> None:
    """Account for one accepted client connection (``server.admission.admit``)."""
    if add_memory_pressure is not None:
        add_memory_pressure(CONNECTION_BYTES)


def request_started() -> None:
    """Account for one request (``ProxyRequest``: HTTP/1.1, HTTP/2, background)."""
    if add_memory_pressure is not None:
        add_memory_pressure(REQUEST_BYTES)


def firewall_transaction() -> None:
    """Account for one firewall transaction (``firewall.hook``, where each request's is
    made)."""
    if add_memory_pressure is not None:
        add_memory_pressure(FIREWALL_BYTES)
