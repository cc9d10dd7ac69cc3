#!/usr/bin/env python3
"""A producer thread publishes numbered messages; two consumer threads read them in batches.

One consumer takes every message, the other only tag 1 (the odd ones). The ring is small, so the
producer often waits for room (overflow="block"): it does so without the GIL, and the consumers
keep running. Prints what each side did.
"""

import struct
import threading
import time

import pushpoll

MESSAGES = 200_000


def produce(topic):
    for i in range(MESSAGES):
        topic.publish(struct.pack("<Q", i) + b"payload!", tag=i & 1)


def consume(sub, expect_tag, report):
    got = errors = polls = 0
    want = MESSAGES if expect_tag is None else MESSAGES // 2
    while got < want:
        with sub.poll(max_messages=4096) as batch:
            polls += 1
            for m in batch:
                (value,) = struct.unpack_from("<Q", m.data)
                errors += value != m.seq or (expect_tag is not None and m.tag != expect_tag)
                got += 1
        if not len(batch):
            sub.wait(timeout=1.0)  # nothing yet: sleep (without the GIL) until pushed
    report.append((got, polls, errors))


def main():
    with pushpoll.Hub() as hub:
        topic = hub.topic("example", capacity=1 << 16, overflow="block", publish_timeout=10.0)
        every = topic.subscribe(start="oldest")
        odd = topic.subscribe(start="oldest", tags=1 << 1)
        reports = {"every": [], "odd": []}
        threads = [
            threading.Thread(target=consume, args=(every, None, reports["every"])),
            threading.Thread(target=consume, args=(odd, 1, reports["odd"])),
            threading.Thread(target=produce, args=(topic,)),
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.perf_counter() - start
        stats = topic.stats()
        print(f"published {topic.head} messages in {secs:.2f} s ({topic.head / secs / 1e6:.2f} M/s); "
              f"the producer waited for room {stats.full_waits} times")
        for name, [(got, polls, errors)] in reports.items():
            print(f"subscriber {name!r}: {got} messages in {polls} polls, {errors} errors")


if __name__ == "__main__":
    main()
