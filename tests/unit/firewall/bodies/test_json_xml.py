"""JSON (Coraza-style flattened args) and XML (safe expat, XPath subset) bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.bodies import compile_xpath, parse_json, parse_xml


def pj(data, **kw):
    kw.setdefault("max_args", 100)
    kw.setdefault("max_depth", 1024)
    return parse_json(data, **kw)


def test_json_keys_flattened_with_json_prefix_and_array_indexes():
    """Objects give json.a.b, arrays json.c.N; values raw numbers, true/false, null empty."""
    result = pj(b'{"a": {"b": 1}, "c": [true, null, -1.5e3, "x\\u00e9"], "e": {}, "f": []}')
    assert result.args == ((b"json.a.b", b"1"), (b"json.c.0", b"true"), (b"json.c.1", b""),
                           (b"json.c.2", b"-1.5e3"), (b"json.c.3", b"x\xc3\xa9"))
    assert result.flags == {"REQBODY_ERROR": 0, "REQBODY_PROCESSOR_ERROR": 0}


def test_json_key_names_kept_verbatim():
    """The CRS 942362 case: an odd key is an ARGS name 'json.; select'."""
    assert pj(b'{ "; select": "foo" }\n').args == ((b"json.; select", b"foo"),)


def test_json_top_level_scalar_array_and_duplicates():
    """A scalar document is 'json'; top-level arrays json.N; duplicate keys all kept."""
    assert pj(b"5").args == ((b"json", b"5"),)
    assert pj(b"[1,[2]]").args == ((b"json.0", b"1"), (b"json.1.0", b"2"))
    assert pj(b'{"a":1,"a":2}').args == ((b"json.a", b"1"), (b"json.a", b"2"))


@pytest.mark.parametrize("bad", [b"", b"{", b'{"a":1,}', b"[1 2]", b"{'a':1}", b"NaN",
                                 b'{"a":1} x', b'"\xff"', b'"a\x01"', b"01", b"\xef\xbb\xbf{}"])
def test_json_invalid_is_reqbody_error(bad):
    """Invalid JSON sets REQBODY_ERROR / REQBODY_PROCESSOR_ERROR and a message."""
    result = pj(bad)
    assert result.flags["REQBODY_ERROR"] == 1 == result.flags["REQBODY_PROCESSOR_ERROR"]
    assert result.error.startswith(b"JSON parsing error")


def test_json_depth_bound_without_recursion():
    """Nesting past max_depth is an error, at any depth (no interpreter recursion)."""
    assert pj(b"[" * 5 + b"]" * 5, max_depth=5).flags["REQBODY_ERROR"] == 0
    assert b"nesting" in pj(b"[" * 6 + b"]" * 6, max_depth=5).error
    assert pj(b"[" * 100000, max_depth=10 ** 6).flags["REQBODY_ERROR"] == 1


def test_json_args_limit():
    """Past max_args the values are dropped and ARGS_LIMIT_EXCEEDED raised."""
    result = pj(b"[1,2,3]", max_args=2)
    assert result.args == ((b"json.0", b"1"), (b"json.1", b"2"))
    assert result.flags["ARGS_LIMIT_EXCEEDED"] == 1 and result.flags["REQBODY_ERROR"] == 0


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=20)


def _flatten(value, path="json"):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, path + "." + key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(item, "%s.%d" % (path, index))
    elif value is None:
        yield path, ""
    elif isinstance(value, bool):
        yield path, "true" if value else "false"
    else:
        yield path, str(value)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_json_agrees_with_stdlib(document):
    """Any document json.dumps writes flattens to the keys and values of its tree."""
    result = pj(json.dumps(document).encode())
    expected = [(k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
                for k, v in _flatten(document)]
    assert list(result.args) == expected and result.error == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_json_never_raises(data):
    """Arbitrary bytes never raise; error iff the stdlib also refuses (for valid UTF-8)."""
    result = pj(data, max_args=10)
    assert len(result.args) <= 10
    try:
        json.loads(data.decode("utf-8"), parse_constant=lambda c: 1 / 0)
        stdlib_ok = not data.startswith(b"\xef\xbb\xbf")
    except (ValueError, ZeroDivisionError, RecursionError):
        stdlib_ok = False
    assert (result.flags["REQBODY_ERROR"] == 0) == stdlib_ok


DOC = (b'<?xml version="1.0"?><root><a probe="1234 AS &quot;x&quot;">one <b k="v">two</b>'
       b'</a><c><![CDATA[<three>]]></c>\n</root>')


def test_xml_text_nodes_and_attributes():
    """XML:/* gives the trimmed text nodes, XML://@* the attribute values."""
    result = parse_xml(DOC, max_bytes=1 << 20)
    assert result.flags == {"REQBODY_ERROR": 0, "REQBODY_PROCESSOR_ERROR": 0}
    assert result.xml.xpath("/*") == [b"one", b"two", b"<three>"]
    assert result.xml.xpath("//@*") == [b'1234 AS "x"', b"v"]


def test_xml_paths_give_element_content_and_attributes():
    """Absolute and // paths select elements (descendant text) or their attributes."""
    doc = parse_xml(DOC, max_bytes=1 << 20).xml
    assert doc.xpath("/root/a") == [b"one two"]
    assert doc.xpath("//b") == [b"two"] == doc.xpath("/root/*/b/text()")
    assert doc.xpath("/root/a/@probe") == [b'1234 AS "x"']
    assert doc.xpath("//b/@*") == [b"v"] and doc.xpath("//@k") == [b"v"]
    assert doc.xpath("/a") == []


@pytest.mark.parametrize("expr", ["", "a", "//a[1]", "count(//a)", "/a//b", "//a/@x/y"])
def test_xpath_outside_the_subset_is_refused(expr):
    """Unsupported XPath raises ValueError (at rule load)."""
    with pytest.raises(ValueError):
        compile_xpath(expr)


@pytest.mark.parametrize("bad, message", [
    (b'<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>', b"entity"),
    (b'<!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]><l>&x;</l>', b"entity"),
    (b"<a>" * 300 + b"</a>" * 300, b"nesting"),
    (b"<a><b></a>", b"mismatched"),
    (b"not xml", b"XML parsing error"),
])
def test_xml_refusals(bad, message):
    """Entity declarations, deep nesting and malformed XML are REQBODY_ERROR."""
    result = parse_xml(bad, max_bytes=1 << 20)
    assert result.flags["REQBODY_ERROR"] == 1 and message in result.error


def test_xml_size_bound():
    """A body over max_bytes is not parsed."""
    assert b"limit" in parse_xml(DOC, max_bytes=10).error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_xml_never_raises(data):
    """Arbitrary bytes (also behind a valid prefix) never raise."""
    for body in (data, b"<r a='1'>" + data):
        result = parse_xml(body, max_bytes=1000)
        assert result.flags["REQBODY_ERROR"] in (0, 1)
        result.xml.xpath("/*"), result.xml.xpath("//@*"), result.xml.xpath("//r")
