"""asyncio glue: subscribers and wake groups served by an event loop, never blocking it.

The eventfd of a subscriber (or of a wake group) is registered with ``loop.add_reader`` only while
a coroutine waits for it, and removed when it wakes, fails or is cancelled. The loop follows the
push-to-poll protocol: poll; if there is nothing, arm; if arming finds messages already, poll
again; otherwise wait for the fd. The next poll drains the fd. An eventfd wake-up is a hint: the
subscriber's cursor is the truth, so every wake-up is followed by a poll and a re-check.

One coroutine at a time may wait on a given subscriber or group (a loop has one reader per fd).
"""

import asyncio
import os
import types
from typing import AsyncIterator, List

from ._core import Batch, Closed, Error, Subscriber, WakeGroup

__all__ = ["AsyncBatches", "AsyncReady", "next_batch", "next_ready"]


def _drain(fd: int) -> None:
    try:
        os.read(fd, 8)
    except BlockingIOError:
        pass


async def _readable(fd: int) -> None:
    """Returns once ``fd`` is readable. The reader is removed however this ends."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def next_batch(sub: Subscriber, max_messages: int = 1024) -> Batch:
    """The next batch with messages (or with a gap to report), waiting for it without blocking
    the event loop. Raises Closed when the topic is closed and fully read, or the subscriber is
    closed; Error for a member of a WakeGroup (serve the group). Like poll(), it releases the
    outstanding batch first, under the zero-copy rule."""
    if sub.wake_group is not None:
        raise Error(
            "pushpoll: this subscriber is in a WakeGroup, whose eventfd wakes it: serve the group "
            "(async for ids in group) instead"
        )
    woken = False
    while True:
        batch = sub.poll(max_messages)  # drains the fd when a wake-up is pending
        if len(batch) or batch.gap:
            return batch
        # Nothing for us (or only messages the tags skip): arm() below releases the batch first,
        # checks the log again, and raises Closed once the topic is closed and fully read.
        fd = sub.fileno()
        if woken:
            # Readable, yet nothing came: a late write from an earlier wake-up (the notifier marks
            # the subscriber before it writes). Drain it, or the fd would stay readable. A real
            # wake-up drained here is not lost: arm() below sees it, and returns False.
            _drain(fd)
        if not sub.arm():
            continue  # messages came in between: poll them
        await _readable(fd)
        woken = True


async def next_ready(group: WakeGroup) -> List[int]:
    """The sorted ids of the members with news, waiting for them without blocking the event
    loop. Raises Closed when the group is closed, or when every member's topic is closed
    and every member fully read."""
    while True:
        ids = group.wait(0)  # arms every member; never blocks
        if ids:
            return ids
        await _readable(group.fileno())
        ids = group.ready()
        if ids:
            return ids


class AsyncBatches:
    """``async for batch in sub``: the batches of a subscriber as they arrive (see next_batch()).

    Ends when the topic is closed and every message was read, or when the subscriber is closed.
    Each batch is released by the next step (or at the end of a ``with batch:`` block); a batch
    still pinned by buffers derived from it makes the next step raise BufferError.
    """

    def __init__(self, sub: Subscriber, max_messages: int = 1024) -> None:
        self._sub = sub
        self._max_messages = max_messages

    def __aiter__(self) -> "AsyncBatches":
        return self

    async def __anext__(self) -> Batch:
        try:
            return await next_batch(self._sub, self._max_messages)
        except Closed:
            raise StopAsyncIteration from None


class AsyncReady:
    """``async for ids in group``: the sorted ids of members with news (see next_ready()). Ends
    when the group is closed, or when every member's topic is closed and every member fully read."""

    def __init__(self, group: WakeGroup) -> None:
        self._group = group

    def __aiter__(self) -> "AsyncReady":
        return self

    async def __anext__(self) -> List[int]:
        try:
            return await next_ready(self._group)
        except Closed:
            raise StopAsyncIteration from None


def _aiter_batches(self: Subscriber, max_messages: int = 1024) -> AsyncIterator[Batch]:
    return AsyncBatches(self, max_messages)


def _aiter_ready(self: WakeGroup) -> AsyncIterator[List[int]]:
    return AsyncReady(self)


def _install() -> None:
    """Adds the asyncio methods to the compiled classes (documented in _core.pyi).

    Each method is a copy of a function above under the method's name, not a wrapper calling it:
    a wrapper coroutine would add a frame to every await of a batch.
    """
    for cls, name, fn, doc in (
        (Subscriber, "__aiter__", _aiter_batches,
         "``async for batch in sub``: batches with messages (or a gap) as they arrive, waiting "
         "through loop.add_reader(fileno()) without blocking the loop. Ends when the topic is "
         "closed and fully read, or the subscriber is closed. Each step releases the previous "
         "batch (BufferError while buffers derived from it are alive). Defined in pushpoll._aio."),
        (Subscriber, "aiter_batches", _aiter_batches,
         "Like ``async for batch in sub``, with batches of at most max_messages messages."),
        (Subscriber, "next_batch", next_batch, next_batch.__doc__),
        (WakeGroup, "__aiter__", _aiter_ready,
         "``async for ids in group``: the sorted ids of members with news, waiting through "
         "loop.add_reader(fileno()) without blocking the loop. Ends when the group is closed, or "
         "when every member's topic is closed and every member fully read. Defined in "
         "pushpoll._aio."),
        (WakeGroup, "next_ready", next_ready, next_ready.__doc__),
    ):
        method = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__)
        method.__qualname__ = f"{cls.__name__}.{name}"
        method.__doc__ = doc
        method.__annotations__ = dict(fn.__annotations__)
        setattr(cls, name, method)
