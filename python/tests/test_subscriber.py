"""Subscribers: start positions, tags, gaps, Full, closing, and lifetimes in any order."""

import gc
import itertools
import time

import pytest

import pushpoll
from conftest import drain, payload, seq_of


def test_start_positions(make_topic):
    t = make_topic()
    for i in range(10):
        t.publish(payload(i))
    assert t.subscribe().cursor == 0
    assert t.subscribe(start="oldest").cursor == 0
    assert t.subscribe(start="latest").cursor == 10
    assert t.subscribe(start=4).cursor == 4
    assert t.subscribe(start=10).cursor == 10
    got, _ = drain(t.subscribe(start=7))
    assert [s for s, _, _ in got] == [7, 8, 9]


def test_start_outside_the_log_is_invalid_cursor(make_topic):
    t = make_topic()
    t.publish(b"x")
    with pytest.raises(pushpoll.InvalidCursor, match="outside"):
        t.subscribe(start=2)
    with pytest.raises(pushpoll.InvalidCursor, match="negative"):
        t.subscribe(start=-1)
    with pytest.raises(ValueError, match="start"):
        t.subscribe(start="newest")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.subscribe(start=1.5)  # type: ignore[arg-type]


def test_start_older_than_retained_is_invalid_cursor(make_topic):
    t = make_topic(capacity=4096, overflow="overwrite")
    for i in range(500):
        t.publish(payload(i, 64))
    assert t.oldest > 0
    with pytest.raises(pushpoll.InvalidCursor):
        t.subscribe(start=t.oldest - 1)
    assert t.subscribe(start=t.oldest).cursor == t.oldest


def test_tags_filter_messages(make_topic):
    t = make_topic()
    odd = t.subscribe(tags=1 << 1)
    some = t.subscribe(tags=(1 << 0) | (1 << 63))
    every = t.subscribe()
    assert odd.tags == 2
    assert every.tags == pushpoll.ALL_TAGS
    for i in range(20):
        t.publish(payload(i), tag=i % 2 if i < 19 else 63)
    got, _ = drain(odd)
    assert [s for s, _, _ in got] == list(range(1, 19, 2))
    assert {tag for _, tag, _ in got} == {1}
    got, _ = drain(some)
    assert [s for s, _, _ in got] == list(range(0, 19, 2)) + [19]
    assert len(drain(every)[0]) == 20
    assert odd.cursor == some.cursor == every.cursor == 20


def test_batch_len_counts_matching_messages_only(make_topic):
    t = make_topic()
    sub = t.subscribe(tags=1 << 3)
    for i in range(10):
        t.publish(payload(i), tag=3 if i in (2, 5) else 0)
    with sub.poll() as batch:
        assert len(batch) == 2
        assert (batch.first_seq, batch.end_seq) == (0, 10)
        assert [m.seq for m in batch] == [2, 5]
    # Only filtered-out messages: an empty batch that still moves the cursor.
    t.publish(b"x", tag=0)
    with sub.poll() as batch:
        assert len(batch) == 0 and list(batch) == []
    assert sub.cursor == 11


def test_bad_tags(make_topic):
    t = make_topic()
    with pytest.raises(pushpoll.Error, match="out of range"):
        t.publish(b"x", tag=64)
    with pytest.raises(pushpoll.Error, match="out of range"):
        t.publish(b"x", tag=-1)
    with pytest.raises(pushpoll.Error, match="out of range"):
        t.publish_many([b"x"], tag=100)
    with pytest.raises(pushpoll.Error, match="tag mask of 0"):
        t.subscribe(tags=0)
    assert t.head == 0


def test_max_messages(make_topic):
    t = make_topic()
    sub = t.subscribe()
    for i in range(10):
        t.publish(payload(i))
    with sub.poll(max_messages=3) as batch:
        assert [m.seq for m in batch] == [0, 1, 2]
    with sub.poll(0) as batch:
        assert len(batch) == 0
    with sub.poll(max_messages=100) as batch:
        assert [m.seq for m in batch] == list(range(3, 10))
    with pytest.raises(ValueError):
        sub.poll(-1)
    with pytest.raises(TypeError):
        sub.poll("many")  # type: ignore[arg-type]


def test_cursor_advances_when_the_batch_is_released(make_topic):
    t = make_topic()
    sub = t.subscribe()
    for i in range(5):
        t.publish(payload(i))
    batch = sub.poll()
    assert sub.cursor == 0
    assert sub.lag == 5
    assert batch.release() is True
    assert batch.release() is True  # idempotent
    assert sub.cursor == 5 and sub.lag == 0


def test_overwrite_reports_the_exact_gap(make_topic):
    t = make_topic(capacity=4096, overflow="overwrite")
    sub = t.subscribe()
    n = 1000
    for i in range(n):
        t.publish(payload(i, 64))
    got, gap = drain(sub, max_messages=16)
    seqs = [s for s, _, _ in got]
    assert gap > 0
    assert seqs == list(range(gap, n))
    assert all(seq_of(d) == s for s, _, d in got)
    assert t.stats().laps >= 1


def test_overwrite_while_held_is_reported_by_release(make_topic):
    t = make_topic(capacity=4096, overflow="overwrite")
    sub = t.subscribe()
    for i in range(10):
        t.publish(payload(i, 64))
    batch = sub.poll()
    for i in range(10, 500):  # laps the held batch
        t.publish(payload(i, 64))
    assert batch.intact is None
    assert batch.release() is False
    assert batch.intact is False
    with sub.poll() as nxt:
        assert nxt.gap > 0


def test_full_after_publish_timeout(make_topic):
    t = make_topic(capacity=4096, publish_timeout=0.05, stall_timeout=60)
    held = t.subscribe()  # never reads: holds the ring back
    start = time.monotonic()
    with pytest.raises(pushpoll.Full, match="publish_timeout"):
        for i in range(1000):
            t.publish(payload(i, 64))
    assert time.monotonic() - start >= 0.05
    assert not t.try_publish(payload(0, 64))
    s = t.stats()
    assert s.full_timeouts >= 2 and s.full_waits >= 1


def test_stalled_subscriber_is_detached_and_told_its_gap(make_topic):
    t = make_topic(capacity=4096, publish_timeout=2.0, stall_timeout=0.05)
    sub = t.subscribe()
    n = 500
    for i in range(n):  # blocks about stall_timeout, then the subscriber is detached
        t.publish(payload(i, 64))
    assert t.stats().detaches >= 1
    got, gap = drain(sub)
    assert gap > 0
    assert [s for s, _, _ in got] == list(range(gap, n))


def test_closed_topic(make_topic):
    t = make_topic()
    sub = t.subscribe()
    t.publish(b"kept")
    t.close()
    t.close()  # idempotent
    assert t.closed
    with pytest.raises(pushpoll.Closed, match="closed"):
        t.publish(b"x")
    with pytest.raises(pushpoll.Closed):
        t.try_publish(b"x")
    with pytest.raises(pushpoll.Closed):
        t.publish_many([b"x"])
    with pytest.raises(pushpoll.Closed):
        t.subscribe()
    got, _ = drain(sub)  # what is retained can still be read
    assert [d for _, _, d in got] == [b"kept"]


def test_closed_hub(hub):
    t = hub.topic("a")
    t.publish(b"kept")
    sub = t.subscribe()
    hub.close()
    assert hub.closed
    with pytest.raises(pushpoll.Closed):
        hub.topic("b")
    with pytest.raises(pushpoll.Closed):
        t.publish(b"x")
    assert [d for _, _, d in drain(sub)[0]] == [b"kept"]


def test_closed_subscriber(make_topic):
    t = make_topic()
    t.publish(b"x")
    sub = t.subscribe()
    with sub.poll() as batch:
        assert len(batch) == 1
    sub.close()
    sub.close()  # idempotent
    assert sub.closed
    assert sub.cursor == 1  # still readable: where to resume
    with pytest.raises(pushpoll.Closed):
        sub.poll()
    with pytest.raises(pushpoll.Closed):
        sub.lag
    assert t.stats().subscribers == 0


def test_closing_a_subscriber_releases_its_batch(make_topic):
    t = make_topic()
    t.publish(b"x")
    sub = t.subscribe()
    batch = sub.poll()
    (m,) = batch
    view = m.data
    sub.close()
    assert batch.released
    with pytest.raises(ValueError):
        view.tobytes()
    with pytest.raises(ValueError):
        m.data


def test_context_managers(hub):
    with hub.topic("cm") as t:
        with t.subscribe() as sub:
            t.publish(b"x")
            with sub.poll() as batch:
                assert len(batch) == 1
            assert batch.released
        assert sub.closed
    assert t.closed
    with pushpoll.Hub() as h:
        t2 = h.topic("x")
    assert h.closed and t2.closed


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_close_release_and_collect_in_any_order(order):
    hub = pushpoll.Hub()
    t = hub.topic("x", capacity=4096)
    sub = t.subscribe()
    for i in range(3):
        t.publish(payload(i))
    batch = sub.poll()
    m = next(iter(batch))
    view = m.data
    actions = [hub.close, t.close, sub.close, batch.release]
    for i in order:
        actions[i]()
    del actions
    # Whatever was closed first, everything that remains is safe to touch.
    assert m.seq == 0
    with pytest.raises(ValueError):
        view.tobytes()
    with pytest.raises(ValueError):
        m.data
    with pytest.raises(pushpoll.Closed):
        t.publish(b"x")
    del hub, t, sub, batch
    gc.collect()
    assert m.tag == 0


@pytest.mark.parametrize("survivor", ["batch", "message", "view", "subscriber", "topic"])
def test_hub_collected_before_what_it_made(survivor):
    hub = pushpoll.Hub()
    t = hub.topic("x")
    sub = t.subscribe()
    t.publish(b"payload")
    batch = sub.poll()
    m = next(iter(batch))
    view = m.data
    keep = {"batch": batch, "message": m, "view": view, "subscriber": sub, "topic": t}[survivor]
    del hub, t, sub, batch, m, view
    gc.collect()
    if survivor in ("batch", "message"):
        data = keep.data if survivor == "message" else next(iter(keep)).data
        assert bytes(data) == b"payload"  # the batch is still held: its memory too
    elif survivor == "view":
        with pytest.raises(ValueError):  # its batch was collected, hence released
            bytes(keep)
    elif survivor == "subscriber":
        assert len(drain(keep)[0]) == 0  # the dropped batch was released
        keep.close()
    else:
        assert keep.head == 1
        keep.publish(b"more")
    del keep
    gc.collect()


def test_resume_starts_where_a_subscriber_left_off_or_reports_the_exact_gap():
    with pushpoll.Hub() as hub:
        t = hub.topic("resume", capacity=4096, overflow="overwrite")
        for i in range(10):
            t.publish(b"%d" % i)
        with t.subscribe(start=4, resume=True).poll() as batch:
            assert (batch.gap, batch.first_seq, len(batch)) == (0, 4, 6)
        for i in range(10, 400):
            t.publish(b"%d" % i)
        oldest = t.oldest
        assert oldest > 4
        with t.subscribe(start=4, resume=True).poll() as batch:
            assert (batch.gap, batch.first_seq) == (oldest - 4, oldest)
            assert bytes(next(iter(batch)).data) == b"%d" % oldest
        with pytest.raises(pushpoll.InvalidCursor):
            t.subscribe(start=401, resume=True)
        with pytest.raises(TypeError):
            t.subscribe(start="oldest", resume=True)
