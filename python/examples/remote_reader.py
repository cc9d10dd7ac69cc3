"""Reads topic "ticks" of another process's hub (examples/remote_feed.cpp, or remote_feed.py)
in place, through a read-only mapping, until the feed closes it.

    python remote_reader.py /tmp/pushpoll-feed.sock
"""

import struct
import sys

import pushpoll


def main(path: str) -> None:
    remote = pushpoll.connect(path)  # pushpoll.Refused if this user is not admitted
    sub = remote.topic("ticks").subscribe(start="oldest")
    count, last = 0, 0.0
    try:
        while True:
            sub.wait(1.0)  # parked until the feed's next publish; raises Closed at the end
            with sub.poll() as batch:
                if batch.gap:
                    print(f"lost {batch.gap} ticks")
                for m in batch:
                    (last,) = struct.unpack("d", m.data)  # read in place: m.data is read-only
                    count += 1
    except pushpoll.Closed:
        print(f"the feed closed: {count} ticks read, the last at {last:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pushpoll-feed.sock")
