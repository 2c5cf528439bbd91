"""A transaction's bodies: the request body taken into phase 2's variables (limits, body
processors), and whether a response body is of a type phase 4 inspects."""

from __future__ import annotations

from typing import Optional

from .api import Interruption, MatchRecord


def take_request_body(tx, body: Optional[bytes], truncated: bool) -> Optional[Interruption]:
    """Phase 2's input: ``body`` cut to the limits (or refused with 413 when the limit
    action is Reject and the engine On), parsed by the transaction's body processor into
    its variables; None, or the Interruption."""
    v = tx.vars
    if body is None or not tx.request_body_access:
        return None
    s = tx.waf.settings
    limit = tx.request_body_limit
    proc = tx._processor  # (tx.body_processor, without the property's call)
    if proc != "MULTIPART" and s.request_body_no_files_limit < limit:
        limit = s.request_body_no_files_limit
    if len(body) > limit:
        if s.request_body_limit_action == "Reject":
            enforce = tx.engine_mode == "On"
            tx.matches.append(MatchRecord(
                0, 2, b"request body larger than the limit", b"%d > %d bytes"
                % (len(body), limit), "CRITICAL", (), "REQUEST_BODY_LENGTH",
                b"%d" % len(body), enforce))
            if enforce:
                tx.interruption = Interruption("deny", 413, 0)
                return tx.interruption
        body = body[:limit]
        truncated = True
    v.body_truncated = truncated
    ct = b""
    for k, val in tx.view.headers:
        if k == b"content-type":
            ct = val
            break
    if proc in ("URLENCODED", "MULTIPART", "JSON", "XML"):  # parsed when first read
        v.body_parser = proc
        waf = tx.waf
        kwargs = waf.body_kwargs.get(proc)  # (one per processor, shared: never changed)
        if kwargs is None:
            limits = waf.body_limits
            kwargs = waf.body_kwargs[proc] = {"processor": proc, "limits": limits} \
                if limits is not None else {"processor": proc}
        v.defer_body(waf.components.process_body, (ct, body), kwargs)
    v.body_raw = body
    v.body_variable = proc in ("URLENCODED", "RAW") or tx.force_body_variable
    tx.invalidate()
    return None


def response_type_inspected(tx) -> bool:
    """Whether phase 4 may read the response body: its type is one of
    ``SecResponseBodyMimeType``."""
    ct = b""
    for k, val in tx.vars.response_headers:
        if k == b"content-type":
            ct = val.split(b";", 1)[0].strip().lower()
            break
    return ct in tx.waf.settings.response_mime_types
