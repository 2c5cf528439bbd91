"""Scalar variables (REQUEST_METHOD, REQUEST_FILENAME, MULTIPART_* flags, TIME_* ...):
name -> function of the transaction's ``variables.Variables`` giving bytes or None (absent).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Optional

WRITABLE = ("TX", "IP", "GLOBAL", "SESSION", "USER", "RESOURCE", "ENV")

_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")


def percent_decode(raw: bytes) -> bytes:
    """``%XX`` -> the byte; everything else (``+``, invalid escapes) as it is."""
    if b"%" not in raw:
        return raw
    return _PCT.sub(lambda m: bytes((int(m.group(1), 16),)), raw)


def _header(v, name: bytes) -> Optional[bytes]:
    vals = v.header_values(name)
    return vals[0] if vals else None


def _server_name(v) -> bytes:
    host = _header(v, b"host") or v.view.server_addr.encode("latin-1")
    if host.startswith(b"["):
        return host[:host.find(b"]") + 1]
    return host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host


def _basename(v) -> bytes:
    p = percent_decode(v.path)
    cut = max(p.rfind(b"/"), p.rfind(b"\\"))
    return p[cut + 1:]


def _args_combined(v) -> bytes:
    return b"%d" % sum(len(e[3]) + len(e[2]) for e in v.collection("ARGS"))


def _files_combined(v) -> bytes:
    return b"%d" % sum(f.size for f in v.body.files)


def _flag(name: str) -> Callable[[Any], Optional[bytes]]:
    def get(v) -> Optional[bytes]:
        if v.body_processor != b"MULTIPART" and name.startswith("MULTIPART"):
            return None
        return b"%d" % v.body.flags.get(name, 0)
    return get


def _body_error(v, name: str) -> bytes:
    return b"1" if v.body.flags.get(name) or v.body.error else b"0"


def _request_line(v) -> bytes:
    return b"%s %s %s" % (v.view.method, v.view.uri_raw, v.view.protocol)


def _full_request(v) -> bytes:
    head = _request_line(v) + b"\r\n" + b"".join(
        k + b": " + val + b"\r\n" for k, val in v.view.headers) + b"\r\n"
    return head + (v.body_raw or b"")


def _time(fmt: str) -> Callable[[Any], bytes]:
    import time

    def get(v) -> bytes:
        t = time.localtime(v._now())
        if fmt == "TIME":
            return time.strftime("%H:%M:%S", t).encode()
        return b"%d" % {"TIME_DAY": t.tm_mday, "TIME_HOUR": t.tm_hour, "TIME_MIN": t.tm_min,
                        "TIME_MON": t.tm_mon - 1, "TIME_SEC": t.tm_sec,
                        "TIME_WDAY": (t.tm_wday + 1) % 7, "TIME_YEAR": t.tm_year}[fmt]
    return get


def _response_header(name: bytes) -> Callable[[Any], Optional[bytes]]:
    def get(v) -> Optional[bytes]:
        for k, val in v.response_headers:
            if k.lower() == name:
                return val
        return None
    return get


SCALARS: Dict[str, Callable[[Any], Optional[bytes]]] = {
    "REQUEST_METHOD": lambda v: v.view.method,
    "REQUEST_PROTOCOL": lambda v: v.view.protocol,
    "REQUEST_URI_RAW": lambda v: v.view.uri_raw,
    "REQUEST_URI": lambda v: v.uri,
    "REQUEST_FILENAME": lambda v: percent_decode(v.path),
    "PATH_INFO": lambda v: b"",
    "REQUEST_BASENAME": _basename,
    "QUERY_STRING": lambda v: v.query,
    "REQUEST_LINE": _request_line,
    "REMOTE_ADDR": lambda v: v.view.remote_addr.encode("latin-1"),
    "REMOTE_HOST": lambda v: v.view.remote_addr.encode("latin-1"),
    "REMOTE_PORT": lambda v: b"%d" % v.view.remote_port,
    "SERVER_ADDR": lambda v: v.view.server_addr.encode("latin-1"),
    "SERVER_PORT": lambda v: b"%d" % v.view.server_port,
    "SERVER_NAME": _server_name,
    "UNIQUE_ID": lambda v: v.view.request_id,
    "ARGS_COMBINED_SIZE": _args_combined,
    "FILES_COMBINED_SIZE": _files_combined,
    "REQUEST_BODY": lambda v: v.body_raw if v.body_variable else None,
    "REQUEST_BODY_LENGTH": lambda v: b"%d" % len(v.body_raw or b""),
    "FULL_REQUEST": _full_request,
    "FULL_REQUEST_LENGTH": lambda v: b"%d" % len(_full_request(v)),
    "REQBODY_PROCESSOR": lambda v: v.body_processor,
    "REQBODY_ERROR": lambda v: _body_error(v, "REQBODY_ERROR"),
    "REQBODY_PROCESSOR_ERROR": lambda v: _body_error(v, "REQBODY_PROCESSOR_ERROR"),
    "MULTIPART_NAME": lambda v: getattr(v.body, "multipart_name", None) or None,
    "MULTIPART_FILENAME": lambda v: getattr(v.body, "multipart_filename", None) or None,
    "REQBODY_ERROR_MSG": lambda v: v.body.error,
    "REQBODY_PROCESSOR_ERROR_MSG": lambda v: v.body.error,
    "INBOUND_DATA_ERROR": lambda v: b"1" if v.body_truncated else b"0",
    "OUTBOUND_DATA_ERROR": lambda v: b"0",
    "URLENCODED_ERROR": lambda v: b"%d" % v.body.flags.get("URLENCODED_ERROR", 0),
    "MATCHED_VAR": lambda v: v.matched_var,
    "MATCHED_VAR_NAME": lambda v: v.matched_var_name,
    "RESPONSE_STATUS": lambda v: None if v.response_status is None
    else b"%d" % v.response_status,
    "RESPONSE_PROTOCOL": lambda v: b"HTTP/1.1",
    "STATUS_LINE": lambda v: None if v.response_status is None
    else b"HTTP/1.1 %d" % v.response_status,
    "RESPONSE_BODY": lambda v: v.response_body,
    "RESPONSE_CONTENT_TYPE": _response_header(b"content-type"),
    "RESPONSE_CONTENT_LENGTH": _response_header(b"content-length"),
    "AUTH_TYPE": lambda v: None,
    "REMOTE_USER": lambda v: None,
    "WEBSERVER_ERROR_LOG": lambda v: None,
    "HIGHEST_SEVERITY": lambda v: b"255",
    "MSC_PCRE_LIMITS_EXCEEDED": lambda v: b"0",
    "DURATION": lambda v: b"%d" % int((v._now() - v._start) * 1000),
    "TIME_EPOCH": lambda v: b"%d" % int(v._now()),
}
for _n in ("TIME", "TIME_DAY", "TIME_HOUR", "TIME_MIN", "TIME_MON", "TIME_SEC", "TIME_WDAY",
           "TIME_YEAR"):
    SCALARS[_n] = _time(_n)
for _n in ("MULTIPART_BOUNDARY_QUOTED", "MULTIPART_BOUNDARY_WHITESPACE",
           "MULTIPART_CRLF_LF_LINES", "MULTIPART_DATA_AFTER", "MULTIPART_DATA_BEFORE",
           "MULTIPART_FILE_LIMIT_EXCEEDED", "MULTIPART_HEADER_FOLDING",
           "MULTIPART_INVALID_HEADER_FOLDING", "MULTIPART_INVALID_PART",
           "MULTIPART_INVALID_QUOTING", "MULTIPART_LF_LINE", "MULTIPART_MISSING_SEMICOLON",
           "MULTIPART_STRICT_ERROR", "MULTIPART_UNMATCHED_BOUNDARY"):
    SCALARS[_n] = _flag(_n)

# Targets whose values change between rules (never kept by ``values``).
