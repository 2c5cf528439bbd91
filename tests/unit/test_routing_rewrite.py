"""revproxy.routing.rewrite and templates: targets built from the original bytes, Location
back, the template language; hypothesis: a rewritten target always passes the strict parser."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revproxy.config.routing_keys import path_template, query_template, url_template
from revproxy.http1.startline import parse_request_line
from revproxy.routing.normalize import normalize_target
from revproxy.routing.rewrite import (
    DROP, TargetRewrite, location_back, split_target, strip_raw_prefix,
)
from revproxy.routing.templates import TemplateValues, compile_template


def values_for(target: bytes, **extra) -> TemplateValues:
    path, query = split_target(target)
    norm = normalize_target(target, True).path
    fields = dict(host=b"example.test", path=norm.encode(), uri=target, query=query or b"",
                  request_id=b"rid", client_ip=b"127.0.0.1", route=b"r")
    fields.update(extra)
    return TemplateValues(**fields)


def rewrite(target: bytes, **kwargs) -> bytes:
    stage = TargetRewrite(**kwargs)
    path = normalize_target(target, True).path
    captures = stage.captures(path)
    values = values_for(target, captures=captures or ())
    return stage.target(target, path, values, captures is not None)


# --- strip_prefix on raw bytes --------------------------------------------------------------
@pytest.mark.parametrize("target, expected", [
    (b"/api/%7euser/x", b"/%7euser/x"),  # the client's escape, as sent
    (b"/api", b"/"),
    (b"/api/", b"/"),
    (b"/apix", b"/x"),  # Traefik's StripPrefix gives a leading slash too
    (b"/%61pi/x", b"/x"),  # raw bytes differ: the normalised rest
    (b"/api/../api/x", b"/x"),  # raw rest would climb above the root: normalised rest
    (b"/api/a%2fb", b"/a%2fb"),
    (b"/other", b"/other"),  # not under the prefix: untouched
])
def test_strip_prefix_uses_raw_bytes_when_unambiguous(target, expected):
    """strip_prefix keeps the raw rest when it normalises to the same path, else the
    normalised rest (never a path the backend would resolve differently)."""
    path = normalize_target(target, True).path
    assert strip_raw_prefix(split_target(target)[0], path, "/api") == expected


def test_strip_and_add_prefix_keep_query():
    """/api/x?q=%41 with strip /api, add /v1 -> /v1/x?q=%41 (query bytes untouched)."""
    assert rewrite(b"/api/x?q=%41", strip_prefix="/api", add_prefix="/v1") == b"/v1/x?q=%41"


def test_add_prefix_joins_with_one_slash():
    """add_prefix "/v1/" on "/x" gives "/v1/x", on "/" gives "/v1/"."""
    assert rewrite(b"/x", add_prefix="/v1/") == b"/v1/x"
    assert rewrite(b"/", add_prefix="/v1") == b"/v1/"


def test_regex_rewrite_with_captures():
    """rewrite ^/old/(.*)$ -> /new/$1 on the normalised path; no match leaves the raw path."""
    kwargs = dict(regex=re.compile("^/old/(.*)$"), replace=path_template("/new/$1"))
    assert rewrite(b"/old/%7ea?x=1", **kwargs) == b"/new/~a?x=1"
    assert rewrite(b"/other/%7ea", **kwargs) == b"/other/%7ea"


def test_set_path_and_query_template():
    """set_path renders a template; the query template replaces the query."""
    assert rewrite(b"/a?b=1", set_path=path_template("/fixed/{route}"),
                   query=query_template("v=2&{query}")) == b"/fixed/r?v=2&b=1"
    assert rewrite(b"/a?b=1", query=DROP) == b"/a"
    assert rewrite(b"/a", query=query_template("{query}")) == b"/a"


def test_values_that_would_end_the_path_are_encoded():
    """A Host with odd bytes substituted in a path cannot add a query or a fragment."""
    stage = TargetRewrite(set_path=path_template("/h/{host}"))
    values = values_for(b"/x", host=b"a?b#c d%")
    assert stage.target(b"/x", "/x", values) == b"/h/a%3Fb%23c%20d%25"


TARGET_BYTES = st.sampled_from(list(b"abz09-._~%/?=&+:@!$'()*,;") + [0x41, 0x7e])
RAW_TARGETS = st.lists(TARGET_BYTES, max_size=30).map(lambda items: b"/" + bytes(items))
TEMPLATES = st.sampled_from([
    "/{path}", "/x/$1", "/{host}/{client_ip}", "/{uri}", "/a/{query}", "{path}", "/{request_id}",
])


def _normalisable(target: bytes) -> bool:
    try:
        normalize_target(target, True)
        return True
    except Exception:
        return False


@given(RAW_TARGETS, TEMPLATES, st.sampled_from(["/api", "/a", "/"]),
       st.sampled_from([None, "/v1", "/v1/"]),
       st.binary(max_size=12), st.binary(max_size=12))
def test_rewritten_target_passes_the_strict_parser(target, template, prefix, add, host, rid):
    """Whatever the request and the values, every rewrite gives a target the strict
    request-line parser accepts, starting with "/" and without a fragment."""
    if not _normalisable(target):
        return
    path = normalize_target(target, True).path
    values = values_for(target, host=host, request_id=rid, captures=("c?#",))
    for stage in (
        TargetRewrite(strip_prefix=prefix, add_prefix=add),
        TargetRewrite(set_path=path_template(template), query=query_template("k={host}")),
        TargetRewrite(regex=re.compile("^/(.*)$"), replace=path_template(template),
                      add_prefix=add),
    ):
        matched = stage.regex is not None
        out = stage.target(target, path, values, matched)
        method, parsed, _ = parse_request_line(b"GET " + out + b" HTTP/1.1", 8192)
        assert parsed == out
        assert out.startswith(b"/") and b"#" not in out
        assert b"?" not in split_target(out)[0]


# --- templates ----------------------------------------------------------------------------------
def test_template_placeholders_and_escapes():
    """Names, $N and {N} captures, {{ }} and $$ literals."""
    template = compile_template("{scheme}://{host}{path} $1{2} {{x}} $$")
    values = TemplateValues(host=b"h", path=b"/p", scheme=b"https", captures=("a", None))
    assert template.render(values) == b"https://h/p a {x} $"


@pytest.mark.parametrize("text, fragment", [
    ("{nope}", "unknown name"),
    ("{member}", "not available here"),
    ("a}b", "unbalanced"),
    ("a\r\nb", "control characters"),
    ("$0", "numbered from 1"),
])
def test_template_refused_at_load(text, fragment):
    """A bad template fails at compile time with the reason."""
    with pytest.raises(ValueError, match=fragment):
        compile_template(text)


def test_template_render_refuses_crlf():
    """A value carrying CR/LF is refused at render (no header splitting), never written."""
    with pytest.raises(ValueError):
        compile_template("x-{host}").render(TemplateValues(host=b"a\r\nb: c"))


def test_path_literal_refuses_query_marks():
    """A path template's own text may not contain ? or #."""
    with pytest.raises(ValueError, match="not allowed"):
        path_template("/a?b")


def test_url_template_encodes_spaces():
    assert url_template("https://{host}/").render(TemplateValues(host=b"a b")) == b"https://a%20b/"


# --- Location back ------------------------------------------------------------------------------
def back(value, strip=b"/api", add=b"/v1", hosts=(b"10.0.0.5:8080",)):
    return location_back(value, upstream_hosts=set(hosts), client_scheme=b"https",
                         client_host=b"example.test", strip_prefix=strip, add_prefix=add)


@pytest.mark.parametrize("value, expected", [
    (b"http://10.0.0.5:8080/v1/x?y=1", b"https://example.test/api/x?y=1"),
    (b"/v1/x", b"/api/x"),
    (b"/v1", b"/api/"),
    (b"/v1x", b"/v1x"),  # not under the added prefix
    (b"https://else.test/v1/x", b"https://else.test/v1/x"),  # elsewhere: untouched
    (b"other/x", b"other/x"),  # relative path: untouched
    (b"//evil.test/v1", b"//evil.test/v1"),
])
def test_location_back(value, expected):
    """Location naming the upstream and the added prefix goes back to the client's view."""
    assert back(value) == expected


def test_location_back_strip_only():
    """Only strip_prefix: the stripped prefix is put back in front."""
    assert back(b"/x", add=None) == b"/api/x"
