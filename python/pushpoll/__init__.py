"""pushpoll: a lock-free ring-log message hub.

    import pushpoll
    hub = pushpoll.Hub()
    t = hub.topic("trades", capacity=1 << 24, overflow="block")
    seq = t.publish(b"...", tag=0)
    sub = t.subscribe(start="oldest")
    with sub.poll(max_messages=1024) as batch:
        for m in batch:
            m.seq, m.tag, m.data          # m.data: a read-only memoryview into the ring
    sub.wait(timeout=1.0)                 # sleeps (without the GIL) until pushed
    async for batch in sub: ...           # asyncio: loop.add_reader on sub.fileno()

    # other processes read the same topics in place, read-only:
    hub = pushpoll.Hub(shared=True); server = hub.serve("/run/app/hub.sock")
    remote = pushpoll.connect("/run/app/hub.sock")  # in the other process
    sub = remote.topic("trades").subscribe()

The classes come from the compiled module ``pushpoll._core``; see their docstrings (or the stubs
in ``_core.pyi``) for the API and the zero-copy rule of ``Batch``. The asyncio glue lives in
``pushpoll._aio``.
"""

try:
    from ._core import (
        ALL_TAGS,
        MAX_TAG,
        Batch,
        BatchArrays,
        ClaimExpired,
        Closed,
        Error,
        Full,
        Hub,
        InvalidCursor,
        Message,
        MessageTooLarge,
        Refused,
        Remote,
        Server,
        Subscriber,
        Topic,
        TopicStats,
        WakeGroup,
        WakeStats,
        __version__,
        connect,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - depends on how the package was installed
    if exc.name != __name__ + "._core":
        raise
    raise ImportError(
        "pushpoll: the compiled module pushpoll._core is missing. pushpoll must be built and "
        "installed, not imported from the source tree: run `pip install .` at the repository "
        "root (it needs a C++20 compiler, CMake >= 3.22, the Python headers, Boost and "
        "liburing; scripts/install-deps.sh installs them)."
    ) from exc

__all__ = [
    "ALL_TAGS",
    "MAX_TAG",
    "Batch",
    "BatchArrays",
    "ClaimExpired",
    "Closed",
    "Error",
    "Full",
    "Hub",
    "InvalidCursor",
    "Message",
    "MessageTooLarge",
    "Refused",
    "Remote",
    "Server",
    "Subscriber",
    "Topic",
    "TopicStats",
    "WakeGroup",
    "WakeStats",
    "AsyncBatches",
    "AsyncReady",
    "next_batch",
    "next_ready",
    "connect",
    "__version__",
]

from ._aio import AsyncBatches, AsyncReady, _install, next_batch, next_ready  # noqa: E402

_install()
del _install

# Public classes say they live in `pushpoll`, where users import them from.
for _cls in (Hub, Topic, Subscriber, TopicStats, WakeGroup):
    _cls.__module__ = __name__
del _cls
