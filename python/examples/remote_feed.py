"""A feed in one process, read by others (examples/remote_reader.cpp, or remote_reader.py): serves
topic "ticks" and publishes a price every millisecond for ten seconds, then closes the topic.

    python remote_feed.py /tmp/pushpoll-feed.sock
"""

import struct
import sys
import time

import pushpoll


def main(path: str) -> None:
    with pushpoll.Hub(shared=True) as hub:  # shared: other processes map the topics
        ticks = hub.topic("ticks")
        with hub.serve(path) as server:  # this user's processes may read
            print(f"serving 'ticks' at {path}")
            for i in range(10_000):
                ticks.publish(struct.pack("d", 100.0 + (i % 100) / 100))
                time.sleep(0.001)
            ticks.close()
            print(f"published {ticks.head} ticks to {server.admitted} readers")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pushpoll-feed.sock")
