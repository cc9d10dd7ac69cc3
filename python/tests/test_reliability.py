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


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Waits for a child interpreter; a child still running at the timeout is killed first."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the child hung for {timeout} s\nstdout: {out}\nstderr: {err}")


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
    out, err = finish(proc, 30)
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


@pytest.mark.parametrize("child_does", ["publishes", "closes the hub", "exits normally"])
def test_a_multiprocessing_child_leaves_the_parent_hubs_wake_ups_working(child_does):
    # multiprocessing forks on Linux: the child shares the parent's io_uring unless the library
    # stops using it there. Once, a child that published made the parent's next publish spin
    # forever, and one that closed the hub left the parent's readers to the 1 s safety net.
    proc = child(
        f"""
        import multiprocessing
        t = hub.topic("t")
        waiting = t.subscribe(start="latest")
        armed = t.subscribe(start="latest")
        other = t.subscribe(start="latest")
        waiting.fileno()
        assert armed.arm()

        def in_child():
            if "{child_does}" == "publishes":
                for i in range(100):  # a wake-up round each time
                    other.poll()
                    other.arm()
                    t.publish(b"from the child")
            elif "{child_does}" == "closes the hub":
                hub.close()
            else:
                sys.exit(0)

        p = multiprocessing.get_context("fork").Process(target=in_child)
        p.start(); p.join(20)
        assert p.exitcode == 0, p.exitcode
        # The child worked on its own hub: in the parent, "t" is open and woken by pushes.
        for i in range(5):
            waiting.poll()
            got = []
            def reader():
                got.append(waiting.wait(5))
            th = threading.Thread(target=reader); th.start()
            time.sleep(0.05)
            start = time.monotonic()
            t.publish(b"from the parent")
            th.join()
            took = time.monotonic() - start
            assert got == [True] and took < 0.7, (i, got, took)
        assert hub.wake_stats().wakeups_recovered == 0, hub.wake_stats()
        print("parent ok", hub.backend, flush=True)
        """
    )
    out, err = finish(proc, 60)
    assert proc.returncode == 0, (proc.returncode, out, err)
    assert "parent ok" in out
