"""Every exception type: the hierarchy, and the C++ message carried through."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import pushpoll


def test_hierarchy():
    assert issubclass(pushpoll.Error, Exception)
    for cls in (pushpoll.Full, pushpoll.Closed, pushpoll.InvalidCursor, pushpoll.MessageTooLarge, pushpoll.ClaimExpired):
        assert issubclass(cls, pushpoll.Error)
        assert cls.__module__ == "pushpoll"
        assert cls.__doc__
    assert not issubclass(pushpoll.Full, pushpoll.Closed)


def test_error_carries_the_message(hub):
    hub.topic("t", capacity=1 << 16)
    with pytest.raises(pushpoll.Error) as info:
        hub.topic("t", capacity=1 << 17)
    assert type(info.value) is pushpoll.Error
    assert "pushpoll: topic 't' exists with other options" in str(info.value)
    assert "capacity=65536" in str(info.value) and "capacity=131072" in str(info.value)


def test_full(make_topic):
    t = make_topic(capacity=4096, publish_timeout=0.01)
    held = t.subscribe()  # noqa: F841 (holds the ring back)
    with pytest.raises(pushpoll.Full) as info:
        for _ in range(100):
            t.publish(b"x" * 100)
    assert "stayed full for publish_timeout (10 ms)" in str(info.value)


def test_closed(make_topic):
    t = make_topic()
    t.close()
    with pytest.raises(pushpoll.Closed) as info:
        t.publish(b"x")
    assert "is closed" in str(info.value)


def test_invalid_cursor(make_topic):
    t = make_topic()
    with pytest.raises(pushpoll.InvalidCursor) as info:
        t.subscribe(start=5)
    assert "cursor 5 is outside [oldest 0, head 0]" in str(info.value)


def test_message_too_large(make_topic):
    t = make_topic(max_message=10)
    with pytest.raises(pushpoll.MessageTooLarge) as info:
        t.publish(b"x" * 11)
    assert "message of 11 bytes is over max_message (10 bytes)" in str(info.value)
    with pytest.raises(pushpoll.MessageTooLarge):
        t.publish_many([b"ok", b"x" * 11])
    assert t.head == 0


def test_catching_the_base_class(make_topic):
    t = make_topic()
    t.close()
    with pytest.raises(pushpoll.Error):
        t.publish(b"x")


def test_exceptions_pickle(make_topic):
    t = make_topic(max_message=10)
    with pytest.raises(pushpoll.MessageTooLarge) as info:
        t.publish(b"x" * 11)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is pushpoll.MessageTooLarge and str(again) == str(info.value)


def test_import_without_the_compiled_module_says_how_to_build(tmp_path):
    source = Path(pushpoll.__file__).parent
    pkg = tmp_path / "pushpoll"
    pkg.mkdir()
    (pkg / "__init__.py").write_text((source / "__init__.py").read_text())
    result = subprocess.run(
        [sys.executable, "-c", "import pushpoll"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PYTHONNOUSERSITE": "1"},
    )
    assert result.returncode != 0
    assert "pushpoll._core is missing" in result.stderr
    assert "pip install ." in result.stderr
