"""Choosing the body processor, and the CRS regression corpus's bodies through it."""

from __future__ import annotations

import base64
import functools
import os

import pytest

from revproxy.firewall.seclang.bodies import BodyLimits, PROCESSORS, process_body, select_processor

# ../shared/crs-v4.28.0 beside the checkout (tests/unit/firewall/bodies is 4 levels down).
CRS_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5,
                         "shared", "crs-v4.28.0", "tests", "regression", "tests")


@pytest.mark.parametrize("content_type, expected", [
    (b"application/x-www-form-urlencoded", "URLENCODED"),
    (b"Application/X-WWW-Form-URLEncoded; charset=UTF-8", "URLENCODED"),
    (b"multipart/form-data; boundary=x", "MULTIPART"),
    (b"multipart/form-dataXYZ", "MULTIPART"),  # prefix, as ModSecurity; strictness later
    (b"application/json", "JSON"), (b"application/json; charset=utf-8", "JSON"),
    (b"text/xml", "XML"), (b"application/xml", "XML"), (b"application/soap+xml", "XML"),
    (b"text/plain", None), (b"", None), (b"application/jsonp", "JSON"),
])
def test_select_processor_like_modsecurity_recommended(content_type, expected):
    """Content-Type picks URLENCODED / MULTIPART, and JSON / XML as rules 200000/200001."""
    assert select_processor(content_type) == expected


def test_bare_engine_picks_no_json_or_xml():
    """json_xml=False leaves JSON and XML to ctl:requestBodyProcessor."""
    assert select_processor(b"application/json", json_xml=False) is None
    assert select_processor(b"text/xml", json_xml=False) is None


def test_forced_processor_wins_and_empty_body_is_not_parsed():
    """ctl:requestBodyProcessor overrides the Content-Type; an empty body parses to nothing."""
    forced = process_body(b"text/plain", b'{"a":"b"}', processor="json")
    assert forced.args == ((b"json.a", b"b"),)
    assert process_body(b"application/json", b"").flags == {}
    assert process_body(b"text/plain", b"a=b").args == ()
    assert process_body(b"text/plain", b"a=b", processor="RAW").args == ()
    assert "RAW" in PROCESSORS and "JSON" in PROCESSORS


def test_unknown_processor_is_an_error_not_an_exception():
    """A processor name outside PROCESSORS gives REQBODY_ERROR."""
    assert process_body(b"", b"x", processor="YAML").flags["REQBODY_ERROR"] == 1


def test_limits_are_passed_through():
    """BodyLimits bound each processor."""
    limits = BodyLimits(max_args=1, max_depth=1, max_xml_bytes=3)
    assert len(process_body(b"application/x-www-form-urlencoded", b"a=1&b=2", limits=limits).args) == 1
    assert process_body(b"application/json", b"[[1]]", limits=limits).flags["REQBODY_ERROR"] == 1
    assert process_body(b"text/xml", b"<a/>", limits=limits).flags["REQBODY_ERROR"] == 1


def _crs_requests():
    yaml = pytest.importorskip("yaml")
    if not os.path.isdir(CRS_TESTS):
        pytest.skip("the CRS v4.28.0 regression tests are not at %s" % CRS_TESTS)
    return _load_requests(yaml)


@functools.lru_cache(maxsize=1)
def _load_requests(yaml):
    return list(_walk_requests(yaml))


def _walk_requests(yaml):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for root, _, files in os.walk(CRS_TESTS):
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            with open(os.path.join(root, name), "rb") as handle:
                document = yaml.load(handle, Loader=loader)
            for test in (document or {}).get("tests", []):
                for stage in test.get("stages", []):
                    request = stage.get("input", {})
                    yield name, test.get("test_id"), request


def _body_and_type(request):
    if "encoded_request" in request:
        raw = base64.b64decode(request["encoded_request"])
        head, _, body = raw.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-type:"):
                return body, line.split(b":", 1)[1].strip()
        return body, b""
    headers = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
    data = request.get("data")
    if data is None:
        return None, b""
    if isinstance(data, list):
        data = "".join(data)
    return data.encode("utf-8", "surrogateescape"), str(headers.get("content-type", "")).encode("utf-8", "surrogateescape")


def test_crs_regression_bodies_parse_without_raising():
    """Every body in the CRS 4 regression tests parses; multipart ones give named parts."""
    seen = multipart = 0
    for name, test_id, request in _crs_requests():
        body, content_type = _body_and_type(request)
        if not body:
            continue
        result = process_body(content_type, body)
        seen += 1
        if select_processor(content_type) == "MULTIPART" and not result.error:
            multipart += 1
            if b"content-disposition" in body.lower():
                assert result.args or result.files or result.part_headers, (name, test_id)
    assert seen > 100 and multipart > 10


def test_crs_922110_style_bodies_expose_every_part_content_type():
    """Each part's Content-Type is in MULTIPART_PART_HEADERS (rule 922150 collects them)."""
    hits = 0
    for name, test_id, request in _crs_requests():
        if not name.startswith("922110"):
            continue
        body, content_type = _body_and_type(request)
        if not body or select_processor(content_type) != "MULTIPART":
            continue
        result = process_body(content_type, body)
        declared = body.lower().count(b"\ncontent-type:")
        found = sum(1 for _, line in result.part_headers if line.lower().startswith(b"content-type"))
        assert found == declared, (test_id, result.error)
        hits += 1
    assert hits > 3
