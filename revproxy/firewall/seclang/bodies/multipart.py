"""multipart/form-data request bodies, parsed strictly as ModSecurity does.

What it produces (see docs/firewall-bodies.md): ``args`` (ARGS_POST: the non-file parts,
name -> content), ``files`` (FILES, FILES_NAMES, FILES_SIZES; FILES_COMBINED_SIZE is their
sum), ``part_headers`` (MULTIPART_PART_HEADERS: (part name, header line as received without
its line ending, folded lines joined with a space)), ``multipart_name`` /
``multipart_filename`` (the last ``name`` / ``filename`` seen), and ``flags``: every
MULTIPART_* variable below (0 or 1; MULTIPART_UNMATCHED_BOUNDARY is 1 when the opening or
the final boundary is missing, 2 when only stray lines beginning with ``--`` were seen, as
ModSecurity >= 3.0.3), MULTIPART_STRICT_ERROR (the OR of the strict flags, as ModSecurity),
REQBODY_ERROR and REQBODY_PROCESSOR_ERROR (1 with ``error`` set to ModSecurity's message).

Unlike ModSecurity, a fault does not stop the parse where the structure stays clear: the
error flags are raised but the parts that can still be read are returned, so rules keep
something to inspect (the decision to deny on REQBODY_ERROR stays with the rules). Lines are
found with ``bytes.find``, so the work is linear in the body; header lines are bounded by
``max_part_header``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from revproxy.firewall.seclang.api import BodyResult, FilePart
from revproxy.firewall.seclang.bodies.mpheaders import parse_boundary, parse_disposition

STRICT_FLAGS = (
    "MULTIPART_BOUNDARY_QUOTED", "MULTIPART_BOUNDARY_WHITESPACE", "MULTIPART_DATA_BEFORE",
    "MULTIPART_DATA_AFTER", "MULTIPART_HEADER_FOLDING", "MULTIPART_LF_LINE",
    "MULTIPART_MISSING_SEMICOLON", "MULTIPART_INVALID_QUOTING", "MULTIPART_INVALID_PART",
    "MULTIPART_INVALID_HEADER_FOLDING", "MULTIPART_FILE_LIMIT_EXCEEDED",
)
OTHER_FLAGS = ("MULTIPART_UNMATCHED_BOUNDARY", "MULTIPART_CRLF_LF_LINES", "MULTIPART_CRLF_LINE")
_SPACE = b" \t\n\r\x0b\x0c"
_PREAMBLE, _HEADERS, _DATA, _EPILOGUE = range(4)


class _Part:
    """The part being read: its header table, raw header lines, disposition."""

    def __init__(self) -> None:
        self.headers: Dict[bytes, bytes] = {}  # lower-case name -> value
        self.lines: List[bytearray] = []
        self.last_header: Optional[bytes] = None
        self.name: Optional[bytes] = None
        self.filename: Optional[bytes] = None
        self.data_start = -1  # the first data byte, once the header section has ended


class _Parser:
    def __init__(self, data: bytes, boundary: bytes, max_args: int, max_files: int,
                 max_part_header: int, flags: Dict[str, int]) -> None:
        self.data = data
        self.boundary = boundary
        self.max_args = max_args
        self.max_files = max_files
        self.max_line = max_part_header
        self.flags = flags
        self.error = b""
        self.args: List[Tuple[bytes, bytes]] = []
        self.files: List[FilePart] = []
        self.part_headers: List[Tuple[bytes, bytes]] = []
        self.last_name = b""
        self.last_filename = b""
        self.part: Optional[_Part] = None
        self.boundaries = 0

    def fail(self, message: str) -> None:
        self.flags["REQBODY_ERROR"] = 1
        if not self.error:
            self.error = b"Multipart: " + message.encode("ascii", "replace")

    def run(self) -> None:
        data = self.data
        n = len(data)
        state = _PREAMBLE
        pos = 0
        while pos < n:
            if state == _EPILOGUE:
                self.flags["MULTIPART_DATA_AFTER"] = 1
                return
            if state != _HEADERS:
                line_start = self._next_dash_line(pos)
                if state == _PREAMBLE and line_start > pos:
                    self.flags["MULTIPART_DATA_BEFORE"] = 1
                if line_start >= n:
                    break
                pos = line_start
            eol = data.find(b"\n", pos)
            if state == _HEADERS and (eol if eol >= 0 else n) - pos > self.max_line:
                self.fail("Part header line over %d bytes long" % self.max_line)
                return
            line, ending, nxt = (data[pos:eol], b"\n", eol + 1) if eol >= 0 else (data[pos:], b"", n)
            if line.endswith(b"\r") and ending:
                line, ending = line[:-1], b"\r\n"
            kind = self._boundary_kind(line, ending)
            if kind:
                self._line_ending(ending)
                self._end_part(pos)
                self.boundaries += 1
                state = _EPILOGUE if kind == 2 else _HEADERS
                if state == _HEADERS:
                    self.part = _Part()
            elif state == _HEADERS:
                if not self._header_line(line, ending):
                    return
                if not line and ending:
                    state = _DATA
                    assert self.part is not None
                    self.part.data_start = nxt
            pos = nxt
        if n and state != _EPILOGUE:
            self.flags["MULTIPART_UNMATCHED_BOUNDARY"] = 1
            if self.boundaries:
                self.fail("Final boundary missing.")
                self._end_part(n, at_eof=True)
            else:
                self.fail("No boundaries found in payload.")

    def _next_dash_line(self, pos: int) -> int:
        """The start of the next line (at or after ``pos``, itself a line start) that begins
        with ``--``, or len(data)."""
        if self.data.startswith(b"--", pos):
            return pos
        found = self.data.find(b"\n--", pos)
        return len(self.data) if found < 0 else found + 1

    def _boundary_kind(self, line: bytes, ending: bytes) -> int:
        """0: not a boundary, 1: a boundary, 2: the final boundary. Raises the error and
        unmatched-boundary flags for lines that begin with ``--`` but are not one."""
        if not line.startswith(b"--"):
            return 0
        boundary = self.boundary
        if line.startswith(boundary, 2):
            rest = line[2 + len(boundary):]
            if rest == b"" and ending:
                return 1
            if rest == b"--":
                return 2
            if ending:
                self.fail("Invalid boundary: %r" % line[:80])
            return 0
        if self.flags.get("MULTIPART_BOUNDARY_QUOTED") and line.startswith(b'"' + boundary, 2):
            self.fail("Invalid boundary (quotes).")
        elif line[2:3] and line[2] in _SPACE and line[2:].lstrip(_SPACE).startswith(boundary):
            self.fail("Invalid boundary (whitespace).")
        elif self.flags["MULTIPART_UNMATCHED_BOUNDARY"] == 0:
            self.flags["MULTIPART_UNMATCHED_BOUNDARY"] = 2
        return 0

    def _line_ending(self, ending: bytes) -> None:
        if ending == b"\r\n":
            self.flags["MULTIPART_CRLF_LINE"] = 1
        elif ending == b"\n":
            self.flags["MULTIPART_LF_LINE"] = 1

    def _header_line(self, line: bytes, ending: bytes) -> bool:
        """Take one line of the part's header section; False stops the parse."""
        part = self.part
        assert part is not None
        self._line_ending(ending)
        if not line:
            self._end_headers(part)
            return True
        if line[0] in _SPACE:
            self.flags["MULTIPART_HEADER_FOLDING"] = 1
            if part.last_header is None:
                self.fail("Invalid part header (folding error).")
                part.lines.append(bytearray(line))
                return True
            folded = line.lstrip(_SPACE)
            if line[:len(line) - len(folded)].strip(b" \t"):
                self.flags["MULTIPART_INVALID_HEADER_FOLDING"] = 1
            value = part.headers[part.last_header] + b" " + folded
            part.headers[part.last_header] = value
            part.lines[-1] += b" " + folded
            if len(value) > self.max_line:
                self.fail("Part header too long.")
                return False
            return True
        part.lines.append(bytearray(line))
        colon = line.find(b":")
        if colon < 0:
            self.fail("Invalid part header (colon missing): %r." % line[:80])
            part.last_header = None
            return True
        name = line[:colon]
        if any(c < 33 or c > 126 for c in name):
            self.fail("Invalid part header (contains invalid characters).")
        key = name.lower()
        if key in part.headers:
            self.fail("Duplicate part header: %r." % name[:80])
            part.last_header = None
            return True
        part.headers[key] = line[colon + 1:].lstrip(b" \t")
        part.last_header = key
        return True

    def _end_headers(self, part: _Part) -> None:
        disposition = part.headers.get(b"content-disposition")
        if disposition is None:
            self.fail("Part missing Content-Disposition header.")
        else:
            parsed = parse_disposition(disposition)
            if parsed.invalid_quoting:
                self.flags["MULTIPART_INVALID_QUOTING"] = 1
            if parsed.code < 0:
                self.fail("Invalid Content-Disposition header (%d): %r."
                          % (parsed.code, disposition[:80]))
            part.name, part.filename = parsed.name, parsed.filename
            if parsed.name is not None:
                self.last_name = parsed.name
            if parsed.filename is not None:
                self.last_filename = parsed.filename
            if parsed.name is None and parsed.code == 0:
                self.fail("Content-Disposition header missing name field.")
        for line in part.lines:
            self.part_headers.append((part.name or b"", bytes(line)))
        part.lines = []

    def _end_part(self, boundary_at: int, at_eof: bool = False) -> None:
        """Close the current part at the boundary line starting at ``boundary_at`` (the line
        ending before it belongs to the boundary)."""
        part, self.part = self.part, None
        if part is None:
            return
        if part.data_start < 0:  # the headers never ended: a part without a name
            for line in part.lines:
                self.part_headers.append((b"", bytes(line)))
            self.flags["MULTIPART_INVALID_PART"] = 1
            return
        if part.name is None:
            self.flags["MULTIPART_INVALID_PART"] = 1
            return
        end = boundary_at
        if not at_eof and end > part.data_start:
            if self.data[end - 2:end] == b"\r\n" and end - 2 >= part.data_start:
                end -= 2
            else:
                end -= 1
                self.flags["MULTIPART_LF_LINE"] = 1
        content = self.data[part.data_start:max(end, part.data_start)]
        if part.filename is not None:
            if len(self.files) >= self.max_files:
                self.flags["MULTIPART_FILE_LIMIT_EXCEEDED"] = 1
            self.files.append(FilePart(part.name, part.filename, len(content),
                                       part.headers.get(b"content-type", b"")))
        elif len(self.args) < self.max_args:
            self.args.append((part.name, content))
        else:
            self.flags["ARGS_LIMIT_EXCEEDED"] = 1


def parse_multipart(data: bytes, content_type: bytes, *, max_args: int, max_files: int,
                    max_part_header: int = 4096) -> BodyResult:
    """Parse a multipart/form-data body whose request Content-Type is ``content_type``.

    Never raises on bytes input. ``max_args`` bounds the non-file parts kept (the rest set
    ARGS_LIMIT_EXCEEDED), ``max_files`` raises MULTIPART_FILE_LIMIT_EXCEEDED past that many
    files (they are still listed, as ModSecurity lists them), ``max_part_header`` bounds one
    part header line (ModSecurity's 4096-byte buffer)."""
    flags: Dict[str, int] = dict.fromkeys(STRICT_FLAGS + OTHER_FLAGS, 0)
    flags["REQBODY_ERROR"] = 0
    found = parse_boundary(content_type)
    flags.update(found.flags)
    if found.boundary is None:
        flags["REQBODY_ERROR"] = 1
        return _result(flags, found.error, len(data))
    parser = _Parser(data, found.boundary, max_args, max_files, max_part_header, flags)
    parser.run()
    return _result(flags, parser.error, len(data), parser)


def _result(flags: Dict[str, int], error: bytes, length: int,
            parser: Optional[_Parser] = None) -> BodyResult:
    flags["REQBODY_PROCESSOR_ERROR"] = flags["REQBODY_ERROR"]
    flags["MULTIPART_CRLF_LF_LINES"] = int(bool(
        flags["MULTIPART_CRLF_LINE"] and flags["MULTIPART_LF_LINE"]))
    del flags["MULTIPART_CRLF_LINE"]
    flags["MULTIPART_STRICT_ERROR"] = int(bool(
        flags["REQBODY_ERROR"] or any(flags[name] for name in STRICT_FLAGS)))
    if parser is None:
        return BodyResult(flags=flags, error=error, raw_length=length)
    return BodyResult(args=tuple(parser.args), files=tuple(parser.files), flags=flags,
                      error=error, part_headers=tuple(parser.part_headers),
                      raw_length=length, multipart_name=parser.last_name,
                      multipart_filename=parser.last_filename)
