"""Shared fixtures: a hub per test, and helpers to make topics and payloads."""

import itertools
import struct

import pytest

import pushpoll

_names = itertools.count()


@pytest.fixture
def hub():
    with pushpoll.Hub() as h:
        yield h


@pytest.fixture
def make_topic(hub):
    """make_topic(**options) -> a new topic with a unique name on the test's hub."""

    def make(**options):
        return hub.topic(f"t{next(_names)}", **options)

    return make


def payload(seq: int, size: int = 16) -> bytes:
    """A payload that names its sequence number, padded to `size` bytes (at least 8)."""
    return struct.pack("<Q", seq) + bytes((seq + i) & 0xFF for i in range(size - 8))


def seq_of(data) -> int:
    return struct.unpack_from("<Q", data)[0]


def grouped_topics(hub, prefix, n):
    """n new topics (prefix0, prefix1, ...) with one subscriber each, all in a new WakeGroup: the
    member with id i reads topics[i]. Returns (topics, group)."""
    topics = [hub.topic(f"{prefix}{i}") for i in range(n)]
    group = pushpoll.WakeGroup(hub)
    for t in topics:
        group.add(t.subscribe())
    return topics, group


def drain(sub, max_messages=1024):
    """Every message available now, copied: a list of (seq, tag, bytes); plus the total gap."""
    out, gap = [], 0
    while True:
        with sub.poll(max_messages) as batch:
            gap += batch.gap
            if batch.end_seq == batch.first_seq:
                return out, gap
            out.extend((m.seq, m.tag, bytes(m.data)) for m in batch)
