"""Shared memory: arrays through /dev/shm, shared_array, TransferableTypedData, and clean-up."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

import stemnb
from stemnb import Isolate
from stemnb._shm import session_segments, sweep_stale_sessions

np = pytest.importorskip("numpy")
cloudpickle = pytest.importorskip("cloudpickle")

pytestmark = pytest.mark.timeout(180)

WAIT = 30


# ---------------------------------------------------------------------- functions run remotely
def identity(x):
    return x


def try_write(a) -> tuple[bool, str]:
    try:
        a[0] = -1.0
    except ValueError:
        return a.flags.writeable, "read-only"
    return a.flags.writeable, f"wrote {a[0]}"


def set_first(a, value: float) -> float:
    a[0] = value
    return float(a.sum())


def read_at(a, i: int) -> float:
    return float(a[i])


def materialize_and_sum(t) -> tuple[float, bool]:
    arr = t.materialize()
    arr[0] += 1  # writable and private to this process
    return float(arr.sum()), bool(arr.flags.writeable)


def hold_segments_until_killed(big: stemnb.SendPort, notice: stemnb.SendPort) -> None:
    held = stemnb.shared_array(1 << 20)
    big.send(np.arange(1 << 18, dtype=np.float64))  # queued, not yet read, when the worker dies
    notice.send(("holding", os.getpid(), held._stemnb_segment[0]))  # same connection: arrives after
    time.sleep(3600)  # the workload being killed; the test never waits on it


_kept_alive: list = []  # in the isolate: what it holds when it crashes


def hold_segments_then_crash(reply: stemnb.SendPort) -> None:
    held = stemnb.shared_array(1 << 20)
    kept = stemnb.TransferableTypedData(np.ones(1 << 18))
    port = stemnb.ReceivePort()

    def on_message(message: object) -> None:
        import ctypes

        ctypes.string_at(0)  # segfault while holding both segments

    port.listen(on_message)
    _kept_alive.append((held, kept))
    reply.send((held._stemnb_segment[0], kept._name, port.send_port))


def send_transferable_and_end(reply: stemnb.SendPort) -> None:
    reply.send(stemnb.TransferableTypedData(np.full(1 << 18, 2.0)))


def sum_arrays(reply: stemnb.SendPort) -> None:
    with stemnb.ReceivePort("sums") as port:
        reply.send(port.send_port)
        total = 0.0
        for _ in range(3):
            total += float(port.receive(timeout=WAIT).sum())
    reply.send(total)


def send_arrays(target: stemnb.SendPort) -> None:
    for i in range(3):
        target.send(np.full(1 << 18, float(i)))


def listen_quietly(reply: stemnb.SendPort) -> None:
    port = stemnb.ReceivePort()
    port.listen(lambda message: None)
    reply.send(port.send_port)


def new_segments(before: set[str]) -> set[str]:
    gc.collect()
    return set(session_segments()) - before


# ---------------------------------------------------------------------- arrays through run
@pytest.mark.slow
def test_a_200mb_array_round_trip_through_run_leaves_no_segment_once_dropped(pool):
    before = set(session_segments())
    big = np.arange(25_000_000, dtype=np.float64)  # 200 MB
    back = pool.run(identity, big).result(WAIT)
    assert back.shape == big.shape and np.array_equal(back[::1_000_003], big[::1_000_003])
    assert back[-1] == 24_999_999.0
    del back
    pool.close(timeout=WAIT)
    assert new_segments(before) == set()


def test_a_received_result_array_is_read_only():
    result = stemnb.run(np.ones, 1 << 20).result(WAIT)
    assert not result.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        result[0] = 2.0


def test_a_received_argument_array_is_read_only_in_the_worker():
    a = np.zeros(1 << 20)
    assert stemnb.run(try_write, a).result(WAIT) == (False, "read-only")


def test_writable_arrays_are_copy_on_write_and_the_sender_does_not_see_writes():
    before = set(session_segments())
    a = np.zeros(1 << 20)
    with stemnb.IsolatePool(1, writable_arrays=True, debug_name="cow") as pool:
        assert pool.run(try_write, a).result(WAIT) == (True, "wrote -1.0")
        assert a[0] == 0.0
        result = pool.run(np.ones, 1 << 20).result(WAIT)
        assert result.flags.writeable
        result[0] = 5.0
        again = pool.run(identity, a).result(WAIT)  # the reused segments were not written through
        assert again[0] == 0.0 and a[0] == 0.0
        del result, again
    assert new_segments(before) == set()


# ---------------------------------------------------------------------- shared_array
def test_shared_array_writes_are_visible_across_processes():
    sa = stemnb.shared_array(1000, fill=1.0)
    assert stemnb.run(set_first, sa, 42.0).result(WAIT) == 1041.0
    assert sa[0] == 42.0  # the worker wrote our memory
    sa[1] = 7.0
    assert stemnb.run(read_at, sa, 1).result(WAIT) == 7.0


def fill_column(a, value: float) -> list:
    a[:] = value
    return a.tolist()


def test_a_strided_view_of_a_shared_array_is_the_same_memory_in_the_worker():
    sa = stemnb.shared_array((4, 6), dtype="float32", fill=0.0)
    column = sa[1:, 2]  # an offset and a stride
    assert stemnb.run(fill_column, column, 9.0).result(WAIT) == [9.0, 9.0, 9.0]
    assert sa[:, 2].tolist() == [0.0, 9.0, 9.0, 9.0]
    assert float(sa.sum()) == 27.0


def test_empty_arrays_travel_as_shared_and_transferable_data():
    before = set(session_segments())
    empty = stemnb.shared_array(0)
    assert stemnb.run(len, empty).result(WAIT) == 0
    t = stemnb.TransferableTypedData(np.zeros((0, 3), dtype=np.int16))
    back = pickle.loads(cloudpickle.dumps(t)).materialize()
    assert back.shape == (0, 3) and back.dtype == np.int16
    del empty, t, back
    assert new_segments(before) == set()


def test_transferable_typed_data_keeps_shape_and_dtype_of_a_non_contiguous_array():
    source = np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2]
    t = stemnb.TransferableTypedData(source)
    assert t.nbytes == source.nbytes
    back = stemnb.run(lambda x: x.materialize(), t).result(WAIT)
    assert back.dtype == np.int32 and np.array_equal(back, source)


def test_arrays_computed_from_a_shared_array_travel_as_their_own_values():
    sa = stemnb.shared_array(1 << 16, fill=1.0)
    derived = {"sum": sa + 1, "copy": sa.copy(), "astype": sa.astype("int32"), "product": sa * 5}
    expected = {"sum": 2.0, "copy": 1.0, "astype": 1, "product": 5.0}
    for name, arr in derived.items():
        assert pickle.loads(cloudpickle.dumps(arr))[-1] == expected[name], name
        assert stemnb.run(read_at, arr, (1 << 16) - 1).result(WAIT) == expected[name], name
    sa[-1] = 3.0  # the derived arrays are independent of the shared memory
    assert derived["copy"][-1] == 1.0
    view = sa[-4:]
    assert len(cloudpickle.dumps(view)) < 1024  # a view is still a reference
    assert stemnb.run(read_at, view, 3).result(WAIT) == 3.0


def test_shared_array_pickles_as_a_reference_whatever_its_size():
    small = stemnb.shared_array(10)
    large = stemnb.shared_array(8 << 20, dtype="uint8")
    assert len(cloudpickle.dumps(large)) < 1024
    assert abs(len(cloudpickle.dumps(large)) - len(cloudpickle.dumps(small))) < 64


def test_a_shared_array_pickled_by_hand_refers_to_its_memory_and_leaves_no_extra_name():
    before = set(session_segments())
    sa = stemnb.shared_array(100, fill=2.0)
    data = pickle.dumps(sa)
    assert len(new_segments(before)) == 1  # no second name made for a pickle nobody may load
    loaded = pickle.loads(data)
    loaded[0] = 5.0
    assert sa[0] == 5.0 and float(loaded.sum()) == 203.0  # the same memory
    del loaded
    assert len(new_segments(before)) == 1  # dropping the loaded view leaves the creator's name
    assert float(sa.sum()) == 203.0
    del sa
    assert new_segments(before) == set()


def test_a_shared_array_segment_is_unlinked_when_its_last_view_is_dropped():
    before = set(session_segments())
    sa = stemnb.shared_array((64, 64), dtype="int32", fill=3)
    view = sa[10:20]
    assert len(new_segments(before)) == 1
    del sa
    assert len(new_segments(before)) == 1  # the slice keeps it alive
    assert int(view.sum()) == 3 * 10 * 64
    del view
    assert new_segments(before) == set()


def make_shared(n: int, value: float):
    made = stemnb.shared_array(n, fill=value)
    return made  # dropped here as soon as it is sent


def add_in_place(a, value: float) -> float:
    a += value
    return float(a.sum())


def test_a_shared_array_made_in_a_worker_arrives_after_the_worker_dropped_it():
    before = set(session_segments())
    with stemnb.IsolatePool(1) as pool:
        got = pool.run(make_shared, 1000, 2.0).result(WAIT)
        assert float(got.sum()) == 2000.0
        assert pool.run(add_in_place, got, 1.0).result(WAIT) == 3000.0  # sent back: the same memory
        assert float(got.sum()) == 3000.0
        del got
        gc.collect()
    assert new_segments(before) == set()


def wait_for_go(report) -> None:
    gate = stemnb.ReceivePort()
    report.send(gate.send_port)
    gate.receive(WAIT)
    gate.close()


def send_shared_and_end(port) -> None:
    port.send(stemnb.shared_array(16, fill=5.0))


def test_a_shared_array_sent_by_an_isolate_that_has_ended_can_still_be_read():
    before = set(session_segments())
    inbox, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
    try:
        stemnb.spawn(send_shared_and_end, inbox.send_port, on_exit=exits.send_port).result(WAIT)
        exits.receive(WAIT)  # the sender is gone, and its own segments swept
        got = inbox.receive(WAIT)
        assert got.tolist() == [5.0] * 16
        got[0] = 1.0
        assert float(got.sum()) == 76.0
        del got
        gc.collect()
    finally:
        inbox.close()
        exits.close()
    assert new_segments(before) == set()


# ---------------------------------------------------------------------- TransferableTypedData
def test_transferable_typed_data_materializes_once():
    t = stemnb.TransferableTypedData(np.arange(10.0))
    arr = t.materialize()
    assert arr.tolist() == list(np.arange(10.0)) and arr.flags.writeable
    with pytest.raises(stemnb.ClosedError, match="already materialized"):
        t.materialize()
    with pytest.raises(stemnb.SerializationError):
        stemnb.ReceivePort().send_port.send(t)


def test_transferable_typed_data_pickles_to_the_same_small_size_at_any_size():
    before = set(session_segments())
    sizes = {}
    for n in (128, 8 << 20):
        t = stemnb.TransferableTypedData(np.ones(n, dtype=np.uint8))
        data = cloudpickle.dumps(t)
        sizes[n] = len(data)
        received = pickle.loads(data)  # the receiver owns it now; dropping it frees the segment
        assert int(received.materialize().sum()) == n
        del t, received
    assert sizes[8 << 20] < 1024 and abs(sizes[8 << 20] - sizes[128]) < 32
    assert new_segments(before) == set()


def test_transferable_typed_data_travels_through_run_and_is_private_to_the_receiver():
    before = set(session_segments())
    t = stemnb.TransferableTypedData(np.ones(1 << 18))
    assert stemnb.run(materialize_and_sum, t).result(WAIT) == (float(1 << 18) + 1, True)
    del t
    assert new_segments(before) == set()


def test_a_dropped_transferable_typed_data_frees_its_segment():
    before = set(session_segments())
    t = stemnb.TransferableTypedData(np.ones(1 << 18))
    assert len(new_segments(before)) == 1
    del t
    assert new_segments(before) == set()


def test_a_transferable_sent_by_an_isolate_that_then_ended_can_still_be_materialized():
    before = set(session_segments())
    with stemnb.ReceivePort() as replies, stemnb.ReceivePort() as exit_port:
        stemnb.spawn(send_transferable_and_end, replies.send_port, on_exit=exit_port.send_port).result(WAIT)
        exit_port.receive(timeout=WAIT)
        t = replies.receive(timeout=WAIT)
        assert float(t.materialize().sum()) == 2.0 * (1 << 18)
    del t
    assert new_segments(before) == set()


def test_a_transferable_dropped_by_a_closed_port_frees_its_segment():
    before = set(session_segments())
    closed = stemnb.ReceivePort()
    closed.close()
    closed.send_port.send(stemnb.TransferableTypedData(np.ones(1 << 18)))  # dropped on arrival
    queued = stemnb.ReceivePort()
    queued.send_port.send({"payload": stemnb.TransferableTypedData(np.ones(1 << 18))})
    queued.close()  # dropped from the queue
    assert new_segments(before) == set()


def test_a_shared_array_dropped_by_a_closed_port_leaves_no_segment_once_its_creator_drops_it():
    before = set(session_segments())
    sa = stemnb.shared_array(1 << 16, fill=1.0)
    closed = stemnb.ReceivePort()
    closed.close()
    closed.send_port.send(sa)  # dropped on arrival
    queued = stemnb.ReceivePort()
    queued.send_port.send([sa[:10]])
    queued.close()  # dropped from the queue
    del sa
    gc.collect()
    assert new_segments(before) == set()


def test_a_cancelled_call_holding_a_shared_array_leaves_no_segment(port):
    before = set(session_segments())
    with stemnb.IsolatePool(1) as pool:
        blocker = pool.run(wait_for_go, port.send_port)
        go = port.receive(WAIT)
        sa = stemnb.shared_array(1 << 16, fill=1.0)
        queued = pool.run(add_in_place, sa, 1.0)
        t = stemnb.TransferableTypedData(np.ones(1 << 16))
        queued_t = pool.run(len, t)
        assert queued.cancel() and queued_t.cancel()
        go.send(None)
        blocker.result(WAIT)
        del sa, t
        gc.collect()
    assert new_segments(before) == set()


def test_large_messages_between_two_isolates_leave_no_segment():
    before = set(session_segments())
    with stemnb.ReceivePort() as replies, stemnb.ReceivePort() as exits:
        stemnb.spawn(sum_arrays, replies.send_port, on_exit=exits.send_port).result(WAIT)
        target = replies.receive(timeout=WAIT)
        stemnb.spawn(send_arrays, target, on_exit=exits.send_port).result(WAIT)
        assert replies.receive(timeout=WAIT) == float(1 << 18) * 3
        exits.receive(timeout=WAIT)
        exits.receive(timeout=WAIT)
    assert new_segments(before) == set()


def test_a_large_message_to_the_port_of_an_ended_isolate_is_dropped_and_freed():
    before = set(session_segments())
    with stemnb.ReceivePort() as replies, stemnb.ReceivePort() as exit_port:
        iso = stemnb.spawn(listen_quietly, replies.send_port, on_exit=exit_port.send_port).result(WAIT)
        inbox = replies.receive(timeout=WAIT)
        iso.kill(Isolate.IMMEDIATE)
        exit_port.receive(timeout=WAIT)
        inbox.send(np.ones(1 << 18))  # nobody there: dropped without an error
        inbox.send(stemnb.TransferableTypedData(np.ones(1 << 18)))
    assert new_segments(before) == set()


# ---------------------------------------------------------------------- clean-up after deaths
def test_no_segment_is_left_after_a_worker_is_sigkilled_mid_call(pool, port):
    before = set(session_segments())
    notices = stemnb.ReceivePort("notices")
    fut = pool.run(hold_segments_until_killed, port.send_port, notices.send_port)
    kind, pid, name = notices.receive(timeout=WAIT)
    notices.close()
    assert kind == "holding" and name in session_segments()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(stemnb.IsolateExitedError) as info:
        fut.result(WAIT)
    assert info.value.signal == signal.SIGKILL
    assert name not in session_segments()
    in_flight = port.receive(timeout=WAIT)  # handed over to us before the worker died
    assert np.array_equal(in_flight, np.arange(1 << 18, dtype=np.float64))
    del in_flight
    assert pool.run(identity, 1).result(WAIT) == 1
    assert {n for n in new_segments(before) if f"-{pid}-" in n} == set()


def test_no_segment_is_left_after_an_isolate_crashes_while_holding_segments():
    before = set(session_segments())
    with stemnb.ReceivePort() as replies, stemnb.ReceivePort() as exit_port:
        stemnb.spawn(hold_segments_then_crash, replies.send_port, on_exit=exit_port.send_port).result(WAIT)
        shared_name, transferable_name, port = replies.receive(timeout=WAIT)
        assert {shared_name, transferable_name} <= set(session_segments())
        port.send("crash")
        exit_port.receive(timeout=WAIT)
    assert new_segments(before) == set()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_large_messages_queued_in_a_paused_isolate_are_freed_when_it_is_killed():
    before = set(session_segments())
    with stemnb.ReceivePort() as replies, stemnb.ReceivePort() as exit_port:
        iso = stemnb.spawn(listen_quietly, replies.send_port, on_exit=exit_port.send_port).result(WAIT)
        inbox = replies.receive(timeout=WAIT)
        iso.pause()
        for _ in range(3):
            inbox.send(np.ones(1 << 18))
        # handed over on sending: the three segments now belong to the isolate
        assert len([n for n in session_segments() if f"-{iso.pid}-h" in n]) == 3
        iso.kill(Isolate.IMMEDIATE)
        exit_port.receive(timeout=WAIT)
    assert new_segments(before) == set()


def test_stale_segments_and_claim_semaphores_of_a_dead_session_are_swept():
    dead = _dead_pid()
    stale = f"/dev/shm/stemnb-{dead}xdeadbeef-{dead}-0"
    stale_lock = f"/dev/shm/sem.stemnb-{dead}xdeadbeef-{dead}-c0"
    foreign = f"/dev/shm/not-stemnb-{dead}-test"
    foreign_lock = f"/dev/shm/sem.loky-{dead}-test"
    live = stemnb.shared_array(16)
    for path in (stale, stale_lock, foreign, foreign_lock):
        with open(path, "wb") as fh:
            fh.write(b"x")
    try:
        assert sweep_stale_sessions() >= 2
        assert not os.path.exists(stale) and not os.path.exists(stale_lock)
        assert os.path.exists(foreign) and os.path.exists(foreign_lock)  # not ours: untouched
        assert live._stemnb_segment[0] in session_segments()  # a live session is kept
    finally:
        for path in (stale, stale_lock, foreign, foreign_lock):
            if os.path.exists(path):
                os.unlink(path)


def test_a_new_session_sweeps_stale_segments_when_it_starts():
    dead = _dead_pid()
    stale = f"/dev/shm/stemnb-{dead}xfeedf00d-{dead}-3"
    with open(stale, "wb") as fh:
        fh.write(b"x")
    env = {k: v for k, v in os.environ.items() if k != "STEMNB_SESSION"}
    try:
        subprocess.run([sys.executable, "-c", "from stemnb._runtime import ensure_started; ensure_started()"],
                       env=env, check=True, timeout=WAIT)
        assert not os.path.exists(stale)
    finally:
        if os.path.exists(stale):
            os.unlink(stale)


# ---------------------------------------------------------------------- a /dev/shm that is too small
@pytest.fixture
def tiny_dir(tmp_path):
    """A 1 MB tmpfs (needs root to mount; the test is skipped otherwise)."""
    target = tmp_path / "tiny-shm"
    target.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


def point_shm_at(monkeypatch, directory) -> None:
    """Make this process create its segments in ``directory`` (and warn afresh)."""
    import stemnb._serialize
    import stemnb._shm

    monkeypatch.setattr(stemnb._shm, "SHM_DIR", str(directory))
    monkeypatch.setattr(stemnb._serialize, "_warned", False)


def test_a_too_small_dev_shm_falls_back_to_the_pipe_with_a_warning(tiny_dir, monkeypatch):
    big = np.arange(1 << 19, dtype=np.float64)  # 4 MB, more than the 1 MB tmpfs holds
    with monkeypatch.context() as patch, stemnb.ReceivePort() as port:
        point_shm_at(patch, tiny_dir)
        with pytest.warns(stemnb.SharedMemoryWarning, match="too small or full"):
            port.send_port.send(big)
        assert np.array_equal(port.receive(timeout=WAIT), big)
        port.send_port.send(big)  # warned once; still works
        assert np.array_equal(port.receive(timeout=WAIT), big)
    assert os.listdir(tiny_dir) == []


def test_a_too_small_dev_shm_still_runs_calls_with_large_arguments(tiny_dir, monkeypatch):
    big = np.arange(1 << 19, dtype=np.float64)
    with stemnb.IsolatePool(1, debug_name="tiny") as pool:
        assert pool.run(identity, 1).result(WAIT) == 1  # the pool is up before /dev/shm "shrinks"
        with monkeypatch.context() as patch:
            point_shm_at(patch, tiny_dir)
            with pytest.warns(stemnb.SharedMemoryWarning):
                assert pool.run(np.sum, big).result(WAIT) == float(big.sum())
            assert os.listdir(tiny_dir) == []


def test_a_transferable_that_does_not_fit_raises_and_leaves_no_file(tiny_dir, monkeypatch):
    big = np.arange(1 << 19, dtype=np.float64)  # 4 MB into a 1 MB tmpfs
    with monkeypatch.context() as patch:
        point_shm_at(patch, tiny_dir)
        with pytest.raises(stemnb.SharedMemoryError, match="too small or full"):
            stemnb.TransferableTypedData(big)
    assert os.listdir(tiny_dir) == []


def _mapped_paths() -> str:
    with open("/proc/self/maps") as maps:
        return maps.read()


def test_making_a_transferable_leaves_no_mapping_of_the_copy_in_the_creator():
    # written with pwrite: the creator never maps (and so never has to unmap) the whole copy
    data = np.arange(1 << 20, dtype=np.float64)  # 8 MB
    ttd = stemnb.TransferableTypedData(data)
    name = ttd._name
    assert name is not None and name not in _mapped_paths()
    with stemnb.ReceivePort() as port:
        port.send_port.send(ttd)
        assert np.array_equal(port.receive(timeout=WAIT).materialize(), data)
    assert not os.path.exists(os.path.join(stemnb._shm.SHM_DIR, name))


def test_a_sweep_waits_for_another_thread_that_has_unlinked_a_segment_but_not_yet_unregistered_it(monkeypatch):
    """The root's exit sweep must not return while a daemon thread of this process (an exit
    listener sweeping a dead isolate's segments) is between the two steps: the interpreter would
    end that thread and the tracker warn about a segment nobody unregistered."""
    import threading

    from stemnb import _shm

    name = f"{_shm.current_session().prefix}-999999999-0"  # a dead process's segment
    with open(os.path.join(_shm.SHM_DIR, name), "wb"):
        pass
    _shm._tracker_register(name)
    unregistered: list[str] = []
    real_unregister = _shm._tracker_unregister
    mid_unlink, release = threading.Event(), threading.Event()

    def unregister_later(segment: str) -> None:
        mid_unlink.set()
        release.wait(30)
        real_unregister(segment)
        unregistered.append(segment)

    monkeypatch.setattr(_shm, "_tracker_unregister", unregister_later)
    first = threading.Thread(target=_shm.unlink_foreign, args=(name,))
    first.start()
    assert mid_unlink.wait(30)
    monkeypatch.setattr(_shm, "_tracker_unregister", real_unregister)
    sweep = threading.Thread(target=_shm.sweep_pid, args=(999999999,))
    sweep.start()
    sweep.join(0.3)  # the file is gone already, but the sweep may not return before its unregistering
    assert sweep.is_alive()
    release.set()
    first.join(30)
    sweep.join(30)
    assert unregistered == [name] and not os.path.exists(os.path.join(_shm.SHM_DIR, name))
