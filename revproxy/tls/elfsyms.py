"""Function symbols of an ELF shared object, read from its ``.symtab`` (pure, no loading).

``revproxy.tls.ticketkeys`` uses it to find OpenSSL functions that cryptography's wheels link
statically into their extension without exporting: the wheels keep the full symbol table, so a
function's address in the running process is its symbol value plus the load bias, which the
functions cffi does export (``_cffi_d_NAME``) give. Only 64-bit little-endian objects (x86-64,
aarch64 Linux) are read; anything else is "no symbols".
"""

from __future__ import annotations

import struct
from typing import Dict, Iterable, NamedTuple

SHT_SYMTAB = 2
STT_FUNC = 2
_SECTION = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
_SYMBOL = struct.Struct("<IBBHQQ")  # Elf64_Sym


class Symbol(NamedTuple):
    value: int  # the address in the object (before the load bias)
    size: int


def function_symbols(data: bytes, names: Iterable[str]) -> Dict[str, Symbol]:
    """``name -> Symbol`` for each of ``names`` defined as a function in ``data``'s
    ``.symtab`` (missing names are left out). ``data`` not a 64-bit little-endian ELF, or
    truncated: ``{}``."""
    wanted = {n.encode("ascii") for n in names}
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2 or data[5] != 1:
        return {}
    try:
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        if shentsize != _SECTION.size or shoff + shnum * shentsize > len(data):
            return {}
        sections = [_SECTION.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        found = {}
        for _, kind, _, _, offset, size, link, _, _, entsize in sections:
            if kind != SHT_SYMTAB or entsize != _SYMBOL.size or link >= len(sections):
                continue
            strings = sections[link][4]
            offsets = _name_offsets(data, strings, sections[link][5], wanted)
            if not offsets:
                continue
            table = data[offset:offset + size - size % entsize]
            for name_at, info, _, shndx, value, sym_size in _SYMBOL.iter_unpack(table):
                name = offsets.get(name_at)
                if name is not None and info & 0xF == STT_FUNC and shndx and value:
                    found[name.decode("ascii")] = Symbol(value, sym_size)
        return found
    except (struct.error, OverflowError, ValueError):  # offsets outside the data
        return {}


def _name_offsets(data, start, size, wanted):
    """``offset in the string table -> name`` of each wanted name found there (as a whole
    string: NUL before and after)."""
    table = data[start:start + size]
    offsets = {}
    for name in wanted:
        at = table.find(b"\0" + name + b"\0")
        while at != -1:
            offsets[at + 1] = name
            at = table.find(b"\0" + name + b"\0", at + 1)
    return offsets
