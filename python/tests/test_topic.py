"""Hubs and topics: options, numbering, publishing of every buffer type."""

import array

import numpy as np
import pytest

import pushpoll
from conftest import drain, payload


def test_sequence_numbers_start_at_zero_and_count_up(make_topic):
    t = make_topic()
    assert (t.head, t.oldest) == (0, 0)
    assert [t.publish(payload(i)) for i in range(10)] == list(range(10))
    assert t.head == 10
    assert t.oldest == 0


def test_messages_arrive_in_order_with_their_bytes(make_topic):
    t = make_topic()
    sub = t.subscribe()
    sent = [payload(i, size=8 + i) for i in range(100)]
    for p in sent:
        t.publish(p)
    got, gap = drain(sub, max_messages=7)
    assert gap == 0
    assert [s for s, _, _ in got] == list(range(100))
    assert [d for _, _, d in got] == sent
    assert sub.cursor == 100


def test_publish_many_returns_last_seq_and_keeps_order(make_topic):
    t = make_topic()
    sub = t.subscribe()
    assert t.publish(b"first") == 0
    assert t.publish_many([b"a", b"bb", b"ccc"], tag=5) == 3
    assert t.publish_many(payload(i) for i in range(4, 10)) == 9
    got, _ = drain(sub)
    assert [(s, tag) for s, tag, _ in got[:4]] == [(0, 0), (1, 5), (2, 5), (3, 5)]
    assert [d for _, _, d in got[1:4]] == [b"a", b"bb", b"ccc"]
    assert [s for s, _, _ in got] == list(range(10))


def test_publish_many_of_nothing_is_an_error(make_topic):
    with pytest.raises(pushpoll.Error, match="at least one message"):
        make_topic().publish_many([])


def test_publish_many_spanning_several_ring_chunks(make_topic):
    t = make_topic(capacity=4096, max_message=512)
    sub = t.subscribe()
    msgs = [bytes([i]) * 300 for i in range(6)]  # 6 x 320 B records > capacity / 2
    assert t.publish_many(msgs) == 5
    got, _ = drain(sub)
    assert [d for _, _, d in got] == msgs


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b,
        bytearray,
        memoryview,
        lambda b: memoryview(bytearray(b))[1:],
        lambda b: np.frombuffer(b, dtype=np.uint8).copy(),
        lambda b: array.array("B", b),
    ],
    ids=["bytes", "bytearray", "memoryview", "memoryview-slice", "numpy-uint8", "array"],
)
def test_publish_accepts_any_contiguous_buffer(make_topic, make):
    t = make_topic()
    sub = t.subscribe()
    src = make(b"\x00hello world")
    t.publish(src)
    assert t.try_publish(src)
    t.publish_many([src, src])
    got, _ = drain(sub)
    assert [d for _, _, d in got] == [bytes(src)] * 4


def test_publish_numpy_array_copies_its_bytes(make_topic):
    t = make_topic()
    sub = t.subscribe()
    a = np.arange(8, dtype=np.float64)
    t.publish(a)
    with sub.poll() as batch:
        (m,) = batch
        np.testing.assert_array_equal(np.frombuffer(m.data, dtype=np.float64), a)


def test_publish_refuses_what_is_not_a_contiguous_buffer(make_topic):
    t = make_topic()
    with pytest.raises(TypeError):
        t.publish("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.publish(12)  # type: ignore[arg-type]
    with pytest.raises((BufferError, ValueError)):  # the exporter's own error
        t.publish(np.arange(10, dtype=np.uint8)[::2])  # not contiguous
    with pytest.raises(BufferError):
        t.publish(memoryview(b"abcdef")[::2])
    with pytest.raises(TypeError):
        t.publish()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        t.publish(b"x", 0, 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        t.publish(b"x", nope=1)  # type: ignore[call-arg]
    assert t.head == 0


def test_empty_payload(make_topic):
    t = make_topic()
    sub = t.subscribe()
    t.publish(b"")
    with sub.poll() as batch:
        (m,) = batch
        assert bytes(m.data) == b""
        assert not m.aborted


def test_topic_lookup_by_name(hub):
    t = hub.topic("prices", capacity=1 << 16, overflow="overwrite")
    again = hub.topic("prices")  # no options: the existing topic as it is
    assert again.capacity == 1 << 16
    t.publish(b"x")
    assert again.head == 1
    same = hub.topic("prices", capacity=1 << 16, overflow="overwrite")
    assert same.head == 1
    assert hub.topic_names() == ["prices"]


def test_known_name_with_other_options_is_an_error(hub):
    hub.topic("prices", capacity=1 << 16)
    with pytest.raises(pushpoll.Error, match="exists with other options"):
        hub.topic("prices", capacity=1 << 17)
    with pytest.raises(pushpoll.Error, match="exists with other options"):
        hub.topic("prices", overflow="overwrite")


def test_topic_options_are_reported(make_topic):
    t = make_topic(
        capacity=1 << 14,
        max_message=100,
        overflow="overwrite",
        publish_timeout=0.25,
        stall_timeout=2,
        max_subscribers=8,
        claim_timeout=0.5,
        index_size=1 << 12,
    )
    assert t.capacity == 1 << 14
    assert t.claim_timeout == pytest.approx(0.5)
    assert t.index_size == 1 << 12
    assert t.max_message == 100
    assert t.overflow == "overwrite"
    assert t.publish_timeout == pytest.approx(0.25)
    assert t.stall_timeout == pytest.approx(2.0)
    assert t.max_subscribers == 8
    assert not t.closed
    d = make_topic()
    assert (d.capacity, d.max_message, d.overflow) == (1 << 20, 65536, "block")
    assert d.publish_timeout == pytest.approx(1.0)
    assert d.stall_timeout == pytest.approx(5.0)
    assert d.claim_timeout == pytest.approx(1.0)
    assert d.index_size == (1 << 20) // 32


@pytest.mark.parametrize(
    "options, match",
    [
        ({"capacity": 5000}, "power of two"),
        ({"capacity": 1024}, "capacity"),
        ({"publish_timeout": -1.0}, "must not be negative"),
        ({"max_subscribers": 0}, "max_subscribers"),
        ({"max_subscribers": 1 << 30}, "over the limit of 1048576"),
        ({"capacity": 1 << 46}, "over the limit of 17179869184 bytes"),
        ({"index_size": 100}, "power of two"),
        ({"claim_timeout": -1.0}, "must not be negative"),
        ({"publish_timeout": float("nan")}, "NaN"),
    ],
)
def test_invalid_options_are_errors(make_topic, options, match):
    with pytest.raises(pushpoll.Error, match=match):
        make_topic(**options)


def test_invalid_option_values(make_topic, hub):
    with pytest.raises(ValueError, match="overflow"):
        make_topic(overflow="drop")
    with pytest.raises(TypeError):
        make_topic(capacity="big")
    with pytest.raises(ValueError, match="backend"):
        pushpoll.Hub(backend="epoll")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["auto", "syscall", "io_uring"])
def test_hub_backends(backend):
    try:
        hub = pushpoll.Hub(backend=backend)
    except pushpoll.Error as e:
        assert backend == "io_uring", e
        pytest.skip(f"io_uring refused here: {e}")
    with hub:
        assert hub.backend in ("io_uring", "syscall")
        if backend != "auto":
            assert hub.backend == backend
        t = hub.topic("x")
        t.publish(b"x")
        assert t.head == 1


def test_infinite_publish_timeout_is_accepted(make_topic):
    assert make_topic(publish_timeout=float("inf")).publish_timeout > 1e8


def test_stats(make_topic):
    t = make_topic()
    held = t.subscribe()  # noqa: F841 (holds the ring back)
    for i in range(5):
        t.publish(payload(i))
    s = t.stats()
    assert (s.head, s.oldest, s.subscribers) == (5, 0, 1)
    assert s.bytes_claimed >= 5 * 16
    assert "head=5" in repr(s)


def test_reprs(hub):
    t = hub.topic("r")
    sub = t.subscribe()
    t.publish(b"abc")
    assert "backend=" in repr(hub)
    assert "'r'" in repr(t) and "head=1" in repr(t)
    assert "cursor=0" in repr(sub)
    with sub.poll() as batch:
        assert "len=1" in repr(batch)
        (m,) = batch
        assert repr(m) == "Message(seq=0, tag=0, len=3)"
    assert "released" in repr(batch)
    sub.close()
    assert "closed" in repr(sub)
    hub.close()
    assert "closed" in repr(hub) and "closed" in repr(t)


def test_objects_are_made_by_pushpoll_only():
    for cls in (pushpoll.Batch, pushpoll.Message):
        with pytest.raises(TypeError):
            cls()
    assert pushpoll.Hub.__module__ == "pushpoll"
    assert pushpoll.Batch.__module__ == "pushpoll"
    assert pushpoll.Full.__module__ == "pushpoll"


def test_constants():
    assert pushpoll.ALL_TAGS == (1 << 64) - 1
    assert pushpoll.MAX_TAG == 63
    assert pushpoll.__version__.count(".") >= 1
