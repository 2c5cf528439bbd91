"""The h2 state machine as the proxy sets it up: its configuration, the HPACK memo coders
(``hpackmemo``), the lean sends of ``sender.Machine``, our SETTINGS in force from the connection's first byte, and the GOAWAY
frame of a graceful shutdown."""

from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from revproxy.http2 import hpackmemo
from revproxy.http2.sender import Machine

CONFIG = H2Configuration(
    client_side=False, header_encoding=None,
    # heads.py validates requests so that a malformed one costs its stream only
    validate_inbound_headers=False, normalize_inbound_headers=False,
    # response fields are filtered by stream._fields (lower-case, no connection fields);
    # h2's own pass over them cost ~4% of the proxy's CPU per stream in a profile
    validate_outbound_headers=False, normalize_outbound_headers=False,
)
_DEFAULT_WINDOW = 65535  # a connection's flow-control window before any WINDOW_UPDATE


def new_machine() -> H2Connection:
    """A server-side ``H2Connection`` (``sender.Machine``) with the memo coders, nothing
    sent yet."""
    h2 = Machine(config=CONFIG)
    hpackmemo.install(h2)
    return h2


def start(h2: H2Connection, settings) -> None:
    """Queue the connection preface of ``h2`` with the ``[http2]`` ``settings``. They hold
    from the start: h2 would otherwise apply them only once the client acknowledged them."""
    h2.local_settings = Settings(client=False, initial_values={
        SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
        SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
        SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
    })
    h2.decoder.max_header_list_size = settings.max_header_list_size
    h2.initiate_connection()
    extra = settings.connection_window_size - _DEFAULT_WINDOW
    if extra > 0:
        h2.increment_flow_control_window(extra)


def draining_goaway(last_stream: int) -> bytes:
    """A GOAWAY(NO_ERROR) frame naming ``last_stream``, for a graceful shutdown. Written by
    hand: h2's ``close_connection()`` would forbid any further frame on the open streams."""
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream
    frame.error_code = ErrorCodes.NO_ERROR
    return frame.serialize()
