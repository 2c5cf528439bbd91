"""The request body limits (ModSecurity's SecRequestBodyLimit / SecRequestBodyNoFilesLimit):
which bodies are over, how much a partial inspection reads, file parts of multipart bodies."""

from __future__ import annotations

from hypothesis import given, strategies as st

from revproxy.config.firewall import FirewallSettings
from revproxy.firewall.limits import body_limit, multipart_file_bytes

CT = b"multipart/form-data; boundary=XyZ"


def multipart(parts, preamble=b"", epilogue=b""):
    """A multipart body of ``parts``: (name, filename or None, content)."""
    out = [preamble]
    for name, filename, content in parts:
        disposition = b'form-data; name="%s"' % name
        if filename is not None:
            disposition += b'; filename="%s"' % filename
        out.append(b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + content
                   + b"\r\n")
    out.append(b"--XyZ--\r\n" + epilogue)
    return b"".join(out)


def limit(body, ctype=b"application/x-www-form-urlencoded", total=1000, no_files=100):
    return body_limit(lambda n: body[:n], len(body), ctype, total, no_files)


def test_defaults_are_modsecurity_recommended():
    """13107200 for the whole body, 131072 without files, reject beyond."""
    settings = FirewallSettings()
    assert settings.request_body_limit == 13107200
    assert settings.request_body_no_files_limit == 131072
    assert settings.request_body_limit_action == "reject"


def test_small_body_is_within():
    assert limit(b"a=1") == (None, 3)


def test_non_multipart_body_over_no_files_limit():
    """A form (or JSON) body is all fields: over the no-files limit, partial reads that."""
    over, read = limit(b"a=" + b"x" * 200)
    assert "request_body_no_files_limit (100)" in over
    assert read == 100


def test_any_body_over_the_whole_limit():
    over, read = limit(b"x" * 1001, ctype=CT)
    assert "request_body_limit (1000)" in over
    assert read == 1000


def test_multipart_file_content_does_not_count_against_no_files_limit():
    """A 500-byte upload with a small field passes; 500 bytes of fields do not."""
    upload = multipart([(b"title", None, b"holiday"), (b"f", b"a.jpg", b"\xff" * 500)])
    assert limit(upload, ctype=CT, no_files=200) == (None, len(upload))
    fields = multipart([(b"a", None, b"x" * 250), (b"b", None, b"y" * 250)])
    over, read = limit(fields, ctype=CT, no_files=200)
    assert "besides its files" in over
    assert read == len(fields)  # partial: the engine sees the whole (bounded) body


def test_bad_boundary_counts_everything_as_fields():
    assert multipart_file_bytes(multipart([(b"f", b"a", b"x" * 10)]),
                                b"multipart/form-data") == 0


part = st.tuples(st.sampled_from([b"a", b"file", b"x-y"]),
                 st.one_of(st.none(), st.sampled_from([b"a.txt", b"b.bin"])),
                 st.binary(max_size=300).filter(lambda b: b"--XyZ" not in b
                                                and not b.endswith(b"\r")))


@given(st.lists(part, max_size=6), st.binary(max_size=40).filter(lambda b: b"--XyZ" not in b
                                                                  and b"\r\n" not in b))
def test_file_bytes_are_the_file_contents(parts, preamble):
    """For any well-formed body: the file bytes are exactly the file parts' contents."""
    body = multipart(parts, preamble=preamble)
    expected = sum(len(content) for _, filename, content in parts if filename is not None)
    assert multipart_file_bytes(body, CT) == expected


@given(st.binary(max_size=2000), st.binary(max_size=60))
def test_never_raises_and_is_bounded(body, ctype):
    """Any bytes: no exception, file bytes within the body, read within the body."""
    files = multipart_file_bytes(body, b"multipart/form-data; boundary=" + ctype)
    assert 0 <= files <= len(body)
    over, read = body_limit(lambda n: body[:n], len(body), ctype, 1000, 100)
    assert 0 <= read <= len(body)
    if len(body) > 1000:
        assert over is not None and read == 1000
    elif len(body) <= 100:
        assert (over, read) == (None, len(body))
