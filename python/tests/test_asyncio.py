"""asyncio: `async for batch in sub` and `async for ids in group`, fed by producer threads."""

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import pushpoll
from conftest import grouped_topics, payload, seq_of

pytestmark = pytest.mark.timeout(60)


def run(coro, timeout=30.0):
    """Runs a coroutine on a fresh event loop, under a timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_consumer_fed_by_a_producer_thread(make_topic):
    t = make_topic(capacity=1 << 16, publish_timeout=10.0)
    sub = t.subscribe()
    n = 5000

    def produce():
        for i in range(n):
            t.publish(payload(i), tag=i % 2)
            if i % 500 == 0:
                time.sleep(0.002)  # the consumer parks now and then

    async def consume():
        loop_ticks = 0
        stop = asyncio.Event()

        async def ticker():  # the loop stays responsive while the consumer waits
            nonlocal loop_ticks
            while not stop.is_set():
                loop_ticks += 1
                await asyncio.sleep(0.001)

        tick = asyncio.create_task(ticker())
        th = threading.Thread(target=produce)
        th.start()
        got = []
        async for batch in sub:
            assert len(batch) > 0 or batch.gap
            got.extend((m.seq, m.tag, seq_of(m.data)) for m in batch)
            if len(got) == n:
                break
        stop.set()
        await tick
        th.join()
        return got, loop_ticks

    got, ticks = run(consume())
    assert got == [(i, i % 2, i) for i in range(n)]
    assert ticks > 0


def test_iteration_ends_when_the_topic_is_closed_and_read(make_topic):
    t = make_topic()
    sub = t.subscribe()

    def produce():
        for i in range(100):
            t.publish(payload(i))
            if i % 10 == 0:
                time.sleep(0.005)
        t.close()

    async def consume():
        th = threading.Thread(target=produce)
        th.start()
        seqs = []
        async for batch in sub:  # ends with StopAsyncIteration at the close
            with batch:
                seqs.extend(m.seq for m in batch)
        th.join()
        return seqs

    assert run(consume()) == list(range(100))


def test_iteration_ends_when_the_hub_closes():
    hub = pushpoll.Hub(backend="syscall", mode="background")
    t = hub.topic("aio")
    sub = t.subscribe()

    async def consume():
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, t.publish, b"one")
        loop.call_later(0.1, hub.close)
        return [bytes(m.data) async for batch in sub for m in batch]

    assert run(consume()) == [b"one"]


def test_closing_the_subscriber_ends_the_iteration(make_topic):
    t = make_topic()
    sub = t.subscribe()

    async def consume():
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, sub.close)  # another callback closes it while the iterator waits
        batches = [b async for b in sub]
        return batches, loop.remove_reader(sub_fd)

    sub_fd = sub.fileno()
    batches, had_reader = run(consume())
    assert batches == [] and had_reader is False


def test_cancellation_removes_the_reader(make_topic):
    t = make_topic()
    sub = t.subscribe()
    fd = sub.fileno()

    async def main():
        async def consume():
            async for _ in sub:
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)  # parked on the fd
        loop = asyncio.get_running_loop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # remove_reader() returns True only when a reader was still registered.
        assert loop.remove_reader(fd) is False
        # The subscriber is usable again, from a new iteration.
        t.publish(b"after")
        batch = await asyncio.wait_for(sub.next_batch(), 10)
        with batch:
            return [bytes(m.data) for m in batch]

    assert run(main()) == [b"after"]


def test_next_batch_and_max_messages(make_topic):
    t = make_topic()
    sub = t.subscribe()
    for i in range(10):
        t.publish(payload(i))
    t.close()

    async def consume():
        sizes = []
        async for batch in sub.aiter_batches(max_messages=4):
            sizes.append(len(batch))
        return sizes

    assert run(consume()) == [4, 4, 2]


def test_tags_and_gaps(make_topic):
    t = make_topic(capacity=4096, overflow="overwrite")
    sub = t.subscribe(tags=1 << 2)

    async def consume():
        loop = asyncio.get_running_loop()

        def burst():
            for i in range(300):  # laps the ring: the subscriber learns its gap
                t.publish(payload(i, 64), tag=i % 4)

        loop.call_later(0.05, burst)
        batch = await sub.next_batch()
        with batch:
            return batch.gap, sorted({m.tag for m in batch})

    gap, tags = run(consume())
    assert gap > 0
    assert tags in ([], [2])


def test_the_zero_copy_rule_across_steps(make_topic):
    t = make_topic()
    sub = t.subscribe()
    t.publish(payload(0))
    t.publish(payload(1))

    async def consume():
        it = sub.aiter_batches(max_messages=1)
        batch = await it.__anext__()
        view = next(iter(batch)).data
        kept = view[2:]  # a derived buffer pins the batch
        with pytest.raises(BufferError):
            await it.__anext__()
        kept.release()
        second = await it.__anext__()
        with pytest.raises(ValueError):
            view.tobytes()  # released by the step
        return [m.seq for m in second]

    assert run(consume()) == [1]


def test_a_group_member_is_served_through_its_group(hub):
    t = hub.topic("member")
    sub = t.subscribe()
    group = pushpoll.WakeGroup(hub)
    group.add(sub)

    async def consume():
        with pytest.raises(pushpoll.Error, match="WakeGroup"):
            await sub.next_batch()

    run(consume())
    group.close()


def test_async_wake_group(hub):
    topics, group = grouped_topics(hub, "ag", 3)
    per_topic = 200

    def produce():
        for i in range(per_topic):
            for t in topics:
                t.publish(payload(i))
            if i % 50 == 0:
                time.sleep(0.002)

    async def consume():
        th = threading.Thread(target=produce)
        th.start()
        seen = {i: [] for i in range(3)}
        async for ids in group:
            for i in ids:
                with group[i].poll() as batch:
                    seen[i].extend(seq_of(m.data) for m in batch)
            if all(len(v) == per_topic for v in seen.values()):
                group.close()  # ends the iteration
        th.join()
        return seen

    seen = run(consume())
    assert all(v == list(range(per_topic)) for v in seen.values())


def test_cancelling_a_group_wait_removes_the_reader(hub):
    group = pushpoll.WakeGroup(hub)
    group.add(hub.topic("gc").subscribe())
    fd = group.fileno()

    async def main():
        task = asyncio.create_task(group.next_ready())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return asyncio.get_running_loop().remove_reader(fd)

    assert run(main()) is False
    group.close()


def test_the_asyncio_example_runs():
    example = Path(__file__).resolve().parents[1] / "examples" / "asyncio_consumer.py"
    if not example.is_file():
        pytest.skip("the examples are not next to the tests")
    result = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0, result.stderr
    assert "received 100000 messages" in result.stdout and " 0 errors" in result.stdout


def test_async_group_iteration_survives_a_hub_close():
    hub = pushpoll.Hub()
    t = hub.topic("closing")
    group = pushpoll.WakeGroup(hub)
    group.add(t.subscribe())

    async def consume():
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, t.publish, b"one")
        loop.call_later(0.1, hub.close)
        loop.call_later(0.3, group.close)  # the member left at the hub close; this ends the loop
        rounds = 0
        got = []
        async for ids in group:
            rounds += 1
            for i in ids:
                with group[i].poll() as batch:
                    got.extend(bytes(m.data) for m in batch)
        return got, rounds

    got, rounds = run(consume())
    assert got == [b"one"] and rounds < 10  # never spun on the closed topic
