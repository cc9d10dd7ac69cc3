"""The zero-copy rule: views point into the ring, and never outlive what they show."""

import gc

import numpy as np
import pytest

import pushpoll
from conftest import payload, seq_of


@pytest.fixture
def filled(make_topic):
    """A topic with 10 messages of 64 B and a subscriber at the oldest."""
    t = make_topic(capacity=1 << 16)
    sub = t.subscribe()
    for i in range(10):
        t.publish(payload(i, 64), tag=i % 4)
    return t, sub


def address(view) -> int:
    return np.frombuffer(view, dtype=np.uint8).ctypes.data


def test_data_is_a_read_only_byte_view(filled):
    _, sub = filled
    with sub.poll() as batch:
        m = next(iter(batch))
        d = m.data
        assert isinstance(d, memoryview)
        assert d.readonly and d.format == "B" and d.nbytes == 64 and d.contiguous
        assert m.data is d  # the same view each time while valid
        with pytest.raises(TypeError):
            d[0] = 1
        a = np.frombuffer(d, dtype=np.uint8)
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 1
        del a


def test_numpy_shares_memory_with_the_ring_across_subscribers(filled):
    t, first = filled
    second = t.subscribe()
    b1, b2 = first.poll(), second.poll()
    addresses = []
    for m1, m2 in zip(b1, b2):
        assert m1.seq == m2.seq
        a1 = np.frombuffer(m1.data, dtype=np.uint64)
        a2 = np.frombuffer(m2.data, dtype=np.uint64)
        # The same record, read in place by both: one address, no copies.
        assert a1.ctypes.data == a2.ctypes.data == a1.__array_interface__["data"][0]
        assert a1[0] == m1.seq
        addresses.append(a1.ctypes.data)
        del a1, a2
    # Payloads are consecutive in the ring: 64 B each, nothing between them (size and tag are in
    # the topic's index).
    assert np.all(np.diff(addresses) == 64)
    assert b1.release() and b2.release()


def test_views_are_released_with_the_batch(filled):
    _, sub = filled
    batch = sub.poll()
    msgs = list(batch)
    views = [m.data for m in msgs]
    assert bytes(views[3])[:8] == payload(3, 64)[:8]
    assert batch.release() is True
    for v in views:
        with pytest.raises(ValueError):
            v.tobytes()
        with pytest.raises(ValueError):
            v[0]
        with pytest.raises(ValueError):
            np.frombuffer(v, dtype=np.uint8)
    for m in msgs:
        with pytest.raises(ValueError, match="released"):
            m.data
        assert m.seq >= 0 and 0 <= m.tag < 4  # metadata stays readable
    with pytest.raises(ValueError, match="released"):
        batch.as_arrays()


def test_iterating_a_released_batch_raises(filled):
    _, sub = filled
    batch = sub.poll()
    it = iter(batch)
    next(it)
    batch.release()
    with pytest.raises(ValueError, match="released"):
        next(it)
    with pytest.raises(ValueError, match="released"):
        list(batch)


@pytest.mark.parametrize(
    "derive",
    [
        lambda d: np.frombuffer(d, dtype=np.uint8),
        lambda d: d[8:16],
        lambda d: memoryview(d),
        lambda d: d.cast("Q"),
        lambda d: np.asarray(d),
    ],
    ids=["numpy.frombuffer", "slice", "memoryview", "cast", "numpy.asarray"],
)
def test_derived_buffers_block_release(filled, derive):
    t, sub = filled
    batch = sub.poll()
    m = next(iter(batch))
    derived = derive(m.data)
    with pytest.raises(BufferError, match="still alive"):
        batch.release()
    assert not batch.released
    assert sub.cursor == 0
    # The derived buffer still shows the message (the batch is still held).
    assert bytes(memoryview(derived).cast("B")) in payload(0, 64)
    with pytest.raises(BufferError):
        sub.poll()  # polling again releases first: same rule
    with pytest.raises(BufferError):
        sub.close()
    assert not sub.closed
    with pytest.raises(BufferError):
        with batch:
            pass
    del derived
    assert batch.release() is True
    assert sub.cursor == 10


def test_with_block_leaves_plain_views_behind_safely(filled):
    _, sub = filled
    with sub.poll() as batch:
        for m in batch:
            last = m.data  # a lingering view does not block the release
    with pytest.raises(ValueError):
        last.tobytes()
    assert sub.cursor == 10


def test_collected_batch_is_released(filled):
    _, sub = filled
    batch = sub.poll()
    view = next(iter(batch)).data
    del batch  # no message left: the batch goes, and with it the view
    assert sub.cursor == 10
    with pytest.raises(ValueError):
        view.tobytes()


def test_collected_batch_stays_held_while_derived_buffers_live(filled):
    t, sub = filled
    batch = sub.poll()
    array = np.frombuffer(next(iter(batch)).data, dtype=np.uint64)
    del batch
    gc.collect()
    assert sub.cursor == 0  # still held: the array shows ring memory
    assert array[0] == 0
    del array  # the last derived buffer goes: the batch is released now
    assert sub.cursor == 10
    assert len(sub.poll()) == 0


def test_collected_batch_with_derived_buffers_then_poll(filled):
    _, sub = filled
    batch = sub.poll()
    array = np.frombuffer(next(iter(batch)).data, dtype=np.uint8)
    del batch
    with pytest.raises(BufferError):
        sub.poll()
    del array
    with sub.poll() as batch:
        assert len(batch) == 0
    assert sub.cursor == 10


def test_block_mode_never_overwrites_a_held_derived_buffer(make_topic):
    t = make_topic(capacity=4096, publish_timeout=0.02, stall_timeout=60)
    sub = t.subscribe()
    for i in range(40):
        t.publish(payload(i, 64))
    batch = sub.poll()
    array = np.frombuffer(next(iter(batch)).data, dtype=np.uint64).copy(), np.frombuffer(
        next(iter(batch)).data, dtype=np.uint64
    )
    del batch
    with pytest.raises(pushpoll.Full):
        for i in range(40, 200):
            t.publish(payload(i, 64))
    np.testing.assert_array_equal(array[0], array[1])  # unchanged under the publisher
    del array


def test_polling_again_releases_the_previous_batch(filled):
    t, sub = filled
    first = sub.poll(max_messages=4)
    m = next(iter(first))
    view = m.data
    second = sub.poll(max_messages=4)
    assert first.released and not second.released
    assert [x.seq for x in second] == [4, 5, 6, 7]
    with pytest.raises(ValueError):
        view.tobytes()
    with pytest.raises(ValueError):
        m.data
    assert first.release() is True  # idempotent, and reports the real outcome


def test_batch_memory_cannot_be_exported_directly(filled):
    _, sub = filled
    with sub.poll() as batch:
        m = next(iter(batch))
        exporter = m.data.obj
        with pytest.raises(BufferError):
            memoryview(exporter)


def test_many_views_of_one_batch(make_topic):
    t = make_topic(capacity=1 << 20)
    sub = t.subscribe()
    for i in range(5000):
        t.publish(payload(i))
    kept = []
    with sub.poll(max_messages=5000) as batch:
        for m in batch:
            d = m.data
            if m.seq % 1000 == 0:
                kept.append(d)
        assert [seq_of(v) for v in kept] == list(range(0, 5000, 1000))
    for v in kept:
        with pytest.raises(ValueError):
            v.tobytes()


def test_as_arrays(filled):
    t, sub = filled
    with sub.poll() as batch:
        arrays = batch.as_arrays()
        data, offsets, lengths, seqs, tags = arrays
        assert arrays.data is data
        assert (offsets.format, lengths.format, seqs.format, tags.format) == ("q", "q", "Q", "B")
        o, n = np.asarray(offsets), np.asarray(lengths)
        assert o.dtype == np.int64 and n.dtype == np.int64
        assert np.asarray(seqs).tolist() == list(range(10))
        assert np.asarray(tags).tolist() == [i % 4 for i in range(10)]
        assert n.tolist() == [64] * 10
        for m, off, ln in zip(batch, o, n):
            assert data[off : off + ln] == m.data
            assert address(data) + off == address(m.data)
        # A numeric consumer: every message's first 8 bytes, in one gather.
        u8 = np.frombuffer(data, dtype=np.uint8)
        firsts = u8[o[:, None] + np.arange(8)].copy().view("<u8").ravel()
        assert firsts.tolist() == list(range(10))
        del u8
    with pytest.raises(ValueError):
        data.tobytes()
    assert np.asarray(offsets).tolist() == o.tolist()  # the index arrays are copies: still valid


def test_as_arrays_of_a_batch_that_wraps_the_ring(make_topic):
    t = make_topic(capacity=4096, overflow="overwrite")
    sub = t.subscribe(start="latest")
    for i in range(45):  # most of a lap, so that the next batch wraps around the end
        t.publish(payload(i, 64))
    with sub.poll() as batch:
        pass
    for i in range(45, 75):
        t.publish(payload(i, 64))
    with sub.poll() as batch:
        data, offsets, lengths, seqs, _ = batch.as_arrays()
        o = np.asarray(offsets)
        assert np.any(np.diff(o) < 0)  # wrapped
        assert len(data) <= t.capacity
        for s, off, ln in zip(np.asarray(seqs), o, np.asarray(lengths)):
            assert bytes(data[off : off + ln]) == payload(int(s), 64)
    assert batch.release() is True


def test_as_arrays_of_an_empty_batch(make_topic):
    t = make_topic()
    sub = t.subscribe()
    with sub.poll() as batch:
        data, offsets, lengths, seqs, tags = batch.as_arrays()
        assert len(data) == 0 and len(offsets) == len(lengths) == len(seqs) == len(tags) == 0


def test_as_arrays_view_follows_the_rule(filled):
    _, sub = filled
    batch = sub.poll()
    derived = np.frombuffer(batch.as_arrays().data, dtype=np.uint8)
    with pytest.raises(BufferError):
        batch.release()
    del derived
    assert batch.release()


def test_aborted_flag_is_false_for_published_messages(filled):
    _, sub = filled
    with sub.poll() as batch:
        assert not any(m.aborted for m in batch)
