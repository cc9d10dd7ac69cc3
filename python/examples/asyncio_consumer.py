#!/usr/bin/env python3
"""An asyncio consumer fed by a producer thread.

The consumer iterates ``async for batch in sub``: the subscriber's eventfd is registered with the
event loop (loop.add_reader) only while there is nothing to read, so the loop keeps running other
tasks (here a heartbeat) and wakes once per batch, not once per message. The producer publishes
bursts from a plain thread, then closes the topic; the iteration ends once everything is read.
Prints what each side did, and the hub's wake-up counters.
"""

import asyncio
import struct
import threading
import time

import pushpoll

BURSTS = 200
PER_BURST = 500


def produce(topic):
    for burst in range(BURSTS):
        for i in range(PER_BURST):
            topic.publish(struct.pack("<Q", burst * PER_BURST + i) + b"payload!", tag=i & 1)
        time.sleep(0.001)  # a pause between bursts: the consumer parks on its eventfd
    topic.close()  # the consumer's `async for` ends once it has read everything


async def heartbeat(stop):
    beats = 0
    while not stop.is_set():
        beats += 1
        await asyncio.sleep(0.01)
    return beats


async def consume(sub):
    got = batches = errors = 0
    async for batch in sub:  # ends when the topic is closed and fully read
        with batch:  # releases the batch (advances the cursor) at the end of the block
            batches += 1
            for m in batch:
                (value,) = struct.unpack_from("<Q", m.data)
                errors += value != m.seq
                got += 1
    return got, batches, errors


async def main():
    with pushpoll.Hub() as hub:
        topic = hub.topic("example", capacity=1 << 20, overflow="block", publish_timeout=10.0)
        sub = topic.subscribe(start="oldest")
        stop = asyncio.Event()
        beats = asyncio.create_task(heartbeat(stop))
        producer = threading.Thread(target=produce, args=(topic,))
        start = time.perf_counter()
        producer.start()
        got, batches, errors = await consume(sub)
        secs = time.perf_counter() - start
        stop.set()
        producer.join()
        stats = hub.wake_stats()
        print(f"received {got} messages in {batches} batches in {secs:.2f} s "
              f"({got / secs / 1e6:.2f} M/s), {errors} errors")
        print(f"the event loop stayed live: {await beats} heartbeats meanwhile")
        print(f"wake-ups: {stats.wakeups_sent} eventfd writes for {stats.arms} armings "
              f"(backend {hub.backend})")


if __name__ == "__main__":
    asyncio.run(main())
