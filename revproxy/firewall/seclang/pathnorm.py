"""Path normalisation for t:normalizePath / t:normalizePathWin.

A port of ModSecurity's ``normalize_path_inplace`` (v2 and v3 share it): repeated
slashes collapse, ``./`` self references and ``segment/../`` back references are removed,
never above the root; a relative path keeps the ``../`` it cannot resolve; a trailing
slash is kept only if the input had one. ``win`` first turns backslashes into slashes.
"""

from __future__ import annotations

_SLASH = 0x2F
_DOT = 0x2E
_BACKSLASH = 0x5C


def _cannot_change(data: bytes, win: bool) -> bool:
    if win and b"\\" in data:
        return False
    return b"." not in data and b"//" not in data


def normalize_path(data: bytes, win: bool = False) -> bytes:
    """The normalised path (``data`` itself when nothing changes)."""
    if not data or _cannot_change(data, win):
        return data
    buf = bytearray(data)
    if win:
        buf = buf.replace(b"\\", b"/")
    end = len(buf) - 1
    relative = buf[0] != _SLASH
    trailing = buf[end] == _SLASH
    src = dst = 0
    hitroot = False
    done = False
    while not done and src <= end and dst <= end:
        skip_copy = False
        if src == end:
            done = True
        if done or buf[src + 1] == _SLASH:
            # Normalise the path segment that ends here.
            if src != end and buf[src] == _SLASH:
                pass  # an empty segment: the copy below skips repeated slashes
            elif buf[src] == _DOT:
                if dst > 0 and buf[dst - 1] == _DOT:
                    # A back reference.
                    if relative and (hitroot or dst - 2 <= 0):
                        hitroot = True
                    else:
                        dst -= 3
                        while dst > 0 and buf[dst] != _SLASH:
                            dst -= 1
                        if dst <= 0:
                            hitroot = True
                            dst = 0
                            if not relative and src == end:
                                dst += 1
                        if done:
                            break
                        src += 1
                elif dst == 0:
                    # A relative self reference.
                    if done:
                        break
                    src += 1
                elif buf[dst - 1] == _SLASH:
                    # A self reference.
                    if done:
                        break
                    dst -= 1
                    src += 1
            elif dst > 0:
                hitroot = False
        # Copy the byte, skipping to the last of several slashes.
        if buf[src] == _SLASH:
            while src < end and buf[src + 1] == _SLASH:
                src += 1
            if relative and dst == 0:
                src += 1
                skip_copy = True
        if not skip_copy:
            buf[dst] = buf[src]
            dst += 1
            src += 1
    if not trailing and dst > 0 and buf[dst - 1] == _SLASH:
        dst -= 1
    return bytes(buf[:dst])
