import gc
import platform

import pytest

from revproxy.gcfreeze import freeze_startup_heap


class FakeGC:
    def __init__(self):
        self.calls = []
        self.frozen = 0

    def collect(self):
        self.calls.append("collect")

    def freeze(self):
        self.calls.append("freeze")
        self.frozen = 1234

    def get_freeze_count(self):
        return self.frozen


class NoFreezeGC:
    def collect(self):  # pragma: no cover - must not be called
        raise AssertionError("collect without freeze is wasted work")


def test_collects_before_freezing():
    fake = FakeGC()
    assert freeze_startup_heap(fake) == 1234
    assert fake.calls == ["collect", "freeze"]


def test_a_collector_without_freeze_is_left_alone():
    assert freeze_startup_heap(NoFreezeGC()) == 0


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="gc.freeze is CPython's")
def test_real_collector_moves_live_objects_out_of_full_collections():
    keep = [object() for _ in range(10)]
    try:
        frozen = freeze_startup_heap()
        assert frozen >= len(keep)
        assert gc.get_freeze_count() == frozen
        assert gc.collect() >= 0
        assert gc.get_freeze_count() == frozen  # a full collection leaves them frozen
    finally:
        gc.unfreeze()
