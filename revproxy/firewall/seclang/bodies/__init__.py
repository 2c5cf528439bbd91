"""Request body processors (URLENCODED, MULTIPART, JSON, XML), query strings and cookies.

``process_body`` picks the processor as ModSecurity does (``select_processor``) unless the
rules forced one (``ctl:requestBodyProcessor=``), and returns the contract's ``BodyResult``.
Every function here is pure, never raises on request bytes, and does linear work bounded by
``BodyLimits``. See docs/firewall-bodies.md.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from revproxy.firewall.seclang.api import BodyResult
from revproxy.firewall.seclang.bodies.cookies import parse_cookies
from revproxy.firewall.seclang.bodies.jsonbody import parse_json
from revproxy.firewall.seclang.bodies.multipart import parse_multipart
from revproxy.firewall.seclang.bodies.urlencoded import parse_query, parse_urlencoded, url_decode
from revproxy.firewall.seclang.bodies.xmlbody import XmlDocument, compile_xpath, parse_xml

__all__ = [
    "BodyLimits", "PROCESSORS", "process_body", "select_processor", "parse_cookies",
    "parse_json", "parse_multipart", "parse_query", "parse_urlencoded", "parse_xml",
    "url_decode", "compile_xpath", "XmlDocument",
]

# The names ctl:requestBodyProcessor= accepts (REQBODY_PROCESSOR values); RAW: no parsing.
PROCESSORS = frozenset({"URLENCODED", "MULTIPART", "JSON", "XML", "RAW"})

# modsecurity.conf-recommended's rules 200000 (XML) and 200001 (JSON), applied to the
# lower-cased Content-Type, as every ModSecurity deployment and the CRS test setup load them.
_XML_TYPE = re.compile(rb"^(?:application(?:/soap\+|/)|text/)xml")
_JSON_TYPE = re.compile(rb"^application/json")


class BodyLimits(NamedTuple):
    """Bounds on the work and the collections of one body (ModSecurity / Coraza defaults).

    ``max_args``: SecArgumentsLimit (1000), per parsed body or query string; pairs past it
    are dropped and ARGS_LIMIT_EXCEEDED raised. ``max_files``: SecUploadFileLimit (100);
    more files raise MULTIPART_FILE_LIMIT_EXCEEDED. ``max_part_header``: the longest
    multipart part header line (ModSecurity's 4096-byte MULTIPART_BUF_SIZE). ``max_depth``:
    SecRequestBodyJsonDepthLimit (Coraza's 1024). ``max_xml_bytes``: XML bodies longer than
    this are not parsed (REQBODY_ERROR; 1 MiB). ``max_xml_depth``: element nesting (libxml2's
    256)."""

    max_args: int = 1000
    max_files: int = 100
    max_part_header: int = 4096
    max_depth: int = 1024
    max_xml_bytes: int = 1 << 20
    max_xml_depth: int = 256


def select_processor(content_type: bytes, *, json_xml: bool = True) -> Optional[str]:
    """The processor ModSecurity picks from the request's Content-Type (REQBODY_PROCESSOR in
    phase 1), or None. ``multipart/form-data...`` (prefix, any case) -> MULTIPART;
    ``application/x-www-form-urlencoded`` (parameters allowed) -> URLENCODED; with
    ``json_xml`` (the default), also what modsecurity.conf-recommended's rules 200000/200001
    choose: ``^(?:application(?:/soap\\+|/)|text/)xml`` -> XML, ``^application/json`` ->
    JSON. ``json_xml=False`` is the bare engine, where only ctl: picks JSON and XML."""
    lowered = content_type.strip().lower()
    if lowered.startswith(b"multipart/form-data"):
        return "MULTIPART"
    if lowered.split(b";", 1)[0].strip() == b"application/x-www-form-urlencoded":
        return "URLENCODED"
    if json_xml:
        if _XML_TYPE.match(lowered):
            return "XML"
        if _JSON_TYPE.match(lowered):
            return "JSON"
    return None


def process_body(content_type: bytes, data: bytes, *, processor: Optional[str] = None,
                 limits: BodyLimits = BodyLimits()) -> BodyResult:
    """Parse ``data`` with ``processor`` (any case; None: ``select_processor(content_type)``).

    No processor, RAW or an empty body: an empty BodyResult (only ``raw_length``; the engine
    exposes REQUEST_BODY itself). An unknown processor name is REQBODY_ERROR (the engine
    checks names against PROCESSORS at rule load, so this only guards misuse)."""
    name = processor.upper() if processor else select_processor(content_type)
    if not data or name is None or name == "RAW":
        return BodyResult(raw_length=len(data))
    if name == "URLENCODED":
        return parse_urlencoded(data, max_args=limits.max_args)
    if name == "MULTIPART":
        return parse_multipart(data, content_type, max_args=limits.max_args,
                               max_files=limits.max_files,
                               max_part_header=limits.max_part_header)
    if name == "JSON":
        return parse_json(data, max_args=limits.max_args, max_depth=limits.max_depth)
    if name == "XML":
        return parse_xml(data, max_bytes=limits.max_xml_bytes, max_depth=limits.max_xml_depth)
    return BodyResult(flags={"REQBODY_ERROR": 1, "REQBODY_PROCESSOR_ERROR": 1},
                      error=b"unknown request body processor " + name.encode("ascii", "replace"),
                      raw_length=len(data))
