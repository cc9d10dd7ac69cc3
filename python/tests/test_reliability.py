"""Blocking calls and the process around them: Ctrl-C interrupts every blocking call within a slice,
a daemon thread blocked in a wait does not abort the interpreter's exit, and a batch that stays
full says how much of it went out. Real processes: each case runs in a child interpreter."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

import pushpoll

PRELUDE = textwrap.dedent(
    """
    import os, sys, threading, time
    import pushpoll
    hub = pushpoll.Hub()
    """
)


def child(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


BLOCKING_CALLS = {
    "wait with a timeout": """
        t = hub.topic("t"); s = t.subscribe(start="latest")
        s.wait(30)
    """,
    "wait without a timeout": """
        t = hub.topic("t"); s = t.subscribe(start="latest")
        s.wait()
    """,
    "a wake group's wait without a timeout": """
        t = hub.topic("t"); s = t.subscribe(start="latest")
        g = pushpoll.WakeGroup(hub); g.add(s)
        g.wait(None)
    """,
    "a publish blocked for room": """
        t = hub.topic("t", capacity=4096, publish_timeout=30)
        held = t.subscribe()
        while t.try_publish(b"x" * 100):
            pass
        t.publish(b"x" * 100)
    """,
    "a publish_many blocked for room": """
        t = hub.topic("t", capacity=4096, publish_timeout=30)
        held = t.subscribe()
        t.publish_many([b"x" * 100] * 200)
    """,
    "a wait held back by min_interval": """
        t = hub.topic("t"); s = t.subscribe(start="latest")
        s.set_wait_options(min_interval=30)
        t.publish(b"x"); s.wait(); s.poll().release()
        s.wait()
    """,
}


@pytest.mark.parametrize("name", sorted(BLOCKING_CALLS))
def test_ctrl_c_interrupts_every_blocking_call_within_a_slice(name):
    proc = child(
        """
        print("ready", flush=True)
        start = time.monotonic()
        try:
"""
        + textwrap.indent(textwrap.dedent(BLOCKING_CALLS[name]), " " * 12)
        + """
        except KeyboardInterrupt:
            print("interrupted after %.3f" % (time.monotonic() - start), flush=True)
            sys.exit(0)
        print("returned", flush=True)
        """
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # well inside the call
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 0, (out, err)
    assert "interrupted" in out, (out, err)
    assert elapsed < 2.0, f"{name}: KeyboardInterrupt came {elapsed:.2f} s after SIGINT"


@pytest.mark.parametrize("call", ["sub.wait()", "group.wait()", "sub.wait(60)"])
def test_interpreter_exit_with_a_daemon_thread_blocked_in_a_wait_is_clean(call):
    # The thread is blocked in C++ without the GIL when the interpreter finalizes; taking the GIL
    # back ends the thread by unwinding it, which once aborted the process (exit 134).
    proc = child(
        f"""
        t = hub.topic("t")
        sub = t.subscribe(start="latest")
        group = pushpoll.WakeGroup(hub)
        other = t.subscribe(start="latest")
        group.add(other)
        if "{call}".startswith("group"):
            sub = other
        started = threading.Event()
        def blocked():
            started.set()
            {call}
        threading.Thread(target=blocked, daemon=True).start()
        started.wait()
        time.sleep(0.2)
        print("exiting", flush=True)
        """
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (proc.returncode, out, err)
    assert "exiting" in out
    assert "terminate called" not in err


def test_a_batch_that_stays_full_says_how_many_of_its_messages_went_out(make_topic):
    t = make_topic(capacity=4096, publish_timeout=0.05)
    held = t.subscribe()  # noqa: F841 (holds the ring back)
    with pytest.raises(pushpoll.Full) as info:
        t.publish_many([b"x" * 100] * 100)  # chunks of half the ring: the first fits, later ones not
    published = info.value.published
    assert 0 < published < 100
    assert t.head == published
    assert f"after the first {published} messages of the batch were published" in str(info.value)
    while t.try_publish(b"y" * 100):  # what is left of the ring (the next chunk needed more)
        pass
    with pytest.raises(pushpoll.Full) as single:
        t.publish(b"y" * 100)
    assert single.value.published == 0
    assert pushpoll.Full("made by hand").published == 0
