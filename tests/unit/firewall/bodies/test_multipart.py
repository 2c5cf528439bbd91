"""multipart/form-data: strict parsing with ModSecurity's flags, args, files, part headers."""

from __future__ import annotations

import time

from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.bodies import parse_multipart
from revproxy.firewall.seclang.bodies.mpheaders import parse_boundary, parse_disposition

CT = b"multipart/form-data; boundary=b0undary"


def parse(body, content_type=CT, **kw):
    kw.setdefault("max_args", 100)
    kw.setdefault("max_files", 10)
    return parse_multipart(body, content_type, **kw)


def crlf(text):
    return text.replace(b"\n", b"\r\n")


CLEAN = crlf(b"""--b0undary
Content-Disposition: form-data; name="user"

alice
--b0undary
Content-Disposition: form-data; name="up"; filename="a.txt"
Content-Type: text/plain

line1
line2
--b0undary--
""")


def raised(result):
    return {k for k, v in result.flags.items() if v}


def test_clean_body_gives_args_files_headers_and_no_flags():
    """A well-formed CRLF body: the field in args, the file in files, no flag raised."""
    result = parse(CLEAN)
    assert result.args == ((b"user", b"alice"),)
    assert [(f.name, f.filename, f.size, f.content_type) for f in result.files] == [
        (b"up", b"a.txt", 12, b"text/plain")]
    assert result.part_headers == (
        (b"user", b'Content-Disposition: form-data; name="user"'),
        (b"up", b'Content-Disposition: form-data; name="up"; filename="a.txt"'),
        (b"up", b"Content-Type: text/plain"))
    assert raised(result) == set() and result.error == b""
    assert result.flags["MULTIPART_STRICT_ERROR"] == 0
    assert (result.multipart_name, result.multipart_filename) == (b"up", b"a.txt")


def test_lf_only_lines_parse_but_raise_lf_line():
    """LF line endings (the CRS test bodies) still parse; MULTIPART_LF_LINE and strict."""
    result = parse(CLEAN.replace(b"\r\n", b"\n"))
    assert result.args == ((b"user", b"alice"),) and result.files[0].size == 11
    assert raised(result) == {"MULTIPART_LF_LINE", "MULTIPART_STRICT_ERROR"}


def test_mixed_line_endings_raise_crlf_lf_lines():
    """CRLF and LF mixed: MULTIPART_CRLF_LF_LINES."""
    body = CLEAN.replace(b'name="user"\r\n', b'name="user"\n')
    assert parse(body).flags["MULTIPART_CRLF_LF_LINES"] == 1


def test_charset_part_header_is_recorded_under_its_part_name():
    """A part's Content-Type line lands in MULTIPART_PART_HEADERS keyed by its name."""
    body = crlf(b'--b0undary\nContent-Disposition: form-data; name="_charset_"\n'
                b"Content-Type: text/plain; charset=utf-7\n\nutf-7\n--b0undary--\n")
    result = parse(body)
    assert (b"_charset_", b"Content-Type: text/plain; charset=utf-7") in result.part_headers
    assert result.args == ((b"_charset_", b"utf-7"),)


def test_invalid_header_name_characters_error_but_line_kept():
    """A control byte in a header name is REQBODY_ERROR, and the raw line stays visible."""
    body = crlf(b'--b0undary\n\x0eContent-Disposition: form-data; name="file"; filename="1.php"\n'
                b'Content-Disposition: form-data; name="post"\n\n<?php\n--b0undary--')
    result = parse(body)
    assert result.flags["REQBODY_ERROR"] == 1 and result.flags["MULTIPART_STRICT_ERROR"] == 1
    assert b"contains invalid character" in result.error
    assert (b"post", b'\x0eContent-Disposition: form-data; name="file"; filename="1.php"') \
        in result.part_headers
    assert result.args == ((b"post", b"<?php"),)


def test_boundary_content_type_flags():
    """Quoted, whitespace-surrounded and semicolon-less boundaries raise their flags."""
    assert parse_boundary(b'multipart/form-data; boundary="x"') == ((b"x", {"MULTIPART_BOUNDARY_QUOTED": 1}, b""))
    assert parse_boundary(b"multipart/form-data; boundary = x").flags == {
        "MULTIPART_BOUNDARY_WHITESPACE": 1}
    assert parse_boundary(b"multipart/form-data boundary=x").flags == {
        "MULTIPART_MISSING_SEMICOLON": 1}


def test_bad_content_types_are_errors():
    """Two boundaries, a parameter after it, a half quote, none at all: REQBODY_ERROR."""
    for ct in (b"multipart/form-data; boundary=a; boundary=b",
               b"multipart/form-data; boundary=a; charset=utf-8",
               b'multipart/form-data; boundary="a', b"multipart/form-data",
               b"multipart/form-data; BOUNDARY=a", b"text/plain; boundary=a", b""):
        result = parse(CLEAN, ct)
        assert result.flags["REQBODY_ERROR"] == 1 and result.error, ct
        assert result.flags["MULTIPART_STRICT_ERROR"] == 1 and result.args == ()


def test_data_before_and_after():
    """Bytes before the first boundary / after the final one raise DATA_BEFORE / DATA_AFTER."""
    assert parse(b"junk\r\n" + CLEAN).flags["MULTIPART_DATA_BEFORE"] == 1
    assert parse(CLEAN + b"junk").flags["MULTIPART_DATA_AFTER"] == 1


def test_missing_final_boundary_and_no_boundary():
    """No final boundary: UNMATCHED_BOUNDARY 1 and an error; the open part is still read."""
    result = parse(CLEAN[:CLEAN.rindex(b"--b0undary--")])
    assert result.flags["MULTIPART_UNMATCHED_BOUNDARY"] == 1
    assert result.error == b"Multipart: Final boundary missing."
    assert result.files[0].filename == b"a.txt"
    nothing = parse(b"just text\r\n")
    assert nothing.error == b"Multipart: No boundaries found in payload."


def test_stray_dash_line_is_unmatched_boundary_2():
    """A data line beginning with '--' that is not the boundary: UNMATCHED_BOUNDARY 2."""
    body = CLEAN.replace(b"line1", b"-----BEGIN KEY-----")
    result = parse(body)
    assert result.flags["MULTIPART_UNMATCHED_BOUNDARY"] == 2
    assert result.flags["MULTIPART_STRICT_ERROR"] == 0


def test_boundary_evasions_are_errors():
    """Quoted or space-prefixed boundary lines and junk after a boundary are errors."""
    quoted = parse(CLEAN.replace(b"--b0undary\r\nContent-Disposition: form-data; name=\"up\"",
                                 b'--"b0undary"\r\nContent-Disposition: form-data; name="up"'),
                   b'multipart/form-data; boundary="b0undary"')
    assert quoted.error == b"Multipart: Invalid boundary (quotes)."
    spaced = parse(CLEAN.replace(b"--b0undary--", b"-- b0undary--"))
    assert spaced.error == b"Multipart: Invalid boundary (whitespace)."
    junk = parse(CLEAN.replace(b"--b0undary\r\nContent-Disposition: form-data; name=\"up\"",
                               b'--b0undaryX\r\nContent-Disposition: form-data; name="up"'))
    assert junk.error.startswith(b"Multipart: Invalid boundary:")


def test_header_folding_flags():
    """A folded header raises HEADER_FOLDING; folding with a non-space/tab is invalid too."""
    folded = parse(CLEAN.replace(b'name="user"', b'\r\n name="user"'))
    assert folded.flags["MULTIPART_HEADER_FOLDING"] == 1 and folded.args[0][0] == b"user"
    assert folded.flags["MULTIPART_INVALID_HEADER_FOLDING"] == 0
    bad = parse(CLEAN.replace(b'name="user"', b'\r\n\x0b name="user"'))
    assert bad.flags["MULTIPART_INVALID_HEADER_FOLDING"] == 1


def test_part_without_header_end_is_invalid_part():
    """A boundary inside a header section: the part has no name, INVALID_PART."""
    body = crlf(b'--b0undary\nContent-Disposition: form-data; name="a"\n--b0undary\n'
                b'Content-Disposition: form-data; name="b"\n\nv\n--b0undary--\n')
    result = parse(body)
    assert result.flags["MULTIPART_INVALID_PART"] == 1 and result.args == ((b"b", b"v"),)


def test_disposition_rules():
    """Single quotes are invalid quoting, unknown parameters and duplicates are faults."""
    assert parse_disposition(b"form-data; name='a'") == (b"a", None, 0, True)
    assert parse_disposition(b'form-data; name="a\\"b"; filename=c.txt') == (b'a"b', b"c.txt", 0, False)
    assert parse_disposition(b'form-data; name="a"; foo="b"').code == -11
    assert parse_disposition(b'form-data; name="a"; name="b"').code == -14
    assert parse_disposition(b'attachment; name="a"').code == -1
    assert parse_disposition(b"form-data; filename*=UTF-8''%e2%82%ac.txt; name=x").filename == \
        b"\xe2\x82\xac.txt"
    result = parse(CLEAN.replace(b'name="user"', b"name='us'er'"))
    assert result.flags["MULTIPART_INVALID_QUOTING"] == 1


def test_file_limit_and_args_limit():
    """Past max_files FILE_LIMIT_EXCEEDED (strict); past max_args the fields are dropped."""
    result = parse(CLEAN, max_files=0, max_args=0)
    assert result.flags["MULTIPART_FILE_LIMIT_EXCEEDED"] == 1
    assert result.flags["MULTIPART_STRICT_ERROR"] == 1
    assert result.args == () and result.flags["ARGS_LIMIT_EXCEEDED"] == 1


def test_header_line_bound():
    """A part header line over max_part_header bytes stops the parse with an error."""
    result = parse(CLEAN.replace(b'name="user"', b'name="user"; ' + b"x" * 5000))
    assert b"over 4096 bytes" in result.error and result.flags["REQBODY_ERROR"] == 1


def test_large_adversarial_body_is_linear():
    """2 MiB of dash lines and newlines parses in well under a second."""
    body = b"--b0undary\r\nContent-Disposition: form-data; name=a\r\n\r\n" + \
        b"\n--x" * 300000 + b"\n" * 500000 + b"\r\n--b0undary--\r\n"
    started = time.perf_counter()
    result = parse(body)
    assert time.perf_counter() - started < 5  # generous: shared CI cores
    assert result.flags["MULTIPART_UNMATCHED_BOUNDARY"] == 2 and len(result.args[0][1]) > 1e6


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)
values = st.binary(max_size=40).filter(lambda v: b"--b0undary" not in v)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(names, values, st.one_of(st.none(), names)), max_size=6))
def test_generated_bodies_parse_back_without_strict_error(parts):
    """Bodies built from parts (fields and files) parse back to them, no strict error."""
    body = b""
    for name, value, filename in parts:
        disposition = b'form-data; name="%s"' % name.encode()
        if filename is not None:
            disposition += b'; filename="%s.bin"' % filename.encode()
        body += b"--b0undary\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + value + b"\r\n"
    body += b"--b0undary--\r\n"
    result = parse(body, max_files=100)
    assert list(result.args) == [(n.encode(), v) for n, v, f in parts if f is None]
    assert [(f.name, f.filename, f.size) for f in result.files] == [
        (n.encode(), f.encode() + b".bin", len(v)) for n, v, f in parts if f is not None]
    if parts:
        assert result.flags["MULTIPART_STRICT_ERROR"] == 0, (result.error, raised(result))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([CT, b'multipart/form-data; boundary="b0undary"',
                                                  b"multipart/form-data; boundary=a"]))
def test_never_raises_on_any_body(tail, content_type):
    """Arbitrary bytes (alone or after a valid opening) never raise; flags are 0/1/2."""
    for body in (tail, CLEAN[:60] + tail, crlf(tail)):
        result = parse(body, content_type, max_args=5, max_files=2)
        assert len(result.args) <= 5
        assert all(v in (0, 1, 2) for v in result.flags.values())
        assert result.flags["MULTIPART_STRICT_ERROR"] in (0, 1)
