"""Wake-ups: arm(), wait(), fileno() with selectors, wake groups, closing while a thread waits."""

import asyncio
import os
import selectors
import threading
import time

import numpy as np
import pytest

import pushpoll
from conftest import drain, grouped_topics, payload, seq_of

pytestmark = pytest.mark.timeout(60)


def later(delay, fn, *args):
    """Runs fn(*args) in a thread after `delay` seconds; returns the started thread."""

    def run():
        time.sleep(delay)
        fn(*args)

    th = threading.Thread(target=run)
    th.start()
    return th


class Waiter:
    """Calls fn() in a thread and records what it returned or raised, and when."""

    def __init__(self, fn):
        self.result = self.error = None
        self.elapsed = None
        self.started = threading.Event()

        def run():
            start = time.monotonic()
            self.started.set()
            try:
                self.result = fn()
            except BaseException as e:  # reported to the test thread
                self.error = e
            self.elapsed = time.monotonic() - start

        self.thread = threading.Thread(target=run)
        self.thread.start()
        self.started.wait()

    def join(self, timeout=10):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the waiter did not return"
        return self


# ---- wait() ---------------------------------------------------------------------------------


def test_wait_times_out(make_topic):
    sub = make_topic().subscribe()
    start = time.monotonic()
    assert sub.wait(0.2) is False
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 2.0
    assert sub.wait(0) is False  # zero: a look, no wait


def test_wait_returns_when_a_thread_publishes(make_topic):
    t = make_topic()
    sub = t.subscribe()
    th = later(0.1, t.publish, b"hello")
    start = time.monotonic()
    assert sub.wait(10.0) is True
    assert time.monotonic() - start < 5.0
    th.join()
    with sub.poll() as batch:
        assert [bytes(m.data) for m in batch] == [b"hello"]


def test_wait_without_timeout(make_topic):
    t = make_topic()
    sub = t.subscribe()
    th = later(0.1, t.publish, b"x")
    assert sub.wait() is True
    th.join()


def test_wait_is_true_at_once_when_messages_are_waiting(make_topic):
    t = make_topic()
    sub = t.subscribe()
    t.publish(b"x")
    start = time.monotonic()
    assert sub.wait(10.0) is True
    assert sub.wait(None) is True  # still unread
    assert time.monotonic() - start < 1.0


def test_wait_rejects_bad_timeouts(make_topic):
    sub = make_topic().subscribe()
    with pytest.raises(ValueError, match="negative"):
        sub.wait(-1)
    with pytest.raises(ValueError, match="NaN"):
        sub.wait(float("nan"))
    with pytest.raises(TypeError):
        sub.wait("1")  # type: ignore[arg-type]


def test_wait_releases_the_batch_under_the_zero_copy_rule(make_topic):
    t = make_topic()
    sub = t.subscribe()
    t.publish(payload(0, 64))
    batch = sub.poll()
    m = next(iter(batch))
    view = m.data
    derived = np.frombuffer(view, dtype=np.uint8)
    with pytest.raises(BufferError):
        sub.wait(0)
    with pytest.raises(BufferError):
        sub.arm()
    assert not batch.released
    del derived
    assert sub.wait(0) is False  # released the batch (past the only message): nothing left
    assert batch.released
    with pytest.raises(ValueError):
        view.tobytes()


def test_wait_after_the_topic_closed_drains_then_raises_closed(make_topic):
    t = make_topic()
    sub = t.subscribe()
    t.publish(b"a")
    t.close()
    assert sub.wait(1.0) is True  # unread messages remain
    assert drain(sub)[0] == [(0, 0, b"a")]
    with pytest.raises(pushpoll.Closed, match="closed and fully read"):
        sub.wait(1.0)
    with pytest.raises(pushpoll.Closed):
        sub.arm()


def test_wait_on_a_closed_subscriber_raises_closed(make_topic):
    sub = make_topic().subscribe()
    sub.fileno()
    sub.close()
    for call in (lambda: sub.wait(0), sub.arm, sub.fileno):
        with pytest.raises(pushpoll.Closed):
            call()


def test_the_gil_is_released_while_waiting(make_topic):
    sub = make_topic().subscribe()
    waiter = Waiter(lambda: sub.wait(0.5))
    ticks = 0
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:  # pure Python: needs the GIL
        ticks += 1
    waiter.join()
    assert waiter.result is False and waiter.error is None
    assert ticks > 10_000


def test_spin_and_min_interval(make_topic):
    t = make_topic()
    sub = t.subscribe()
    assert sub.wait_options == {"spin": 0.0, "min_interval": 0.0}
    sub.set_wait_options(spin=20e-6, min_interval=0.3)
    assert sub.wait_options == {"spin": pytest.approx(20e-6), "min_interval": pytest.approx(0.3)}
    t.publish(b"a")
    assert sub.wait(5.0) is True  # the first wake-up is not delayed
    drain(sub)
    t.publish(b"b")
    start = time.monotonic()
    assert sub.wait(5.0) is True  # within min_interval of the last wake-up: delayed
    assert time.monotonic() - start >= 0.2
    with pytest.raises(ValueError):
        sub.set_wait_options(spin=-1.0)
    with pytest.raises(ValueError):
        sub.set_wait_options(min_interval=float("inf"))
    sub.set_wait_options()
    assert sub.wait_options == {"spin": 0.0, "min_interval": 0.0}


def test_spin_finds_messages_from_another_thread(make_topic):
    t = make_topic()
    sub = t.subscribe()
    sub.set_wait_options(spin=0.5)  # the publish comes while wait() spins
    th = later(0.05, t.publish, b"x")
    assert sub.wait(5.0) is True
    th.join()


# ---- closing while another thread waits ----------------------------------------------------


def test_closing_the_subscriber_while_another_thread_waits(make_topic):
    sub = make_topic().subscribe()
    waiter = Waiter(lambda: sub.wait())
    time.sleep(0.1)
    start = time.monotonic()
    sub.close()  # queues at most one wait slice behind the waiter
    assert time.monotonic() - start < 2.0
    waiter.join()
    assert isinstance(waiter.error, pushpoll.Closed)
    assert "subscriber is closed" in str(waiter.error)


def test_closing_the_topic_while_another_thread_waits(make_topic):
    t = make_topic()
    sub = t.subscribe()
    waiter = Waiter(lambda: sub.wait())
    time.sleep(0.1)
    t.close()
    waiter.join()
    assert isinstance(waiter.error, pushpoll.Closed)
    assert waiter.elapsed < 5.0


def test_closing_the_hub_while_another_thread_waits():
    hub = pushpoll.Hub()
    t = hub.topic("t")
    sub = t.subscribe()
    waiter = Waiter(lambda: sub.wait(30.0))
    time.sleep(0.1)
    hub.close()
    waiter.join()
    assert isinstance(waiter.error, pushpoll.Closed)
    del hub, t  # the waiter's subscriber keeps what it needs alive
    sub.close()


def test_closing_with_only_skipped_messages_raises_closed(make_topic):
    t = make_topic()
    sub = t.subscribe(tags=1 << 1)
    t.publish(b"skipped", tag=0)  # not for this subscriber: it still waits
    waiter = Waiter(lambda: sub.wait(30.0))
    time.sleep(0.1)
    t.close()
    waiter.join()
    assert isinstance(waiter.error, pushpoll.Closed)  # the skipped message does not count


def test_other_calls_get_in_while_a_thread_waits(make_topic):
    t = make_topic()
    sub = t.subscribe()
    waiter = Waiter(lambda: sub.wait(3.0))
    time.sleep(0.05)
    start = time.monotonic()
    for _ in range(3):
        with sub.poll() as batch:  # each queues at most one slice behind the waiter
            assert len(batch) == 0
    assert sub.cursor == 0
    assert time.monotonic() - start < 1.5
    t.publish(b"x")
    waiter.join()
    assert waiter.result is True


def test_garbage_collected_subscriber_objects_while_waiting(make_topic):
    t = make_topic()

    def wait_on_a_fresh_subscriber():
        return t.subscribe().wait(0.2)  # the only reference is the one of the call

    waiter = Waiter(wait_on_a_fresh_subscriber)
    waiter.join()
    assert waiter.result is False


# ---- arm() and fileno() ----------------------------------------------------------------------


def test_arm_returns_false_when_messages_are_waiting(make_topic):
    t = make_topic()
    sub = t.subscribe()
    assert sub.arm() is True
    assert sub.arm() is True  # armed already
    t.publish(b"x")
    assert sub.arm() is False
    drain(sub)
    assert sub.arm() is True


def test_fileno_with_a_selector(make_topic):
    t = make_topic()
    sub = t.subscribe()
    fd = sub.fileno()
    assert fd == sub.fileno() and fd >= 0
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        assert sub.arm() is True
        assert sel.select(timeout=0) == []
        th = later(0.05, lambda: [t.publish(payload(i)) for i in range(3)])
        events = sel.select(timeout=10)
        assert len(events) == 1 and events[0][0].fd == fd
        th.join()
        got, _ = drain(sub)  # the poll drains the eventfd
        assert [seq for seq, _, _ in got] == [0, 1, 2]
        assert sel.select(timeout=0) == []
        assert sub.arm() is True
        assert sel.select(timeout=0.05) == []
        t.publish(payload(3))
        assert len(sel.select(timeout=10)) == 1
        with sub.poll() as batch:
            assert [seq_of(m.data) for m in batch] == [3]
        assert sel.select(timeout=0) == []


def test_fileno_fires_once_per_arming(make_topic):
    t = make_topic()
    sub = t.subscribe()
    fd = sub.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        assert sub.arm() is True
        for i in range(100):
            t.publish(payload(i))
        assert len(sel.select(timeout=10)) == 1
        got, _ = drain(sub)
        assert len(got) == 100
        t.publish(payload(100))  # not armed: no wake-up
        assert sel.select(timeout=0.05) == []
        assert sub.arm() is False  # the message is there: poll, do not sleep


def test_fileno_stays_valid_and_becomes_readable_after_close(make_topic):
    sub = make_topic().subscribe()
    fd = sub.fileno()
    assert sub.arm() is True
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        th = later(0.05, sub.close)
        assert len(sel.select(timeout=10)) == 1  # a selector watching it wakes up
        th.join()
        sel.unregister(fd)  # still our descriptor: nobody else got the number
    os.fstat(fd)
    with pytest.raises(pushpoll.Closed):
        sub.poll()


def test_tags_do_not_wake(make_topic):
    t = make_topic()
    sub = t.subscribe(tags=1 << 5)
    fd = sub.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        assert sub.arm() is True
        t.publish(b"three", tag=3)
        assert sel.select(timeout=0.1) == []
        assert sub.arm() is True  # consumed the skipped message
        assert sub.cursor == 1
        assert sub.wait(0.1) is False
        th = later(0.05, t.publish, b"five", 5)
        assert sub.wait(10.0) is True
        th.join()
        with sub.poll() as batch:
            assert [(m.tag, bytes(m.data)) for m in batch] == [(5, b"five")]


# ---- the hub: options, backends, statistics -------------------------------------------------


def test_wake_stats_grow(hub):
    t = hub.topic("stats")
    sub = t.subscribe()
    before = hub.wake_stats()
    assert isinstance(before, pushpoll.WakeStats) and isinstance(before, tuple)
    assert len(before) == 8 and before.arms == before[6]
    for _ in range(3):
        assert sub.arm() is True
        t.publish(b"x")
        assert sub.wait(10.0) is True
        drain(sub)
    after = hub.wake_stats()
    assert after.arms >= before.arms + 3
    assert after.wakeups_sent >= before.wakeups_sent + 3
    assert after.rounds >= before.rounds + 3
    assert after.notifier_syscalls > before.notifier_syscalls
    assert after.subscriber_syscalls > before.subscriber_syscalls
    assert after.wakeups_recovered == before.wakeups_recovered == 0  # every wake-up was a push
    assert all(a >= b for a, b in zip(after, before))
    skipped = hub.wake_stats().wakeups_skipped
    tagged = t.subscribe(start="latest", tags=1 << 9)
    assert tagged.arm() is True
    t.publish(b"y", tag=1)
    assert hub.wake_stats().wakeups_skipped > skipped


@pytest.mark.parametrize("backend", ["syscall", "auto"])
@pytest.mark.parametrize("mode", ["publisher", "background"])
def test_backends_and_modes_end_to_end(backend, mode):
    with pushpoll.Hub(backend=backend, mode=mode, coalesce_window=20e-6) as hub:
        assert hub.backend in ("io_uring", "syscall")
        if backend == "syscall":
            assert hub.backend == "syscall"
        t = hub.topic("e2e", capacity=1 << 16, publish_timeout=10.0)
        sub = t.subscribe()
        n = 2000
        got = []

        def produce():
            for i in range(n):
                t.publish(payload(i))
                if i % 100 == 0:
                    time.sleep(0.001)  # let the consumer park now and then

        th = threading.Thread(target=produce)
        th.start()
        while len(got) < n:
            assert sub.wait(10.0) is True
            got.extend(seq for seq, _, _ in drain(sub)[0])
        th.join()
        assert got == list(range(n))
        assert hub.wake_stats().wakeups_sent > 0


def test_io_uring_backend_or_a_clear_error():
    try:
        hub = pushpoll.Hub(backend="io_uring", sqpoll=True)
    except pushpoll.Error as e:
        pytest.skip(f"io_uring unavailable here: {e}")
    with hub:
        assert hub.backend == "io_uring"
        t = hub.topic("uring")
        sub = t.subscribe()
        th = later(0.05, t.publish, b"x")
        assert sub.wait(10.0) is True
        th.join()


def test_hub_option_errors():
    with pytest.raises(ValueError, match="mode"):
        pushpoll.Hub(mode="eager")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="coalesce_window"):
        pushpoll.Hub(coalesce_window=-1.0)
    with pytest.raises(TypeError):
        pushpoll.Hub("auto", "publisher")  # type: ignore[misc]


# ---- wake groups ---------------------------------------------------------------------------


def test_wake_group_on_one_thread(hub):
    topics = [hub.topic(f"g{i}") for i in range(4)]
    subs = [t.subscribe() for t in topics]
    with pushpoll.WakeGroup(hub) as group:
        assert [group.add(s) for s in subs] == [0, 1, 2, 3]
        assert len(group) == 4 and list(group) == [0, 1, 2, 3]
        assert group[2] is subs[2] and subs[2].wake_group is group
        assert group.wait(0.05) == []
        th = later(0.05, topics[2].publish, b"two")
        assert group.wait(10.0) == [2]
        th.join()
        with group[2].poll() as batch:
            assert [bytes(m.data) for m in batch] == [b"two"]
        topics[0].publish(b"zero")
        topics[3].publish(b"three")
        assert group.wait(10.0) == [0, 3]
        assert group.wait(0) == [0, 3]  # unread: reported again
        for i in (0, 3):
            drain(subs[i])
        assert group.wait(0.05) == []
        stats = hub.wake_stats()
        for t in topics:
            t.publish(b"all")
        assert group.wait(10.0) == [0, 1, 2, 3]
        # Four topics, four notifier rounds: at most one write each, all to the group's eventfd
        # (members of one topic share one write: see the next test).
        assert hub.wake_stats().wakeups_sent - stats.wakeups_sent <= 4
        for s in subs:
            drain(s)
        group.remove(subs[1])
        group.remove(subs[1])  # not a member any more: ignored
        assert subs[1].wake_group is None and len(group) == 3
        with pytest.raises(KeyError):
            group[1]
        assert list(group) == [0, 2, 3] and 1 not in group
        topics[1].publish(b"alone")
        assert group.wait(0.05) == []
        assert subs[1].wait(1.0) is True  # its own eventfd again
        assert group.add(subs[1]) == 1  # the free id
    assert group.closed and len(group) == 0
    assert all(s.wake_group is None for s in subs)
    with pytest.raises(pushpoll.Closed):
        group.wait(0)


def test_wake_group_members_of_one_topic_share_one_write(hub):
    t = hub.topic("shared")
    with pushpoll.WakeGroup(hub) as group:
        for _ in range(4):
            group.add(t.subscribe())
        assert group.wait(0) == []  # arms every member, never blocks
        before = hub.wake_stats()
        t.publish(b"all")  # one notifier round, in this thread (mode="publisher")
        after = hub.wake_stats()
        # Four members pushed through one eventfd: one write.
        assert after.wakeups_sent - before.wakeups_sent == 1
        assert after.wakeups_coalesced - before.wakeups_coalesced == 3
        assert group.wait(0) == [0, 1, 2, 3]


def test_wake_group_membership_rules(hub):
    t = hub.topic("rules")
    a, b = t.subscribe(), t.subscribe()
    g1, g2 = pushpoll.WakeGroup(hub), pushpoll.WakeGroup(hub)
    g1.add(a)
    with pytest.raises(pushpoll.Error, match="this wake group already"):
        g1.add(a)
    with pytest.raises(pushpoll.Error, match="another wake group"):
        g2.add(a)
    with pytest.raises(pushpoll.Error, match="WakeGroup"):
        a.wait(0)  # a member waits through its group
    assert a.fileno() == g1.fileno()
    assert b.fileno() != g1.fileno()
    with pushpoll.Hub() as other:
        with pytest.raises(pushpoll.Error, match="own hub"):
            pushpoll.WakeGroup(other).add(b)
    b.close()
    with pytest.raises(pushpoll.Closed):
        g1.add(b)
    with pytest.raises(TypeError):
        g1.add(t)  # type: ignore[arg-type]
    a.close()  # leaves the group
    assert len(g1) == 0
    g1.close()
    g1.close()
    with pytest.raises(pushpoll.Closed):
        g1.add(t.subscribe())
    with pytest.raises(pushpoll.Closed):
        g1.fileno()


def test_wake_group_keeps_members_alive(hub):
    t = hub.topic("alive")
    group = pushpoll.WakeGroup(hub)
    group.add(t.subscribe())  # no other reference
    t.publish(b"x")
    assert group.wait(1.0) == [0]
    with group[0].poll() as batch:
        assert len(batch) == 1
    del batch  # a batch keeps its subscriber subscribed
    del group  # takes the member out; then it is collected
    assert t.stats().subscribers == 0


def test_wake_group_with_a_selector(hub):
    topics, group = grouped_topics(hub, "sel", 3)
    with selectors.DefaultSelector() as sel:
        sel.register(group.fileno(), selectors.EVENT_READ)
        assert group.wait(0) == []  # arms every member, never blocks
        th = later(0.05, topics[1].publish, b"one")
        assert len(sel.select(timeout=10)) == 1
        th.join()
        assert group.ready() == [1]
        assert sel.select(timeout=0) == []  # ready() drained it
    group.close()


def test_wake_group_wait_releases_the_gil_and_closes_from_another_thread(hub):
    t = hub.topic("gclose")
    group = pushpoll.WakeGroup(hub)
    sub = t.subscribe()
    group.add(sub)
    waiter = Waiter(lambda: group.wait())
    ticks = 0
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        ticks += 1
    assert ticks > 10_000
    sub.close()  # a member leaves while the group waits
    assert len(group) == 0
    group.close()
    waiter.join()
    assert isinstance(waiter.error, pushpoll.Closed)


def test_wake_group_woken_by_another_thread(hub):
    t = hub.topic("gthread")
    group = pushpoll.WakeGroup(hub)
    subs = [t.subscribe(tags=1 << k) for k in range(3)]
    for s in subs:
        group.add(s)
    waiter = Waiter(lambda: group.wait(10.0))
    time.sleep(0.1)
    t.publish(b"for 1", tag=1)
    waiter.join()
    assert waiter.result == [1]
    group.close()


def test_wake_group_zero_copy_rule(hub):
    t = hub.topic("gzero")
    sub = t.subscribe()
    group = pushpoll.WakeGroup(hub)
    group.add(sub)
    t.publish(payload(0, 32))
    batch = sub.poll()
    derived = np.frombuffer(next(iter(batch)).data, dtype=np.uint8)
    with pytest.raises(BufferError):
        group.wait(0)
    del derived
    assert group.wait(0) == []  # released: past the only message
    assert batch.released
    group.close()


def test_wake_group_ends_with_closed_once_every_member_is_closed_and_read(hub):
    open_topic, closing = hub.topic("open"), hub.topic("closing")
    a, b = open_topic.subscribe(), closing.subscribe()
    c = closing.subscribe(tags=1 << 1)  # sees none of what is published below
    group = pushpoll.WakeGroup(hub)
    assert [group.add(s) for s in (a, b, c)] == [0, 1, 2]
    closing.publish(b"last")
    closing.close()
    assert group.wait(1.0) == [1]  # b has an unread message; c's tags skip the only one: no news
    assert c.cursor == 1  # looking for news moved c past the message its tags skip
    drain(b)
    assert group.wait(0.1) == []  # fully read: never reported again
    assert list(group) == [0, 1, 2] and b.wake_group is group
    th = later(0.05, open_topic.publish, b"x")
    assert group.wait(10.0) == [0]  # the others are served as before
    th.join()
    drain(a)
    th = later(0.05, open_topic.close)
    with pytest.raises(pushpoll.Closed, match="every member of the wake group is closed and fully read"):
        group.wait()  # no timeout: the close ends it
    th.join()
    group.close()


def test_async_iteration_over_a_wake_group_ends_when_every_member_is_closed_and_read(hub):
    t = hub.topic("t")
    subs = [t.subscribe() for _ in range(3)]
    group = pushpoll.WakeGroup(hub)
    for s in subs:
        group.add(s)

    async def consume():
        seen = []
        async for ids in group:
            for i in ids:
                seen.extend(seq for seq, _, _ in drain(subs[i])[0])
        return seen

    async def produce():
        for i in range(5):
            t.publish(b"%d" % i)
            await asyncio.sleep(0.01)
        t.close()

    async def main():
        consumer = asyncio.ensure_future(consume())
        await produce()
        return await asyncio.wait_for(consumer, 10)

    seen = asyncio.run(main())
    assert sorted(seen) == sorted(list(range(5)) * 3)


def test_waiting_forever_on_an_empty_wake_group_is_an_error(hub):
    group = pushpoll.WakeGroup(hub)
    with pytest.raises(pushpoll.Error, match="no members"):
        group.wait()
    assert group.wait(0.01) == []
    group.close()
