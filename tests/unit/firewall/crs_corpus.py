"""A corpus of attack and benign strings from the CRS regression tests (../shared).

Values of ``uri:`` and ``data:`` lines, split into URL-decoded parameter values and kept
whole; an empty list when the CRS tests are absent (callers skip with a reason).
"""

from __future__ import annotations

import os
import re
from typing import List
from urllib.parse import unquote_to_bytes

CRS_TESTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared",
                         "crs-v4.28.0", "tests", "regression", "tests")
if not os.path.isdir(CRS_TESTS):
    CRS_TESTS = "/work/shared/crs-v4.28.0/tests/regression/tests"

_LINE = re.compile(r"^\s*(?:data|uri):\s*(.+?)\s*$")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
        if text and text[0] != "'":
            text = text.replace('\\"', '"').replace("\\\\", "\\")
    return text


def corpus(prefixes=("REQUEST-941", "REQUEST-942")) -> List[bytes]:
    """Distinct byte strings from the test files under directories with ``prefixes``."""
    if not os.path.isdir(CRS_TESTS):
        return []
    seen = set()
    for directory in sorted(os.listdir(CRS_TESTS)):
        if not directory.startswith(prefixes):
            continue
        folder = os.path.join(CRS_TESTS, directory)
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = _LINE.match(line)
                    if not m:
                        continue
                    raw = _unquote(m.group(1)).encode("utf-8", "surrogateescape")
                    seen.add(raw)
                    query = raw.split(b"?", 1)[-1]
                    for pair in query.split(b"&"):
                        value = pair.split(b"=", 1)[-1]
                        seen.add(unquote_to_bytes(value.replace(b"+", b" ")))
    seen.discard(b"")
    return sorted(seen)
