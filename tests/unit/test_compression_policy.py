"""Which responses are compressed and how their fields change (revproxy.compression.policy)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from revproxy.compression import encoders
from revproxy.compression.policy import RoutePolicy, plan, policy_for, weak
from revproxy.compression.stage import begin
from revproxy.config.model import Compression
from revproxy.config.routemodel import Route
from revproxy.http1.heads import CHUNKED, LENGTH, NO_BODY, RequestHead, ResponseHead

POLICY = RoutePolicy(("gzip",), {"gzip": 5, "br": 4, "zstd": 3},
                     ("text/*", "application/json", "image/svg+xml", "text/event-stream"), 1024)
GZ = [(b"accept-encoding", b"gzip")]
HTML = [(b"content-type", b"text/html; charset=utf-8"), (b"etag", b'"v1"'),
        (b"content-length", b"5000"), (b"accept-ranges", b"bytes")]


def names(headers):
    return [k for k, _ in headers]


def value(headers, name):
    found = [v for k, v in headers if k == name]
    return found[0] if found else None


def test_compressed_head_loses_length_and_gets_coding_vary_weak_etag():
    """gzip chosen: Content-Encoding set, Content-Length and Accept-Ranges gone, Vary added,
    the strong ETag weakened (RFC 9110 §8.8.3)."""
    result = plan(POLICY, GZ, 200, HTML, 5000)
    assert result.coding == b"gzip"
    assert value(result.headers, b"content-encoding") == b"gzip"
    assert b"content-length" not in names(result.headers)
    assert b"accept-ranges" not in names(result.headers)
    assert value(result.headers, b"vary") == b"Accept-Encoding"
    assert value(result.headers, b"etag") == b'W/"v1"'


def test_client_without_gzip_gets_identity_with_vary():
    """A compressible response to a client that refuses gzip: untouched except Vary."""
    result = plan(POLICY, [(b"accept-encoding", b"br")], 200, HTML, 5000)
    assert result.coding is None
    assert result.headers == HTML + [(b"vary", b"Accept-Encoding")]


def test_existing_vary_is_merged_not_duplicated():
    """Vary already naming Accept-Encoding stays as is; another Vary keeps its line."""
    result = plan(POLICY, GZ, 200, HTML + [(b"vary", b"Cookie, accept-encoding")], 5000)
    assert [v for k, v in result.headers if k == b"vary"] == [b"Cookie, accept-encoding"]
    result = plan(POLICY, GZ, 200, HTML + [(b"vary", b"Cookie")], 5000)
    assert [v for k, v in result.headers if k == b"vary"] == [b"Cookie", b"Accept-Encoding"]


def test_weak_etag_stays_weak():
    assert weak(b'W/"a"') == b'W/"a"'
    assert weak(b'"a"') == b'W/"a"'


@pytest.mark.parametrize("status", [101, 204, 206, 100])
def test_statuses_never_transformed(status):
    """1xx, 204 and 206 go on untouched."""
    assert plan(POLICY, GZ, status, HTML, 5000) is None


@pytest.mark.parametrize("extra,req", [
    ([(b"content-encoding", b"br")], []),
    ([(b"cache-control", b"public, No-Transform")], []),
    ([], [(b"range", b"bytes=0-10")]),
])
def test_refusals(extra, req):
    """Already encoded, no-transform, a Range request: untouched (not even Vary)."""
    assert plan(POLICY, GZ + req, 200, HTML + extra, 5000) is None


@pytest.mark.parametrize("ctype,expected", [
    (b"text/html", True), (b"TEXT/CSS; charset=x", True), (b"application/json", True),
    (b"image/svg+xml", True), (b"image/png", False), (b"video/mp4", False),
    (b"application/zip", False), (b"application/octet-stream", False), (None, False),
    (b"text/event-stream", True),
])
def test_types(ctype, expected):
    """The route's types (type/* wildcards) minus the already-compressed types."""
    headers = [(b"content-type", ctype)] if ctype is not None else []
    assert (plan(POLICY, GZ, 200, headers, None) is not None) is expected


def test_never_list_beats_a_wildcard_in_config():
    """image/* in the config still never compresses PNG, but does SVG."""
    policy = RoutePolicy(("gzip",), {"gzip": 5}, ("image/*",), 0)
    assert plan(policy, GZ, 200, [(b"content-type", b"image/png")], None) is None
    assert plan(policy, GZ, 200, [(b"content-type", b"image/svg+xml")], None).coding == b"gzip"


def test_event_stream_needs_naming_exactly():
    """text/* does not pull in text/event-stream; naming it does."""
    policy = RoutePolicy(("gzip",), {"gzip": 5}, ("text/*",), 0)
    assert plan(policy, GZ, 200, [(b"content-type", b"text/event-stream")], None) is None


def test_min_size_applies_to_known_lengths_only():
    """Under min_size with a known length: untouched; unknown length: compressed."""
    assert plan(POLICY, GZ, 200, HTML, 1023) is None
    assert plan(POLICY, GZ, 200, HTML, 1024).coding == b"gzip"
    assert plan(POLICY, GZ, 200, HTML, None).coding == b"gzip"


def test_304_weakened_only_when_the_validator_was_weak():
    """A 304 whose ETag the conditional request named W/ (our compressed copy) is weakened
    and gets Vary; a 304 validating a strong copy is left alone."""
    head = [(b"etag", b'"v1"'), (b"cache-control", b"max-age=60")]
    result = plan(POLICY, GZ, 304, head, None, [b'W/"v1"'])
    assert value(result.headers, b"etag") == b'W/"v1"'
    assert value(result.headers, b"vary") == b"Accept-Encoding"
    assert plan(POLICY, GZ, 304, head, None, [b'"v1"']) is None
    assert plan(POLICY, [], 304, head, None, [b'W/"v1"']) is None


def test_policy_for_takes_route_overrides_and_installed_codings_only():
    """Route keys override [compression]; a coding not installed is not offered."""
    route = Route(name="r", pool="p", compress=True, compress_types=("text/plain",),
                  compress_min_size=10, compress_level=9)
    policy = policy_for(Compression(codings=("zstd", "br", "gzip")), route)
    assert policy.min_size == 10 and policy.levels["gzip"] == 9
    assert policy.types == frozenset([b"text/plain"])
    have = encoders.available()
    assert policy.codings == tuple(c.encode() for c in ("zstd", "br", "gzip") if c in have)


def _request(method=b"GET", headers=GZ):
    return RequestHead(method, b"/", b"1.1", headers, b"a")


def test_begin_compresses_the_body_in_pieces():
    """The stage encodes piece by piece; the pieces decode to the original."""
    response = ResponseHead(200, b"OK", b"1.1", HTML, LENGTH, 5000)
    head, stage = begin(POLICY, _request(), response)
    assert head.framing == CHUNKED and head.content_length is None
    body = b"<p>hello world</p>" * 300
    out = b"".join([stage.data(body[:2000]), stage.flush(), stage.data(body[2000:]), stage.end()])
    assert gzip.decompress(out) == body


def test_flush_makes_everything_so_far_decodable():
    """After flush the client can decode every byte fed so far (a live stream)."""
    response = ResponseHead(200, b"OK", b"1.1", HTML, CHUNKED, None)
    _, stage = begin(POLICY, _request(), response)
    sent = stage.data(b"event one\n") + stage.flush()
    assert zlib.decompressobj(31).decompress(sent) == b"event one\n"
    assert stage.flush() == b""  # nothing new: no empty block


def test_head_request_gets_get_fields_without_encoder():
    """HEAD: the fields a GET would get, no encoder (there is no body)."""
    response = ResponseHead(200, b"OK", b"1.1", HTML, NO_BODY, None)
    head, stage = begin(POLICY, _request(b"HEAD"), response)
    assert stage is None
    assert value(head.headers, b"content-encoding") == b"gzip"
    assert b"content-length" not in names(head.headers)


def test_untouched_head_is_the_same_object():
    """Nothing applies: the backend's head goes on as it is (no copy)."""
    response = ResponseHead(200, b"OK", b"1.1", [(b"content-type", b"image/png")], LENGTH, 5000)
    head, stage = begin(POLICY, _request(), response)
    assert head is response and stage is None
