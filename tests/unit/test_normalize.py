"""Tests for revproxy.routing.normalize: canonical paths, and refusal of ambiguous ones."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.http1.errors import ProtocolError
from revproxy.routing.normalize import Target, normalize_target

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def refused(target: bytes, **kwargs: bool) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        normalize_target(target, **kwargs)
    assert info.value.status == 400
    return info.value


class TestForms:
    def test_origin_form_splits_path_and_raw_query(self) -> None:
        """The query is split off at the first '?' and returned untouched."""
        assert normalize_target(b"/a/b?x=%2f&y=/../") == Target("/a/b", "x=%2f&y=/../")

    def test_no_query_is_none_and_empty_query_is_empty(self) -> None:
        """A missing query and an empty query are told apart."""
        assert normalize_target(b"/a").query is None
        assert normalize_target(b"/a?").query == ""

    def test_absolute_form_keeps_path_and_query(self) -> None:
        """Absolute-form drops scheme and authority, keeping path and query."""
        assert normalize_target(b"http://example.com:8080/a/./b?q") == Target("/a/b", "q")
        assert normalize_target(b"HTTPS://example.com/x") == Target("/x", None)

    def test_absolute_form_with_empty_path_is_root(self) -> None:
        """An authority with no path means '/'."""
        assert normalize_target(b"http://example.com") == Target("/", None)
        assert normalize_target(b"http://example.com?q=1") == Target("/", "q=1")

    def test_asterisk_form(self) -> None:
        """'*' (OPTIONS *) is passed through as the path '*'."""
        assert normalize_target(b"*") == Target("*", None)

    @pytest.mark.parametrize(
        "target", [b"a/b", b"", b"example.com:443", b"ftp://host/x", b"http:/x", b"**"]
    )
    def test_other_forms_are_refused(self, target: bytes) -> None:
        """Relative paths, authority-form and non-HTTP schemes are refused."""
        refused(target)


class TestEscapes:
    def test_unreserved_escapes_are_decoded(self) -> None:
        """%41 -> 'A', %7e -> '~', %2d -> '-': unreserved characters are decoded."""
        assert normalize_target(b"/%41%7e%2d%5F%2e%30").path == "/A~-_.0"

    def test_other_escapes_are_kept_with_upper_case_hex(self) -> None:
        """Reserved and non-ASCII escapes stay encoded, hex digits upper-cased."""
        assert normalize_target(b"/a%3fb%25c%c3%a9%20").path == "/a%3Fb%25c%C3%A9%20"

    @pytest.mark.parametrize("target", [b"/%zz", b"/%4", b"/a%", b"/%4g", b"/%%41"])
    def test_malformed_escapes_are_refused(self, target: bytes) -> None:
        """A '%' not followed by two hex digits is a 400."""
        refused(target)

    def test_encoded_nul_is_refused(self) -> None:
        """%00 is refused even when encoded slashes are allowed."""
        refused(b"/a%00b", allow_encoded_slash=True)

    @pytest.mark.parametrize("target", [b"/a%2Fb", b"/a%2fb", b"/a%5Cb", b"/a%5cb"])
    def test_encoded_slash_and_backslash_refused_by_default(self, target: bytes) -> None:
        """%2F / %5C would become separators the router never saw."""
        refused(target)

    def test_encoded_slash_kept_encoded_when_allowed(self) -> None:
        """With allow_encoded_slash the escape survives, upper-cased, and is not a separator."""
        result = normalize_target(b"/a%2f..%5c/b", allow_encoded_slash=True)
        assert result.path == "/a%2F..%5C/b"

    def test_raw_backslash_is_refused(self) -> None:
        """A raw backslash is refused (some backends treat it as '/')."""
        refused(b"/a\\..\\b")

    @pytest.mark.parametrize("target", [b"/a b", b"/a\x7f", b"/\xc3\xa9", b"/a\tb", b"/\x00"])
    def test_non_visible_bytes_are_refused(self, target: bytes) -> None:
        """Bytes outside visible ASCII never reach the path."""
        refused(target)

    @pytest.mark.parametrize("target", [b"/a#b", b"/a?x#y", b"http://h/#"])
    def test_fragment_is_refused(self, target: bytes) -> None:
        """A '#' anywhere in the target is refused (clients never send fragments)."""
        refused(target)


class TestDotSegments:
    @pytest.mark.parametrize(
        "target, path",
        [
            (b"/a/./b", "/a/b"),
            (b"/a/b/../c", "/a/c"),
            (b"/a/b/..", "/a/"),
            (b"/a/b/.", "/a/b/"),
            (b"/.", "/"),
            (b"/a/..", "/"),
            (b"/a/%2e%2E/b", "/b"),
            (b"/a/.%2e/b", "/b"),
            (b"/a/%2E/b", "/a/b"),
            (b"/a/.../b", "/a/.../b"),
            (b"/a/..b/.c", "/a/..b/.c"),
        ],
    )
    def test_dot_segments_are_removed(self, target: bytes, path: str) -> None:
        """RFC 3986 §5.2.4, applied after decoding %2E."""
        assert normalize_target(target).path == path

    def test_empty_segments_are_kept(self) -> None:
        """'//' is preserved; '..' after an empty segment removes just that segment."""
        assert normalize_target(b"//a//b/").path == "//a//b/"
        assert normalize_target(b"/a//../b").path == "/a/b"

    @pytest.mark.parametrize(
        "target", [b"/..", b"/../x", b"/a/../../x", b"/%2e%2e/x", b"/./../x", b"http://h/.."]
    )
    def test_climbing_above_root_is_refused(self, target: bytes) -> None:
        """A path that escapes the root is a 400, never clamped."""
        assert "root" in refused(target).reason


# --- properties ------------------------------------------------------------------

_SEGMENT_PARTS = st.sampled_from(
    ["a", "B", "..", ".", "", "%2e", "%2E", "%2e%2e", ".%2E", "%41", "%7e", "%3f", "%C3%a9",
     "%25", "~", "x.y", ":", "@", "%20", "%61", "%42", "b"]
)
_SEGMENTS = st.lists(st.lists(_SEGMENT_PARTS, max_size=3).map("".join), max_size=8)
PATHS = _SEGMENTS.map(lambda segs: "/" + "/".join(segs))


def _try(path: str) -> str | None:
    try:
        return normalize_target(path.encode("ascii")).path
    except ProtocolError:
        return None


def _decoded_segments(path: str) -> list[str]:
    """Reference: fully percent-decode each segment, then resolve dots naively."""
    out: list[str] = []
    for seg in path.split("/")[1:]:
        seg = re.sub("%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), seg)
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    return out


@settings(max_examples=200)
@given(PATHS)
def test_normalising_is_idempotent(path: str) -> None:
    """normalize(normalize(p)) == normalize(p)."""
    once = _try(path)
    if once is not None:
        assert normalize_target(once.encode("ascii")).path == once


@settings(max_examples=200)
@given(PATHS)
def test_output_has_no_dot_segments(path: str) -> None:
    """No '.' or '..' segment survives normalisation."""
    once = _try(path)
    if once is not None:
        assert "." not in once.split("/") and ".." not in once.split("/")


@settings(max_examples=200)
@given(PATHS)
def test_output_has_no_escaped_unreserved_chars(path: str) -> None:
    """Every remaining escape has upper-case hex and names a non-unreserved character."""
    once = _try(path)
    if once is not None:
        for digits in re.findall("%(..)", once):
            assert digits == digits.upper()
            assert chr(int(digits, 16)) not in UNRESERVED


@settings(max_examples=200)
@given(PATHS, st.sampled_from(["/a", "/a/", "/a/B", "/A/a", "/B/"]))
def test_prefix_cannot_be_bypassed_by_encoding(path: str, prefix: str) -> None:
    """If the decoded path starts with P's segments, the normalised path starts with P."""
    once = _try(path)
    want = prefix.strip("/").split("/")
    decoded = _decoded_segments(path)
    needs_more = prefix.endswith("/")
    if once is not None and decoded[: len(want)] == want:
        if not needs_more or len(decoded) > len(want):
            assert once.startswith(prefix)


@settings(max_examples=200)
@given(PATHS, st.sampled_from(["/a/", "/A/", "/a/B/", "/B/"]))
def test_normalised_prefix_really_is_a_decoded_prefix(path: str, prefix: str) -> None:
    """When the normalised path starts with P, its decoded segments start with P's."""
    once = _try(path)
    if once is not None and once.startswith(prefix):
        want = prefix.strip("/").split("/")
        assert _decoded_segments(path)[: len(want)] == want
