"""HTTP/2 to clients, on the h2 library (sans-IO): one more client protocol feeding the same
request pipeline as HTTP/1.1 (``revproxy.server``). See docs/http2.md."""

from __future__ import annotations

from revproxy.http2.connection import H2ServerConnection

__all__ = ["H2ServerConnection"]
