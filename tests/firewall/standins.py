"""Test-only stand-ins for the pieces other helpers build (operators, transformations, body
processors), so the engine can be tested before they land. Approximate on purpose: the
engine's tests pin down the engine, not these. ``components()`` returns an
``engine.Components`` built from them.
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import json
import os
import re
from typing import List, Tuple
from urllib.parse import unquote_to_bytes

from revproxy.firewall.seclang.api import BodyResult, FilePart, Match
from revproxy.firewall.seclang.loader import Components


class UnsupportedOperator(Exception):
    pass


def _never(value, expand):
    return None


def build_operator(name: str, arg: str, base_dir: str):
    n = name.lower()
    if n == "rx":
        try:
            rx = re.compile(arg.encode("utf-8"), re.DOTALL)
        except re.error:
            return _never

        def op(value, expand):
            m = rx.search(value)
            if m is None:
                return None
            caps = (m.group(0),) + tuple(g if g is not None else b"" for g in m.groups())[:9]
            return Match(m.group(0), caps)
        return op
    if n in ("pm", "pmf", "pmfromfile"):
        if n == "pm":
            words = arg.lower().split()
        else:
            words = []
            for fn in arg.split():
                with open(os.path.join(base_dir, fn), encoding="utf-8") as f:
                    words += [w.strip().lower() for w in f
                              if w.strip() and not w.startswith("#")]
        bwords = [w.encode("utf-8") for w in words]
        rx = re.compile(b"|".join(re.escape(w) for w in sorted(bwords, key=len, reverse=True)))

        def op(value, expand):
            m = rx.search(value.lower())
            return Match(m.group(0)) if m else None
        return op
    if n in ("eq", "ge", "gt", "lt", "le"):
        import operator as o
        f = {"eq": o.eq, "ge": o.ge, "gt": o.gt, "lt": o.lt, "le": o.le}[n]

        def op(value, expand):
            from revproxy.firewall.seclang.actions import to_int
            return Match(value) if f(to_int(value), to_int(expand(arg))) else None
        return op
    if n in ("streq", "contains", "beginswith", "endswith", "within", "containsword"):
        def op(value, expand):
            a = expand(arg)
            ok = {"streq": value == a, "contains": a in value,
                  "beginswith": value.startswith(a), "endswith": value.endswith(a),
                  "within": value in a,
                  "containsword": re.search(rb"\b" + re.escape(a) + rb"\b", value)
                  is not None}[n]
            return Match(value) if ok else None
        return op
    if n == "unconditionalmatch":
        return lambda value, expand: Match(value)
    if n == "nomatch":
        return _never
    if n == "validatebyterange":
        allowed = set()
        for part in arg.replace(",", " ").split():
            a, _, b = part.partition("-")
            allowed.update(range(int(a), int(b or a) + 1))

        def op(value, expand):
            for c in value:
                if c not in allowed:
                    return Match(value)
            return None
        return op
    if n == "validateurlencoding":
        bad = re.compile(rb"%(?![0-9a-fA-F]{2})")
        return lambda value, expand: Match(value) if bad.search(value) else None
    if n == "validateutf8encoding":
        def op(value, expand):
            try:
                value.decode("utf-8")
                return None
            except UnicodeDecodeError:
                return Match(value)
        return op
    if n == "ipmatch":
        nets = [ipaddress.ip_network(p.strip(), strict=False) for p in arg.split(",")]

        def op(value, expand):
            try:
                ip = ipaddress.ip_address(value.decode())
            except ValueError:
                return None
            return Match(value) if any(ip in net for net in nets) else None
        return op
    if n == "detectsqli":
        rx = re.compile(rb"(?i)(\bunion\b.*\bselect\b|'\s*or\s*'?\d|\bor\s+1\s*=\s*1|"
                        rb"select\s.+\sfrom\s|;\s*drop\s|sleep\s*\()")
        return lambda value, expand: Match(value) if rx.search(value) else None
    if n == "detectxss":
        rx = re.compile(rb"(?i)(<script|javascript:|\bon\w+\s*=|<iframe|<svg|<img[^>]+src)")
        return lambda value, expand: Match(value) if rx.search(value) else None
    raise UnsupportedOperator(name)


def _url_decode(v: bytes) -> bytes:
    v = v.replace(b"+", b" ")
    return unquote_to_bytes(v) if b"%" in v else v


def _url_decode_uni(v: bytes) -> bytes:
    if b"%" not in v and b"+" not in v:
        return v
    v = re.sub(rb"%u([0-9a-fA-F]{4})",
               lambda m: bytes([int(m.group(1)[2:], 16)]), v)
    return _url_decode(v)


def _html(v: bytes) -> bytes:
    if b"&" not in v:
        return v
    return html.unescape(v.decode("latin-1")).encode("latin-1", "replace")


def _js(v: bytes) -> bytes:
    if b"\\" not in v:
        return v
    v = re.sub(rb"\\u([0-9a-fA-F]{4})", lambda m: bytes([int(m.group(1)[2:], 16)]), v)
    v = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), v)
    return re.sub(rb"\\(.)", rb"\1", v)


def _css(v: bytes) -> bytes:
    if b"\\" not in v:
        return v
    return re.sub(rb"\\([0-9a-fA-F]{1,6})\s?|\\(.)",
                  lambda m: bytes([int(m.group(1), 16) & 0xFF]) if m.group(1)
                  else m.group(2), v)


def _cmdline(v: bytes) -> bytes:
    v = re.sub(rb"[\\\"'^]", b"", v)
    v = re.sub(rb"\s*([,;])\s*", b"\\1", v)
    v = re.sub(rb"\s+", b" ", v)
    v = re.sub(rb"\s*([/(])", b"\\1", v)
    return v.lower()


def _normpath(v: bytes) -> bytes:
    out: List[bytes] = []
    absolute = v.startswith(b"/")
    for seg in v.split(b"/"):
        if seg in (b"", b"."):
            continue
        if seg == b"..":
            if out:
                out.pop()
            continue
        out.append(seg)
    r = b"/".join(out)
    r = (b"/" if absolute else b"") + r
    if v.endswith(b"/") and r and not r.endswith(b"/"):
        r += b"/"
    return r


def _b64(v: bytes) -> bytes:
    try:
        return base64.b64decode(v + b"=" * (-len(v) % 4), validate=False)
    except Exception:
        return v


TRANSFORMS = {
    "lowercase": lambda v: v.lower(),
    "uppercase": lambda v: v.upper(),
    "urldecode": _url_decode,
    "urldecodeuni": _url_decode_uni,
    "htmlentitydecode": _html,
    "jsdecode": _js,
    "cssdecode": _css,
    "removenulls": lambda v: v.replace(b"\x00", b""),
    "replacenulls": lambda v: v.replace(b"\x00", b" "),
    "removewhitespace": lambda v: re.sub(rb"\s+", b"", v),
    "compresswhitespace": lambda v: re.sub(rb"\s+", b" ", v),
    "replacecomments": lambda v: re.sub(rb"/\*.*?(\*/|$)", b" ", v, flags=re.S),
    "removecommentschar": lambda v: re.sub(rb"/\*|\*/|--|#", b"", v),
    "removecomments": lambda v: re.sub(rb"/\*.*?(\*/|$)", b"", v, flags=re.S),
    "normalizepath": _normpath,
    "normalisepath": _normpath,
    "normalizepathwin": lambda v: _normpath(v.replace(b"\\", b"/")),
    "normalisepathwin": lambda v: _normpath(v.replace(b"\\", b"/")),
    "cmdline": _cmdline,
    "utf8tounicode": lambda v: v,
    "length": lambda v: b"%d" % len(v),
    "base64decode": _b64,
    "base64decodeext": _b64,
    "hexencode": lambda v: v.hex().encode(),
    "hexdecode": lambda v: bytes.fromhex(v.decode("latin-1")) if re.fullmatch(
        rb"(?:[0-9a-fA-F]{2})*", v) else v,
    "sha1": lambda v: hashlib.sha1(v).digest(),
    "md5": lambda v: hashlib.md5(v).digest(),
    "escapeseqdecode": lambda v: _js(v),
    "trim": lambda v: v.strip(),
    "trimleft": lambda v: v.lstrip(),
    "trimright": lambda v: v.rstrip(),
    "sqlhexdecode": lambda v: v,
}


def _pairs(data: bytes, sep: bytes = b"&") -> List[Tuple[bytes, bytes]]:
    out = []
    for piece in data.split(sep):
        if not piece:
            continue
        k, _, val = piece.partition(b"=")
        out.append((_url_decode(k), _url_decode(val)))
    return out


def parse_query(raw: bytes, max_args: int = 1000):
    return BodyResult(args=tuple(_pairs(raw)[:max_args]))


def parse_cookies(values):
    out = []
    for header in values:
        for piece in header.split(b";"):
            piece = piece.strip()
            if piece:
                k, _, v = piece.partition(b"=")
                out.append((k, v))
    return out


def _json_flatten(prefix: str, obj, out):
    if isinstance(obj, dict):
        for k, v in obj.items():
            _json_flatten(prefix + "." + k, v, out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _json_flatten(prefix + "." + str(i), v, out)
    else:
        if obj is None:
            s = ""
        elif isinstance(obj, bool):
            s = "true" if obj else "false"
        else:
            s = str(obj)
        out.append((prefix.encode("utf-8"), s.encode("utf-8")))


class _Xml:
    def __init__(self, root):
        self.root = root

    def xpath(self, expr):
        if expr == "/*":
            return [("".join(self.root.itertext())).encode("utf-8")]
        return [v.encode("utf-8") for e in self.root.iter() for v in e.attrib.values()]


def process_body(content_type: bytes, data: bytes, processor=None, limits=None):
    if processor == "URLENCODED":
        return BodyResult(args=tuple(_pairs(data)), raw_length=len(data))
    if processor == "JSON":
        try:
            obj = json.loads(data)
        except ValueError as exc:
            return BodyResult(error=str(exc).encode(), raw_length=len(data))
        out: List[Tuple[bytes, bytes]] = []
        _json_flatten("json", obj, out)
        return BodyResult(args=tuple(out), raw_length=len(data))
    if processor == "XML":
        import xml.etree.ElementTree as ET
        try:
            return BodyResult(xml=_Xml(ET.fromstring(data)), raw_length=len(data))
        except ET.ParseError as exc:
            return BodyResult(error=str(exc).encode(), raw_length=len(data))
    if processor == "MULTIPART":
        m = re.search(rb'boundary="?([^";]+)"?', content_type)
        if not m:
            return BodyResult(error=b"no boundary", flags={"MULTIPART_STRICT_ERROR": 1})
        args, files, headers = [], [], []
        for part in data.split(b"--" + m.group(1))[1:]:
            if part.startswith(b"--"):
                break
            head, _, body = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
            body = body[:-2] if body.endswith(b"\r\n") else body
            name = re.search(rb'name="([^"]*)"', head)
            fname = re.search(rb'filename="([^"]*)"', head)
            n = name.group(1) if name else b""
            for line in head.split(b"\r\n"):
                headers.append((n, line))
            if fname:
                files.append(FilePart(n, fname.group(1), len(body), b""))
            else:
                args.append((n, body))
        return BodyResult(args=tuple(args), files=tuple(files), part_headers=tuple(headers),
                          flags={"MULTIPART_STRICT_ERROR": 0}, raw_length=len(data))
    return BodyResult(raw_length=len(data))


def components() -> Components:
    return Components(build_operator, TRANSFORMS, process_body, parse_query, parse_cookies)
