"""Other processes read a hub's topics in place (Hub.serve(), pushpoll.connect()). The readers
are real subprocesses running this interpreter; they report through their exit codes."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import pushpoll

TIMEOUT = 60


def run_reader(script, *args, wait=True):
    """Runs ``script`` (Python source; sys.argv[1:] are ``args``) in a new interpreter."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if not wait:
        return proc
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


READ_ALL = """
    import sys, pushpoll
    path, count = sys.argv[1], int(sys.argv[2])
    remote = pushpoll.connect(path)
    sub = remote.topic("trades").subscribe(start="oldest")
    seen = 0
    while seen < count:
        if not sub.wait(10):
            sys.exit(3)                      # no push within 10 s
        with sub.poll() as batch:
            assert batch.gap == 0
            for m in batch:
                assert m.seq == seen and bytes(m.data) == b"m%d" % seen, (m.seq, bytes(m.data))
                seen += 1
    print(seen)
"""


@pytest.fixture
def served(tmp_path):
    hub = pushpoll.Hub(shared=True)
    topic = hub.topic("trades")
    path = str(tmp_path / "hub.sock")
    with hub.serve(path) as server:
        yield hub, topic, server, path
    hub.close()


def test_another_python_process_reads_every_message_in_place(served):
    hub, topic, server, path = served
    for i in range(100):
        topic.publish(b"m%d" % i)
    proc = run_reader(READ_ALL, path, 1100, wait=False)
    time.sleep(0.2)
    for i in range(100, 1100):
        topic.publish(b"m%d" % i)
        if i % 100 == 0:
            time.sleep(0.01)  # let the reader park and be pushed
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.strip() == "1100"
    assert server.admitted == 1


def test_an_asyncio_reader_in_another_process(served):
    hub, topic, server, path = served
    script = """
        import asyncio, sys, pushpoll
        async def main():
            remote = pushpoll.connect(sys.argv[1])
            sub = remote.topic("trades").subscribe(start="oldest")
            seen = 0
            async for batch in sub:
                with batch:
                    seen += len(batch)
                if seen == 50:
                    return seen
        print(asyncio.run(asyncio.wait_for(main(), 20)))
    """
    proc = run_reader(script, path, wait=False)
    time.sleep(0.2)
    for i in range(50):
        topic.publish(b"x")
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.strip() == "50"


def test_a_remote_topic_is_read_only(served):
    hub, topic, server, path = served
    topic.publish(b"m0")
    script = """
        import sys, pushpoll
        t = pushpoll.connect(sys.argv[1]).topic("trades")
        try:
            t.publish(b"no")
        except pushpoll.Refused as e:
            assert isinstance(e, PermissionError) and isinstance(e, pushpoll.Error)
        else:
            sys.exit(4)
        with t.subscribe(start="oldest").poll() as batch:
            m = next(iter(batch))
            assert m.data.readonly
        print(t.head)
    """
    code, out, err = run_reader(script, path)
    assert code == 0, err
    assert out.strip() == "1"
    assert topic.head == 1


def test_a_store_into_the_mapping_kills_the_reader_not_the_data(served):
    hub, topic, server, path = served
    topic.publish(b"m0")
    script = """
        import ctypes, sys, pushpoll
        sub = pushpoll.connect(sys.argv[1]).topic("trades").subscribe(start="oldest")
        batch = sub.poll()
        m = next(iter(batch))
        # The view is read-only; go around it the way a C extension could: its buffer's address.
        view = (ctypes.c_char * 128)()  # room for a Py_buffer, whose first field is the pointer
        get = ctypes.pythonapi.PyObject_GetBuffer
        get.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
        assert get(m.data, ctypes.addressof(view), 0) == 0
        ctypes.memset(ctypes.c_void_p.from_buffer(view).value, 0, 1)
        print("wrote")
    """
    code, out, err = run_reader(script, path)
    assert code == -signal.SIGSEGV, (code, out, err)
    with topic.subscribe(start="oldest").poll() as batch:
        assert bytes(next(iter(batch)).data) == b"m0"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a reader as another user")
def test_a_user_not_allowed_is_refused_and_an_allowed_one_admitted():
    # A directory every user can reach (pytest's own tmp_path sits under a private one).
    directory = tempfile.mkdtemp(prefix="pushpoll-remote-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "hub.sock")

    def as_nobody(expect_refused):
        # A forked child (this interpreter, as user 65534: it may not be able to run the
        # project's interpreter from its directory).
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    pushpoll.connect(path).topic("trades")
                    code = 0 if not expect_refused else 2
                except pushpoll.Refused as e:
                    code = 0 if expect_refused and isinstance(e, PermissionError) else 3
            finally:
                os._exit(code)
        return os.waitpid(pid, 0)[1]

    with pushpoll.Hub(shared=True) as hub:
        hub.topic("trades")
        with hub.serve(path, subscriber_uids=[4242]) as server:
            assert as_nobody(expect_refused=True) == 0
            assert server.refused == 1
        with hub.serve(path, subscriber_uids=[65534]) as server:
            assert as_nobody(expect_refused=False) == 0
            assert server.admitted == 1
    shutil.rmtree(directory)


def test_serving_needs_a_shared_hub(tmp_path):
    with pushpoll.Hub() as hub, pytest.raises(pushpoll.Error, match="shared=True"):
        hub.serve(str(tmp_path / "hub.sock"))
    with pytest.raises(pushpoll.Error):
        pushpoll.connect(str(tmp_path / "nothing.sock"))


def test_a_killed_reader_leaves_the_server_serving(served):
    hub, topic, server, path = served
    topic.publish(b"m0")
    proc = run_reader(
        """
        import sys, time, pushpoll
        sub = pushpoll.connect(sys.argv[1]).topic("trades").subscribe(start="oldest")
        print("ready", flush=True)
        time.sleep(60)
        """,
        path,
        wait=False,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    assert os.listdir(os.path.dirname(path)) == ["hub.sock"]
    code, out, err = run_reader(READ_ALL, path, 1)
    assert code == 0, err


def test_an_allowed_process_publishes_through_the_owner(tmp_path):
    path = str(tmp_path / "hub.sock")
    with pushpoll.Hub(shared=True) as hub:
        topic = hub.topic("trades")
        sub = topic.subscribe(start="oldest")
        with hub.serve(path, publisher_uids=[os.geteuid()]):
            script = """
                import sys, pushpoll
                t = pushpoll.connect(sys.argv[1]).topic("trades")
                seqs = [t.publish(b"p%d" % i, tag=1) for i in range(100)]
                assert seqs == list(range(100)), seqs
                print(t.head)
            """
            code, out, err = run_reader(script, path)
            assert code == 0, err
            assert out.strip() == "100"
        got = []
        with sub.poll() as batch:
            for m in batch:
                got.append((m.tag, bytes(m.data)))
        assert got == [(1, b"p%d" % i) for i in range(100)]


def test_a_wake_group_of_another_process_topics(served):
    hub, topic, server, path = served
    hub.topic("quotes")
    script = """
        import sys, pushpoll
        remote = pushpoll.connect(sys.argv[1])
        t = remote.topic("trades").subscribe(start="latest")
        q = remote.topic("quotes").subscribe(start="latest")
        with pushpoll.WakeGroup(remote) as group:
            assert [group.add(t), group.add(q)] == [0, 1]
            print("ready", flush=True)
            ids = group.wait(10)
            assert list(ids) == [1], ids
            with q.poll() as batch:
                assert [bytes(m.data) for m in batch] == [b"q"]
        print("ok")
    """
    proc = run_reader(script, path, wait=False)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.05)
    hub.topic("quotes").publish(b"q")
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.strip() == "ok"
