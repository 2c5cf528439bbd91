"""Spool: a FIFO of bytes in memory then an unlinked temp file, bounded by a shared budget."""

from __future__ import annotations

import os
import stat
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.upstream.spool import (
    SPOOL_PREFIX,
    Spool,
    SpoolBudget,
    TempDirError,
    clean_temp_dir,
    make_temp_dir,
)

BIG = 1 << 40


def make_spool(tmp_path, memory_limit=100, file_limit=1000, budget=None):
    budget = budget if budget is not None else SpoolBudget(BIG, BIG)
    return budget, Spool(budget, memory_limit, file_limit, str(tmp_path))


def read_all(spool, max_bytes=65536):
    out = []
    while True:
        piece = spool.read(max_bytes)
        if not piece:
            return b"".join(out)
        out.append(piece)


# SpoolBudget


def test_budget_refuses_reservation_beyond_total():
    """A reservation that would pass the total fails and takes nothing."""
    budget = SpoolBudget(total_memory=10, total_disk=20)
    assert budget.reserve_memory(6)
    assert not budget.reserve_memory(5)
    assert budget.memory_used == 6
    assert budget.reserve_disk(20)
    assert not budget.reserve_disk(1)
    assert budget.disk_used == 20


def test_budget_release_makes_room_again():
    """Released bytes can be reserved again."""
    budget = SpoolBudget(total_memory=10, total_disk=10)
    assert budget.reserve_memory(10)
    budget.release_memory(4)
    assert budget.reserve_memory(4)
    assert budget.reserve_disk(10)
    budget.release_disk(10)
    assert budget.disk_used == 0


# Spool: memory part


def test_small_writes_stay_in_memory_and_read_in_order(tmp_path):
    """Writes under the memory limit never create a file and come back in order."""
    budget, spool = make_spool(tmp_path)
    assert spool.write(b"abc") and spool.write(b"def")
    assert not spool.in_file
    assert os.listdir(str(tmp_path)) == []
    assert budget.memory_used == 6
    assert (spool.pending, spool.total) == (6, 6)
    assert spool.read() == b"abcdef"
    assert spool.pending == 0 and spool.total == 6
    assert budget.memory_used == 0


def test_read_returns_empty_when_nothing_pending(tmp_path):
    """An empty spool reads as b""."""
    _, spool = make_spool(tmp_path)
    assert spool.read() == b""


def test_read_hands_out_whole_chunk_without_copy(tmp_path):
    """A chunk that fits max_bytes is returned as the very object written."""
    _, spool = make_spool(tmp_path)
    data = b"x" * 50
    spool.write(data)
    assert spool.read(50) is data


def test_read_splits_a_chunk_at_max_bytes(tmp_path):
    """max_bytes is honoured inside a chunk; the rest follows on later reads."""
    budget, spool = make_spool(tmp_path)
    spool.write(b"0123456789")
    assert spool.read(4) == b"0123"
    assert spool.pending == 6
    assert spool.read(4) == b"4567"
    assert spool.read(4) == b"89"
    assert budget.memory_used == 0


def test_memory_budget_exhausted_spills_to_file(tmp_path):
    """When the shared memory budget is spent the piece goes to the file instead."""
    budget = SpoolBudget(total_memory=5, total_disk=BIG)
    _, spool = make_spool(tmp_path, memory_limit=100, budget=budget)
    assert spool.write(b"abcdefgh")
    assert spool.in_file
    assert budget.memory_used == 0 and budget.disk_used == 8
    assert read_all(spool) == b"abcdefgh"


# Spool: file part


def test_spills_to_file_past_memory_limit_and_keeps_order(tmp_path):
    """Bytes past the memory limit go to the file and are read after the memory bytes."""
    budget, spool = make_spool(tmp_path, memory_limit=10)
    assert spool.write(b"A" * 8)
    assert not spool.in_file
    assert spool.write(b"B" * 8)
    assert spool.in_file
    assert spool.write(b"C")  # memory has room, but must queue behind the file bytes
    assert budget.memory_used == 8 and budget.disk_used == 9
    assert read_all(spool, 5) == b"A" * 8 + b"B" * 8 + b"C"


def test_temp_file_is_unlinked_while_in_use(tmp_path):
    """The spill file leaves no directory entry behind, even while open."""
    _, spool = make_spool(tmp_path, memory_limit=0)
    assert spool.write(b"data")
    assert spool.in_file
    assert os.listdir(str(tmp_path)) == []
    assert spool.read() == b"data"


def test_write_beyond_file_limit_stores_nothing(tmp_path):
    """A piece that would pass the file cap is refused whole and leaves counters alone."""
    budget, spool = make_spool(tmp_path, memory_limit=0, file_limit=10)
    assert spool.write(b"x" * 8)
    assert not spool.write(b"y" * 3)
    assert (spool.pending, spool.total, budget.disk_used) == (8, 8, 8)
    assert read_all(spool) == b"x" * 8


def test_disk_budget_exhausted_refuses_write(tmp_path):
    """The shared disk budget bounds the file too."""
    budget = SpoolBudget(total_memory=BIG, total_disk=5)
    _, spool = make_spool(tmp_path, memory_limit=0, budget=budget)
    assert not spool.write(b"123456")
    assert spool.pending == 0 and budget.disk_used == 0


def test_fully_read_file_is_reset_and_disk_budget_returned(tmp_path):
    """Reading the file to the end frees its disk budget, so the cap applies to unread bytes."""
    budget, spool = make_spool(tmp_path, memory_limit=0, file_limit=100)
    for _ in range(5):  # 400 bytes through a 100-byte file
        assert spool.write(b"z" * 80)
        assert budget.disk_used == 80
        assert read_all(spool, 30) == b"z" * 80
        assert budget.disk_used == 0


def test_writes_return_to_memory_once_file_drained(tmp_path):
    """After the file is emptied new small pieces are kept in memory again."""
    budget, spool = make_spool(tmp_path, memory_limit=10)
    spool.write(b"a" * 20)
    read_all(spool)
    assert spool.write(b"bb")
    assert budget.memory_used == 2 and budget.disk_used == 0


def test_unusable_temp_dir_refuses_write_and_records_error(tmp_path):
    """A temp file that cannot be created makes write() return False, not raise."""
    budget = SpoolBudget(BIG, BIG)
    spool = Spool(budget, 0, 1000, str(tmp_path / "missing"))
    assert not spool.write(b"abc")
    assert isinstance(spool.last_error, OSError)
    assert spool.pending == 0 and budget.disk_used == 0


def test_close_releases_every_reservation_and_is_idempotent(tmp_path):
    """close() gives back memory and disk, drops data and refuses later writes."""
    budget, spool = make_spool(tmp_path, memory_limit=10)
    spool.write(b"m" * 10)
    spool.write(b"f" * 30)
    spool.read(3)
    spool.close()
    spool.close()
    assert (budget.memory_used, budget.disk_used) == (0, 0)
    assert spool.pending == 0
    assert spool.read() == b""
    assert not spool.write(b"late")


# Model-based: any mix of writes and reads behaves as one bytes FIFO.

ops = st.lists(
    st.one_of(
        st.tuples(st.just("w"), st.binary(min_size=0, max_size=40)),
        st.tuples(st.just("r"), st.integers(min_value=1, max_value=50)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    ops=ops,
    memory_limit=st.integers(0, 60),
    file_limit=st.integers(0, 120),
    total_memory=st.integers(0, 100),
)
def test_spool_is_a_fifo_within_limits(
    tmp_path_factory, ops, memory_limit, file_limit, total_memory
):
    """Reads return exactly the accepted bytes in order; budgets stay bounded and return to 0."""
    tmp = tmp_path_factory.mktemp("spool")
    budget = SpoolBudget(total_memory=total_memory, total_disk=BIG)
    spool = Spool(budget, memory_limit, file_limit, str(tmp))
    model = bytearray()
    for op, arg in ops:
        if op == "w":
            if spool.write(arg):
                model += arg
        else:
            got = spool.read(arg)
            assert got == bytes(model[: len(got)])
            assert len(got) <= arg and (got or not model)
            del model[: len(got)]
        assert spool.pending == len(model)
        assert budget.memory_used <= min(memory_limit, total_memory)
        assert budget.disk_used <= file_limit
    assert read_all(spool, 7) == bytes(model)
    assert (budget.memory_used, budget.disk_used) == (0, 0)
    spool.close()
    assert (budget.memory_used, budget.disk_used) == (0, 0)


# Temp directory helpers


def test_clean_temp_dir_removes_only_spool_files(tmp_path):
    """Leftover spool files go; other files and directories stay."""
    for name in (SPOOL_PREFIX + "a1", SPOOL_PREFIX + "b2", "keep.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / (SPOOL_PREFIX + "dir")).mkdir()
    assert clean_temp_dir(str(tmp_path)) == 2
    assert sorted(os.listdir(str(tmp_path))) == sorted([SPOOL_PREFIX + "dir", "keep.txt"])


def test_clean_temp_dir_missing_directory_is_clean(tmp_path):
    """A directory that does not exist holds nothing to clean."""
    assert clean_temp_dir(str(tmp_path / "nope")) == 0


def test_make_temp_dir_default_is_private_per_uid(tmp_path, monkeypatch):
    """"" gives <system temp>/revproxy-<uid>, created mode 0700."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uid = os.getuid()
    path = make_temp_dir("", uid)
    assert path == os.path.join(str(tmp_path), "revproxy-%d" % uid)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert make_temp_dir("", uid) == path  # existing private dir is reused


def test_make_temp_dir_refuses_shared_or_symlinked_default(tmp_path, monkeypatch):
    """An existing default dir that others can write to, or a symlink, is refused."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uid = os.getuid()
    open_dir = tmp_path / ("revproxy-%d" % uid)
    open_dir.mkdir()
    os.chmod(str(open_dir), 0o777)
    with pytest.raises(TempDirError):
        make_temp_dir("", uid)
    open_dir.rmdir()
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    os.symlink(str(target), str(open_dir))
    with pytest.raises(TempDirError, match="symlink"):
        make_temp_dir("", uid)


def test_make_temp_dir_creates_configured_path(tmp_path):
    """A missing configured path is created (with its parents), mode 0700, returned as is."""
    wanted = str(tmp_path / "a" / "b")
    assert make_temp_dir(wanted, os.getuid()) == wanted
    assert os.path.isdir(wanted)
    assert stat.S_IMODE(os.stat(wanted).st_mode) == 0o700
    assert make_temp_dir(wanted, os.getuid()) == wanted  # and accepted the next time


@pytest.mark.parametrize("mode", [0o777, 0o755, 0o750, 0o701, 0o710, 0o1777])
def test_make_temp_dir_refuses_configured_dir_open_to_others(tmp_path, mode):
    """An existing configured directory that group or others can access in any way is
    refused, with the path, its mode and the chmod that fixes it."""
    path = tmp_path / "spool"
    path.mkdir()
    os.chmod(str(path), mode)
    with pytest.raises(TempDirError) as caught:
        make_temp_dir(str(path), os.getuid())
    message = str(caught.value)
    assert str(path) in message
    assert "%04o" % mode in message
    assert "chmod 700 %s" % path in message


@pytest.mark.parametrize("mode", [0o700, 0o300, 0o500])
def test_make_temp_dir_accepts_owner_only_modes(tmp_path, mode):
    """Any mode without group/other bits is private enough (0700 is what we create)."""
    path = tmp_path / "spool"
    path.mkdir()
    os.chmod(str(path), mode)
    try:
        assert make_temp_dir(str(path), os.getuid()) == str(path)
    finally:
        os.chmod(str(path), 0o700)


def test_make_temp_dir_refuses_configured_dir_of_another_owner(tmp_path):
    """A private directory owned by another uid than the proxy's is refused (chown named)."""
    path = tmp_path / "spool"
    path.mkdir(mode=0o700)
    other = os.getuid() + 1
    with pytest.raises(TempDirError) as caught:
        make_temp_dir(str(path), other)
    assert "owned by uid %d" % os.getuid() in str(caught.value)
    assert "chown %d" % other in str(caught.value)


def test_make_temp_dir_refuses_configured_file(tmp_path):
    """A configured path that is a file is refused."""
    path = tmp_path / "spool"
    path.write_bytes(b"")
    with pytest.raises(TempDirError, match="not a directory"):
        make_temp_dir(str(path), os.getuid())


def test_make_temp_dir_follows_configured_symlink_and_checks_target(tmp_path):
    """A configured symlink is the operator's choice: its target must be private."""
    target = tmp_path / "real"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    os.symlink(str(target), str(link))
    assert make_temp_dir(str(link), os.getuid()) == str(link)
    os.chmod(str(target), 0o755)
    with pytest.raises(TempDirError):
        make_temp_dir(str(link), os.getuid())


def test_make_temp_dir_default_refuses_group_readable(tmp_path, monkeypatch):
    """The default directory, if it exists, must be private too (0750 is refused)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = tmp_path / ("revproxy-%d" % os.getuid())
    path.mkdir()
    os.chmod(str(path), 0o750)
    with pytest.raises(TempDirError):
        make_temp_dir("", os.getuid())


def test_build_refuses_open_temp_dir_naming_source_key_and_fix(tmp_path):
    """build() turns a bad temp_dir into a clean exit naming the config file, the key, the
    path and the expected mode (no traceback)."""
    from twisted.internet.testing import MemoryReactorClock

    from revproxy.config.load import parse_config
    from revproxy.tap import build

    path = tmp_path / "spool"
    path.mkdir()
    os.chmod(str(path), 0o755)
    config = parse_config({
        "pools": {"main": {"members": ["http://127.0.0.1:1"]}},
        "buffering": {"temp_dir": str(path)},
    }, "conf/x.toml")
    with pytest.raises(SystemExit) as caught:
        build(config, MemoryReactorClock())
    message = str(caught.value)
    assert "conf/x.toml" in message
    assert "[buffering] temp_dir" in message
    assert str(path) in message
    assert "chmod 700" in message
