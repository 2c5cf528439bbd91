"""Relay: backend body -> client with a spool in between, back-pressure when the spool is full."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.interfaces import IPushProducer
from zope.interface.verify import verifyObject

from revproxy.upstream.relay import Relay
from revproxy.upstream.spool import Spool, SpoolBudget

BIG = 1 << 40


class FakeConsumer:
    """Records writes; can pause its producer after every write (a full client socket)."""

    def __init__(self, pause_on_write=False):
        self.written = []
        self.producer = None
        self.streaming = None
        self.unregistered = 0
        self.pause_on_write = pause_on_write
        self.paused = False
        self.writes_while_paused = 0

    def registerProducer(self, producer, streaming):
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self):
        self.unregistered += 1

    def write(self, data):
        if self.paused:
            self.writes_while_paused += 1
        self.written.append(data)
        if self.pause_on_write:
            self.pause()

    def pause(self):
        self.paused = True
        self.producer.pauseProducing()

    def resume(self):
        self.paused = False
        self.producer.resumeProducing()

    @property
    def body(self):
        return b"".join(self.written)


class FakeProducer:
    """A backend transport recording pause/resume calls."""

    def __init__(self):
        self.events = []
        self.paused = False

    def pauseProducing(self):
        self.events.append("pause")
        self.paused = True

    def resumeProducing(self):
        self.events.append("resume")
        self.paused = False


class Harness:
    def __init__(self, tmp_path, memory_limit=100, file_limit=1000, streaming=False,
                 chunk_size=65536, pause_on_write=False, budget=None):
        self.budget = budget if budget is not None else SpoolBudget(BIG, BIG)
        self.spools = []
        self.completed = 0
        self.aborted = 0
        self.consumer = FakeConsumer(pause_on_write)
        self.producer = FakeProducer()

        def factory():
            spool = Spool(self.budget, memory_limit, file_limit, str(tmp_path))
            self.spools.append(spool)
            return spool

        self.relay = Relay(
            self.consumer, self.producer, None if streaming else factory,
            self.on_complete, chunk_size=chunk_size, on_abort=self.on_abort,
        )

    def on_complete(self):
        self.completed += 1

    def on_abort(self):
        self.aborted += 1


def test_registers_as_streaming_push_producer(tmp_path):
    """The relay registers itself with the consumer as a streaming IPushProducer."""
    h = Harness(tmp_path)
    assert h.consumer.producer is h.relay and h.consumer.streaming is True
    assert verifyObject(IPushProducer, h.relay)


def test_fast_path_writes_directly_without_spool(tmp_path):
    """With an unpaused consumer and nothing held, data goes straight through, uncopied."""
    h = Harness(tmp_path)
    piece = b"hello" * 10
    h.relay.data(piece)
    assert h.consumer.written[0] is piece
    assert h.spools == [] and held(h.relay) == 0


def test_empty_piece_is_ignored(tmp_path):
    """An empty body piece writes nothing."""
    h = Harness(tmp_path)
    h.relay.data(b"")
    assert h.consumer.written == []


def test_paused_consumer_gets_spooled_bytes_in_order_on_resume(tmp_path):
    """While paused bytes are spooled; on resume they arrive in order, in chunk_size pieces."""
    h = Harness(tmp_path, chunk_size=4)
    h.consumer.pause()
    h.relay.data(b"abcdef")
    h.relay.data(b"ghij")
    assert h.consumer.written == [] and held(h.relay) == 10
    h.consumer.resume()
    assert h.consumer.body == b"abcdefghij"
    assert all(len(w) <= 4 for w in h.consumer.written)
    assert held(h.relay) == 0 and h.producer.events == []


def test_slow_consumer_spills_to_file_and_budget_returns_to_zero(tmp_path):
    """Past the memory limit the spool uses its file; after completion all budget is back."""
    h = Harness(tmp_path, memory_limit=10, chunk_size=7)
    h.consumer.pause()
    pieces = [bytes([65 + i]) * 6 for i in range(5)]
    for p in pieces:
        h.relay.data(p)
    assert h.spools[0].in_file
    assert h.budget.memory_used == 6 and h.budget.disk_used == 24
    h.relay.end()
    assert h.completed == 0
    h.consumer.resume()
    assert h.consumer.body == b"".join(pieces)
    assert h.completed == 1
    assert (h.budget.memory_used, h.budget.disk_used) == (0, 0)


def test_data_arriving_during_drain_is_queued_not_written_nested(tmp_path):
    """Data delivered from inside consumer.write() is written after that write returns."""
    h = Harness(tmp_path, chunk_size=2)
    h.consumer.pause()
    h.relay.data(b"1234")
    original_write = h.consumer.write
    nested = []

    def write_then_receive(data):
        nested.append(data)
        original_write(data)
        if len(h.consumer.written) == 2:  # the last held chunk: nothing else held by then
            h.relay.data(b"56")
        assert nested.pop() == data and not nested

    h.consumer.write = write_then_receive
    h.consumer.resume()
    assert h.consumer.written == [b"12", b"34", b"56"]


def test_drain_does_not_recurse_when_consumer_resumes_inside_write(tmp_path):
    """A consumer that pauses and resumes us from inside write() sees no nested writes."""
    h = Harness(tmp_path, chunk_size=1)
    h.consumer.pause()
    h.relay.data(b"x" * 50)
    depth = [0, 0]
    original_write = h.consumer.write

    def flushing_write(data):
        depth[0] += 1
        depth[1] = max(depth)
        original_write(data)
        h.relay.pauseProducing()
        h.relay.resumeProducing()  # transport flushed synchronously
        depth[0] -= 1

    h.consumer.write = flushing_write
    h.consumer.resume()
    assert h.consumer.body == b"x" * 50
    assert depth[1] == 1


def test_consumer_repausing_during_drain_stops_after_one_write(tmp_path):
    """A consumer that pauses inside write() gets exactly one chunk per resume (no recursion)."""
    h = Harness(tmp_path, chunk_size=3, pause_on_write=True)
    h.consumer.pause()
    h.relay.data(b"abcdefgh")
    for expected in (b"abc", b"abcdef", b"abcdefgh"):
        h.consumer.resume()
        assert h.consumer.body == expected
    assert h.consumer.writes_while_paused == 0


def test_cap_reached_pauses_producer_and_resumes_after_drain(tmp_path):
    """A full spool pauses the backend once; it resumes when everything held has drained."""
    h = Harness(tmp_path, memory_limit=4, file_limit=8, chunk_size=5)
    h.consumer.pause()
    h.relay.data(b"aaaa")  # memory
    h.relay.data(b"bbbbbbbb")  # file, now at the cap
    assert h.producer.events == []
    h.relay.data(b"cc")  # refused by the spool: overflow
    h.relay.data(b"dd")  # in flight after the pause: queued behind the overflow
    assert h.producer.events == ["pause"]
    assert held(h.relay) == 16
    h.consumer.resume()
    assert h.consumer.body == b"aaaabbbbbbbbccdd"
    assert h.producer.events == ["pause", "resume"]
    h.relay.data(b"ee")  # spooling/fast path works again
    assert h.consumer.body.endswith(b"ee")


def test_piece_after_a_refused_one_queues_behind_it_even_if_it_fits(tmp_path):
    """Once the spool refused a piece, a later smaller piece must not jump ahead into the spool."""
    h = Harness(tmp_path, memory_limit=0, file_limit=10)
    h.consumer.pause()
    h.relay.data(b"a" * 8)
    h.relay.data(b"bbb")  # 11 > 10: refused
    h.relay.data(b"cc")  # 10 would fit, but must follow "bbb"
    h.consumer.resume()
    assert h.consumer.body == b"a" * 8 + b"bbbcc"


def test_producer_not_resumed_while_held_bytes_remain(tmp_path):
    """A partial drain (consumer pauses again) leaves the backend paused."""
    h = Harness(tmp_path, memory_limit=0, file_limit=4, chunk_size=2, pause_on_write=True)
    h.consumer.pause()
    h.relay.data(b"1234")
    h.relay.data(b"56")
    h.consumer.resume()
    assert h.producer.events == ["pause"]


def test_on_complete_fires_once_after_end_and_full_drain(tmp_path):
    """on_complete waits for the last byte, fires once, and unregisters from the consumer."""
    h = Harness(tmp_path, chunk_size=2, pause_on_write=True)
    h.consumer.pause()
    h.relay.data(b"abcd")
    h.relay.end()
    h.consumer.resume()
    assert h.completed == 0 and h.consumer.unregistered == 0
    h.consumer.resume()
    assert h.completed == 1 and h.consumer.unregistered == 1
    h.consumer.resume()
    h.relay.end()
    assert h.completed == 1 and h.consumer.body == b"abcd"


def test_end_with_nothing_held_completes_at_once(tmp_path):
    """A body that went entirely through the fast path completes on end()."""
    h = Harness(tmp_path)
    h.relay.data(b"x")
    h.relay.end()
    assert h.completed == 1 and h.consumer.unregistered == 1


def test_end_never_resumes_a_paused_producer(tmp_path):
    """After end() the backend is left paused even when the spool drains."""
    h = Harness(tmp_path, memory_limit=0, file_limit=2)
    h.consumer.pause()
    h.relay.data(b"abc")
    h.relay.end()
    h.consumer.resume()
    assert h.consumer.body == b"abc" and h.completed == 1
    assert h.producer.events == ["pause"]


def test_abort_drops_everything_and_never_completes(tmp_path):
    """abort() closes the spool (budget back to zero) and on_complete never fires afterwards."""
    h = Harness(tmp_path, memory_limit=2)
    h.consumer.pause()
    h.relay.data(b"abcdef")
    h.relay.abort()
    assert (h.budget.memory_used, h.budget.disk_used) == (0, 0)
    assert h.consumer.unregistered == 1
    h.relay.data(b"more")
    h.relay.end()
    h.consumer.resume()
    assert h.consumer.written == [] and h.completed == 0 and h.aborted == 0


def test_stop_producing_aborts_and_tells_owner_once(tmp_path):
    """The consumer going away aborts the relay and calls on_abort exactly once."""
    h = Harness(tmp_path)
    h.consumer.pause()
    h.relay.data(b"abc")
    h.relay.stopProducing()
    h.relay.stopProducing()
    assert h.aborted == 1 and h.completed == 0 and held(h.relay) == 0


def test_streaming_mode_mirrors_pause_and_resume(tmp_path):
    """Without a spool, pausing the relay pauses the backend and resuming resumes it."""
    h = Harness(tmp_path, streaming=True)
    h.consumer.pause()
    assert h.producer.events == ["pause"]
    h.relay.data(b"late")  # already in flight when the backend was paused
    assert h.consumer.written == [] and held(h.relay) == 4
    h.consumer.resume()
    assert h.consumer.body == b"late"
    assert h.producer.events == ["pause", "resume"]
    assert h.spools == []


def test_streaming_mode_keeps_backend_paused_if_consumer_repauses(tmp_path):
    """When the consumer re-pauses while the held piece is written, the backend stays paused."""
    h = Harness(tmp_path, streaming=True, pause_on_write=True)
    h.consumer.pause()
    h.relay.data(b"x")
    h.consumer.resume()
    assert h.producer.events == ["pause"]


def test_streaming_mode_no_resume_after_end(tmp_path):
    """After end() pause/resume from the consumer no longer reach the backend."""
    h = Harness(tmp_path, streaming=True)
    h.consumer.pause()
    h.relay.end()
    h.consumer.resume()
    assert h.producer.events == ["pause"] and h.completed == 1


def test_no_backend_pause_after_completion(tmp_path):
    """Once complete (backend connection possibly reused) a late pause does not reach it."""
    h = Harness(tmp_path, streaming=True)
    h.relay.data(b"x")
    h.relay.end()
    h.relay.pauseProducing()
    assert h.producer.events == [] and h.completed == 1


# Any interleaving delivers exactly the body, in order.

op = st.one_of(
    st.tuples(st.just("data"), st.binary(min_size=1, max_size=30)),
    st.tuples(st.just("pause"), st.none()),
    st.tuples(st.just("resume"), st.none()),
    st.tuples(st.just("end"), st.none()),
)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(op, max_size=40),
    streaming=st.booleans(),
    pause_on_write=st.booleans(),
    memory_limit=st.integers(0, 40),
    file_limit=st.integers(0, 60),
    chunk_size=st.integers(1, 20),
)
def test_any_interleaving_delivers_the_body_in_order(
    tmp_path_factory, ops, streaming, pause_on_write, memory_limit, file_limit, chunk_size
):
    """The consumer gets exactly the concatenated data, never while paused; completion is last."""
    tmp = tmp_path_factory.mktemp("relay")
    h = Harness(tmp, memory_limit, file_limit, streaming, chunk_size, pause_on_write)
    sent = []
    ended = []

    def on_complete():
        assert ended and h.consumer.body == b"".join(sent)
        h.completed += 1

    h.relay._on_complete = on_complete
    events_at_end = None
    for name, arg in ops:
        if name == "data" and not ended:
            sent.append(arg)
            h.relay.data(arg)
        elif name == "pause" and not h.consumer.paused:
            h.consumer.pause()
        elif name == "resume" and h.consumer.paused:
            h.consumer.resume()
        elif name == "end" and not ended:
            ended.append(True)
            events_at_end = len(h.producer.events)
            h.relay.end()
        assert b"".join(sent).startswith(h.consumer.body)
        assert h.completed == 0 or h.consumer.body == b"".join(sent)
    if not ended:
        ended.append(True)
        events_at_end = len(h.producer.events)
        h.relay.end()
    h.consumer.pause_on_write = False
    if h.consumer.paused:
        h.consumer.resume()
    assert h.consumer.body == b"".join(sent)
    assert h.consumer.writes_while_paused == 0
    assert h.completed == 1
    assert (h.budget.memory_used, h.budget.disk_used) == (0, 0)
    events = h.producer.events
    assert "resume" not in events[events_at_end:]
    assert events == ["pause", "resume"] * (len(events) // 2) + ["pause"] * (len(events) % 2)


def held(relay):
    """Bytes the relay holds (spool plus pieces waiting for spool room), not yet written."""
    spooled = relay._spool.pending if relay._spool is not None else 0
    return spooled + relay._overflow_bytes
