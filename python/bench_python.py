#!/usr/bin/env python3
"""Per-message costs of pushpoll from Python, against pyzmq inproc PUB/SUB in the same run.

    python python/bench_python.py [--messages 200000] [--size 64] [--repeat 5]

What is measured (best of --repeat runs, one thread, messages of --size bytes):

  floor       a pybind11 function that does nothing (pushpoll._core._noop), and a Python one:
              no per-message path from Python can be cheaper than the first.
  pyzmq send  PUB.send(msg), one call per message, inproc, no high-water mark.
  pyzmq recv  SUB.recv(), one call per message, with the queue already full.
  publish     Topic.publish(msg), one call per message ("overwrite": the GIL is kept;
              "block": the GIL is released around each publish, since it may wait for room).
  iterate     poll(1024) batches of an already-full topic, `for m in batch: m.data`.
  bulk        poll(4096) batches, Batch.as_arrays(), and with numpy: one gather of the first 8
              bytes of every message (u8[offsets[:, None] + arange(8)]) per batch.

The bar (issue "Python package"): publish >= 3x pyzmq send; iterate >= 3 M/s and >= pyzmq recv;
bulk >= 3x pyzmq recv.
"""

import argparse
import os
import platform
import sys
import time

# Run as `python python/bench_python.py`, this file's directory comes first on sys.path, and it
# holds the pushpoll sources without the compiled module: use the installed package instead.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import pushpoll  # noqa: E402


def best_rate(fn, n, repeat):
    """fn() processes n messages; returns the best messages/s over `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = fn()
        dt = time.perf_counter() - t0
        assert done == n, (done, n)  # a broken path must not look fast
        best = min(best, dt)
    return n / best


def floor_rates(n, repeat):
    noop = pushpoll._core._noop

    def pybind():
        for _ in range(n):
            noop()
        return n

    def py_noop():
        pass

    def python():
        for _ in range(n):
            py_noop()
        return n

    return best_rate(pybind, n, repeat), best_rate(python, n, repeat)


def zmq_rates(n, size, repeat):
    try:
        import zmq
    except ImportError:
        return None, None
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.sndhwm = 0
    pub.bind("inproc://bench")
    sub = ctx.socket(zmq.SUB)
    sub.rcvhwm = 0
    sub.connect("inproc://bench")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(0.2)  # let the subscription reach the publisher
    msg = b"x" * size

    def send():
        s = pub.send
        for _ in range(n):
            s(msg)
        return n

    def fill_then_recv():
        r = sub.recv
        got = 0
        for _ in range(n):
            got += len(r()) == size
        return got

    send_rate = best_rate(send, n, repeat)
    # Drain what the send runs queued, then time receives from a full queue, one run at a time.
    while sub.poll(100):
        sub.recv()
    recv_best = 0.0
    for _ in range(repeat):
        send()
        time.sleep(0.05)
        recv_best = max(recv_best, best_rate(fill_then_recv, n, 1))
    sub.close(linger=0)
    pub.close(linger=0)
    ctx.term()
    return send_rate, recv_best


def record_bytes(size):
    """Ring bytes one message of `size` bytes takes: a 16-byte header, padded to 8 bytes."""
    return (16 + size + 7) // 8 * 8


def ring_capacity(n, size):
    """A ring capacity (a power of two, at least 1 MiB) that holds n messages of `size` bytes."""
    return 1 << max(20, (n * record_bytes(size)).bit_length())


def publish_rate(hub, overflow, n, size, repeat):
    capacity = ring_capacity(n, size)
    t = hub.topic(f"publish-{overflow}", capacity=capacity, overflow=overflow)
    msg = b"x" * size
    pub = t.publish
    # One lap first: the ring's pages are touched once.
    for _ in range(capacity // record_bytes(size)):
        pub(msg)

    def run():
        first = t.head
        for _ in range(n):
            pub(msg)
        return t.head - first

    return best_rate(run, n, repeat)


def filled_topic(hub, n, size):
    t = hub.topic("consume", capacity=ring_capacity(n, size), overflow="overwrite")
    msg = b"x" * size
    for _ in range(n):
        t.publish(msg)
    return t


def batches(t, max_messages):
    """The batches of a new subscriber of `t`, from the oldest message until a poll comes back
    empty; each is released when the next is asked for. The subscriber is closed at the end."""
    sub = t.subscribe(start="oldest")
    poll = sub.poll
    while True:
        with poll(max_messages) as batch:
            if not len(batch):
                break
            yield batch
    sub.close()


def iterate_rate(t, n, repeat):
    def run():
        got = 0
        for batch in batches(t, 1024):
            for m in batch:
                m.data
                got += 1
        return got

    return best_rate(run, n, repeat)


def bulk_rates(t, n, repeat):
    def arrays_only():
        got = 0
        for batch in batches(t, 4096):
            got += len(batch.as_arrays().offsets)
        return got

    try:
        import numpy as np
    except ImportError:
        return best_rate(arrays_only, n, repeat), None
    first8 = np.arange(8)

    def with_numpy():
        got = 0
        checksum = 0
        for batch in batches(t, 4096):
            data, offsets, lengths, _, _ = batch.as_arrays()
            u8 = np.frombuffer(data, dtype=np.uint8)
            heads = u8[np.asarray(offsets)[:, None] + first8]  # a copy: one gather per batch
            del u8  # derived buffers must go before the batch is released
            checksum += int(heads[:, 0].sum())
            got += len(heads)
        assert checksum == got * ord("x")
        return got

    return best_rate(arrays_only, n, repeat), best_rate(with_numpy, n, repeat)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, size, repeat = args.messages, args.size, args.repeat

    try:
        import zmq

        zmq_version = f"pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()})"
    except ImportError:
        zmq_version = "pyzmq not installed"
    try:
        import numpy

        np_version = f"numpy {numpy.__version__}"
    except ImportError:
        np_version = "numpy not installed"
    print(f"pushpoll {pushpoll.__version__}, Python {platform.python_version()}, {zmq_version}, {np_version}")
    print(f"CPU: {cpu_name()}, {platform.machine()}, Linux {platform.release()}; one thread, unpinned")
    print(f"{n} messages of {size} B per run, best of {repeat}\n")

    def row(name, rate):
        if rate is None:
            print(f"  {name:38s} {'n/a':>10s}")
        else:
            print(f"  {name:38s} {rate / 1e6:7.2f} M/s {1e9 / rate:8.1f} ns/msg")

    print("floor")
    pybind, python = floor_rates(n, repeat)
    row("pybind11 no-op call", pybind)
    row("Python no-op call", python)

    print("pyzmq inproc PUB/SUB")
    zsend, zrecv = zmq_rates(n, size, repeat)
    row("send, one call per message", zsend)
    row("recv, one call per message (queue full)", zrecv)

    with pushpoll.Hub() as hub:
        print("pushpoll publish, one call per message")
        pub_over = publish_rate(hub, "overwrite", n, size, repeat)
        pub_block = publish_rate(hub, "block", n, size, repeat)
        row('publish (overflow="overwrite")', pub_over)
        row('publish (overflow="block", GIL released)', pub_block)

        t = filled_topic(hub, n, size)
        print("pushpoll poll + iterate (topic already full)")
        it = iterate_rate(t, n, repeat)
        row("for m in poll(1024): m.data", it)
        print("pushpoll bulk")
        arr, arr_np = bulk_rates(t, n, repeat)
        row("poll(4096).as_arrays()", arr)
        row("as_arrays() + numpy gather, per batch", arr_np)

    print("\nthe bar")
    checks = []
    if zsend:
        slower = min(pub_over, pub_block)
        checks.append(("publish >= 3x pyzmq send", slower >= 3 * zsend,
                       f"{slower / 1e6:.2f} M/s = {slower / zsend:.1f}x pyzmq send"))
    checks.append(("iterate >= 3 M/s", it >= 3e6, f"{it / 1e6:.2f} M/s"))
    if zrecv:
        checks.append(("iterate >= pyzmq recv", it >= zrecv, f"{it / zrecv:.1f}x pyzmq recv"))
        bulk = arr_np if arr_np is not None else arr
        checks.append(("bulk (with numpy) >= 3x pyzmq recv", bulk >= 3 * zrecv,
                       f"{bulk / 1e6:.2f} M/s = {bulk / zrecv:.1f}x pyzmq recv"))
    failed = 0
    for name, ok, measured in checks:
        failed += not ok
        print(f"  {'PASS' if ok else 'FAIL'}  {name:36s} {measured}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
