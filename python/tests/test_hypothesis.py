"""Property tests: whatever is published comes back, in order, with its tag."""

from hypothesis import given, settings
from hypothesis import strategies as st

import pushpoll

messages = st.lists(st.tuples(st.binary(max_size=300), st.integers(0, 63)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(messages, st.integers(1, 70), st.integers(1, (1 << 64) - 1))
def test_publish_poll_round_trip(msgs, max_messages, mask):
    with pushpoll.Hub() as hub:
        t = hub.topic("p", capacity=1 << 16, max_message=300)
        every = t.subscribe()
        tagged = t.subscribe(tags=mask)
        for i, (data, tag) in enumerate(msgs):
            assert t.publish(data, tag=tag) == i
        for sub, expect in (
            (every, list(enumerate(msgs))),
            (tagged, [(i, m) for i, m in enumerate(msgs) if (mask >> m[1]) & 1]),
        ):
            got = []
            while True:
                with sub.poll(max_messages) as batch:
                    assert batch.gap == 0
                    assert len(batch) <= max_messages
                    if batch.end_seq == batch.first_seq:
                        break
                    got.extend((m.seq, (bytes(m.data), m.tag)) for m in batch)
            assert got == expect
            assert sub.cursor == len(msgs)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=200), min_size=1, max_size=20), max_size=10), st.integers(0, 63))
def test_publish_many_round_trip(groups, tag):
    with pushpoll.Hub() as hub:
        t = hub.topic("p", capacity=1 << 16, max_message=200)
        sub = t.subscribe()
        flat = []
        for group in groups:
            last = t.publish_many(group, tag=tag)
            flat.extend(group)
            assert last == len(flat) - 1
        with sub.poll(len(flat) + 1) as batch:
            arrays = batch.as_arrays()
            assert [bytes(m.data) for m in batch] == flat
            data = arrays.data
            assert [bytes(data[o : o + n]) for o, n in zip(arrays.offsets, arrays.lengths)] == flat
            assert list(arrays.seqs) == list(range(len(flat)))
            assert list(arrays.tags) == [tag] * len(flat)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 900), min_size=1, max_size=200), st.integers(1, 50))
def test_overwrite_loses_only_what_it_reports(sizes, max_messages):
    with pushpoll.Hub() as hub:
        t = hub.topic("o", capacity=4096, max_message=1024, overflow="overwrite")
        sub = t.subscribe()
        expect = {}
        for i, size in enumerate(sizes):
            data = bytes([i & 0xFF]) * size
            t.publish(data)
            expect[i] = data
            if i % 7 == 0:  # read now and then, so that some polls see a gap
                seen = 0
                while seen < 3:
                    before = sub.cursor
                    with sub.poll(max_messages) as batch:
                        assert batch.first_seq == before + batch.gap
                        copies = [(m.seq, bytes(m.data)) for m in batch]
                        if batch.release():
                            for seq, data in copies:
                                assert data == expect[seq]
                    seen += 1
