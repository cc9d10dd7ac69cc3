"""Several Python threads: producers, consumers, blocking publishes that release the GIL."""

import threading
import time

import pytest

import pushpoll
from conftest import drain, payload, seq_of


def run_threads(*targets):
    errors = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # reported by the test thread
                errors.append(e)

        return run

    threads = [threading.Thread(target=guard(fn)) for fn in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
        assert not th.is_alive()
    if errors:
        raise errors[0]


def test_producer_thread_and_consumer(make_topic):
    # A ring much smaller than the stream: the producer blocks for room many times, without the
    # GIL, while the consumer (which needs the GIL) frees it.
    t = make_topic(capacity=4096, publish_timeout=10.0)
    sub = t.subscribe()
    n = 20_000

    def produce():
        for i in range(n):
            t.publish(payload(i, 24), tag=i % 3)

    got = []

    def consume():
        while len(got) < n:
            with sub.poll(256) as batch:
                assert batch.gap == 0
                for m in batch:
                    got.append((m.seq, m.tag, seq_of(m.data)))

    run_threads(produce, consume)
    assert got == [(i, i % 3, i) for i in range(n)]
    assert t.stats().full_waits > 0


def test_many_producers_keep_their_own_order(make_topic):
    t = make_topic(capacity=1 << 16, publish_timeout=10.0)
    sub = t.subscribe()
    producers, per_producer = 4, 5000

    def produce(p):
        def run():
            for i in range(per_producer):
                t.publish(payload(i, 16), tag=p)

        return run

    seen = {p: [] for p in range(producers)}

    def consume():
        total = 0
        while total < producers * per_producer:
            with sub.poll() as batch:
                for m in batch:
                    seen[m.tag].append(seq_of(m.data))
                    total += 1

    run_threads(consume, *(produce(p) for p in range(producers)))
    for p in range(producers):
        assert seen[p] == list(range(per_producer))


def test_large_payloads_from_several_threads(make_topic):
    size = 200_000  # over the GIL-free threshold: copied without the GIL
    t = make_topic(capacity=1 << 22, max_message=1 << 18, publish_timeout=10.0)
    sub = t.subscribe()
    per_thread = 20
    blobs = {p: bytes([p + 1]) * size for p in range(3)}

    def produce(p):
        return lambda: [t.publish(blobs[p], tag=p) for _ in range(per_thread)]

    counts = {p: 0 for p in range(3)}

    def consume():
        while sum(counts.values()) < 3 * per_thread:
            with sub.poll(4) as batch:
                for m in batch:
                    assert m.data == blobs[m.tag]
                    counts[m.tag] += 1

    run_threads(consume, *(produce(p) for p in range(3)))
    assert counts == {p: per_thread for p in range(3)}


def test_a_blocked_publish_lets_other_threads_run(make_topic):
    t = make_topic(capacity=4096, publish_timeout=0.5, stall_timeout=60)
    held = t.subscribe()  # never reads
    while t.try_publish(b"x" * 64):
        pass
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        with pytest.raises(pushpoll.Full):
            t.publish(b"x" * 64)  # waits 0.5 s without the GIL
    finally:
        stop.set()
        ticker.join()
    assert len(ticks) > 20


def test_closing_a_topic_while_a_publisher_waits(make_topic):
    t = make_topic(capacity=4096, publish_timeout=30.0, stall_timeout=60)
    held = t.subscribe()  # noqa: F841 (holds the ring back)
    while t.try_publish(b"x" * 64):
        pass
    raised = []

    def publish():
        try:
            t.publish(b"x" * 64)
        except pushpoll.Closed as e:
            raised.append(e)

    th = threading.Thread(target=publish)
    th.start()
    time.sleep(0.1)
    t.close()
    th.join(10)
    assert not th.is_alive()
    assert len(raised) == 1


def test_one_subscriber_shared_by_threads_never_crashes(make_topic):
    # A subscriber has one reader at a time: calls are serialized, and a poll releases the batch
    # another thread still iterates (which then raises ValueError). Nothing is read twice.
    t = make_topic(capacity=1 << 20)
    sub = t.subscribe()
    n = 20_000
    for i in range(n):
        t.publish(payload(i))
    seen = []
    lock = threading.Lock()

    def read():
        while sub.cursor < n:
            try:
                with sub.poll(64) as batch:
                    local = [seq_of(m.data) for m in batch]
            except ValueError:
                continue  # another thread released our batch
            with lock:
                seen.extend(local)

    run_threads(read, read, read)
    assert len(seen) == len(set(seen))
    assert drain(sub)[0] == []


def test_topic_and_hub_shared_by_threads(hub):
    def work(k):
        def run():
            t = hub.topic("shared")
            sub = t.subscribe(start="latest")
            for i in range(1000):
                t.publish(payload(i), tag=k)
            got, _ = drain(sub)
            assert len([1 for _, tag, _ in got if tag == k]) == 1000
            sub.close()

        return run

    run_threads(*(work(k) for k in range(4)))
    assert hub.topic("shared").head == 4000
