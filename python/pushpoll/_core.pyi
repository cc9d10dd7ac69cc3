"""Type stubs of pushpoll._core, the compiled module behind the `pushpoll` package.

python/tests/test_stubs.py checks that these names match the module.
"""

import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Literal, NamedTuple, Optional, Union

if sys.version_info >= (3, 12):
    from collections.abc import Buffer as _Buffer
else:
    from typing_extensions import Buffer as _Buffer

__version__: str

ALL_TAGS: int
"""Tag mask that receives every tag: 2**64 - 1."""

MAX_TAG: int
"""Largest tag: 63."""

def _noop() -> None:
    """Does nothing; times a pybind11 call (benchmarks)."""

class Error(Exception):
    """Base of every error pushpoll raises. The message says what went wrong and why."""

class Full(Error):
    """A blocking publish found no room within the topic's publish_timeout (overflow="block"):
    a subscriber is not keeping up. Its ``published`` attribute says how many messages of a
    publish_many() went out before it (the rest did not; 0 for a single publish)."""

    published: int

class Closed(Error):
    """The topic, its hub or the subscriber was closed."""

class InvalidCursor(Error):
    """A start position older than the topic's oldest retained message or newer than its head."""

class ClaimExpired(Error):
    """Messages whose publisher stalled between claiming and committing them for longer than the
    topic's claim_timeout: they went out as aborted messages."""

class MessageTooLarge(Error):
    """A message larger than the topic's max_message, or a batch that cannot fit the ring."""

class Refused(Error, PermissionError):
    """Not allowed: the hub's server does not admit this process's user or group, or a publish
    on a topic of another process. Also a PermissionError."""

class Hub:
    """Owns topics by name, and the notifier that wakes their subscribers.

    ``backend`` chooses how wake-ups are written: "auto" (io_uring, or write() where the kernel
    or a sandbox refuses io_uring), "io_uring" (raises Error if refused) or "syscall".
    ``mode`` chooses where: "publisher" (in the publishing thread, right after the commit:
    lowest latency) or "background" (in a notifier thread: publishers make no syscalls, and
    pushes within ``coalesce_window`` seconds are merged). ``sqpoll``: io_uring with a kernel
    submission thread where the kernel permits it (plain io_uring otherwise). ``shared``: topics
    live in shared memory, so that serve() can offer them to other processes.

    close() closes every topic; the hub's memory is freed only when its last topic, subscriber
    and batch objects are gone too, so objects may be closed and collected in any order. A
    context manager that closes the hub on exit. Safe to use from several threads.
    """

    def __init__(
        self,
        backend: Literal["auto", "io_uring", "syscall"] = "auto",
        *,
        mode: Literal["publisher", "background"] = "publisher",
        coalesce_window: float = 50e-6,
        sqpoll: bool = False,
        shared: bool = False,
    ) -> None: ...
    @property
    def backend(self) -> str:
        """The wake-up backend in use, after any fallback: "io_uring" or "syscall"."""
    def wake_stats(self) -> WakeStats:
        """What the wake-up machinery has done (all topics): a WakeStats named tuple."""
    def topic(
        self,
        name: str,
        *,
        capacity: Optional[int] = None,
        max_message: Optional[int] = None,
        overflow: Optional[Literal["block", "overwrite"]] = None,
        publish_timeout: Optional[float] = None,
        stall_timeout: Optional[float] = None,
        max_subscribers: Optional[int] = None,
        claim_timeout: Optional[float] = None,
        index_size: Optional[int] = None,
    ) -> Topic:
        """The topic called ``name``, created if new.

        Without options, an existing topic is returned as it is, and a new one gets the
        defaults. With any option, the others take their defaults and the whole set must match
        an existing topic's, or pushpoll.Error says how they differ.

        capacity: ring size in bytes, a power of two from 4096 to 16 GiB (default 1 MiB).
        max_message: largest payload in bytes (default: the smaller of 64 KiB and capacity / 4).
        index_size: the most messages retained at once, a power of two (default capacity / 32).
        overflow: "block" (lossless: publishers wait up to publish_timeout, then raise Full; a
            subscriber stalling longer than stall_timeout is detached and later told its gap)
            or "overwrite" (never waits; lapped subscribers learn their exact gap).
        publish_timeout, stall_timeout: seconds (defaults 1.0 and 5.0).
        claim_timeout: seconds a publisher stalled mid-publish may hold readers and the ring
            back before its message goes out aborted (default 1.0; 0: never).
        max_subscribers: size of the subscriber table (default 16384).

        Raises pushpoll.Error for invalid options, pushpoll.Closed after close().
        """
    def topic_names(self) -> list[str]:
        """Names of the hub's topics, sorted."""
    def serve(
        self,
        path: str,
        *,
        subscriber_uids: Sequence[int] = (),
        subscriber_gids: Sequence[int] = (),
        publisher_uids: Sequence[int] = (),
        publisher_gids: Sequence[int] = (),
    ) -> Server:
        """Serves this hub's topics to other processes at ``path``, an AF_UNIX socket (at most 107
        bytes); returns the Server. The hub must be made with shared=True.

        Processes running as the hub's own user are admitted, and those whose uid is in
        ``subscriber_uids`` (or primary gid in ``subscriber_gids``); the kernel says who a peer
        is (SO_PEERCRED), and a peer not admitted gets pushpoll.Refused. Only processes whose uid
        is in ``publisher_uids`` (or gid in ``publisher_gids``) may publish; their publish() goes
        through this hub, one message per round trip. A socket file left by a
        process that no longer answers is replaced; raises Error if a process serves there, or if
        ``path`` is something else.
        """
    def close(self) -> None:
        """Closes every topic: publishing and subscribing raise Closed; subscribers may still
        poll what is retained. Idempotent."""
    @property
    def closed(self) -> bool:
        """True after close()."""
    def __enter__(self) -> Hub: ...
    def __exit__(self, *args: object) -> None:
        """Closes the hub."""

class Server:
    """Serves a hub's topics, present and future, to other processes on an AF_UNIX socket,
    until closed (or collected); then it removes the socket file. Made by Hub.serve(). A context
    manager that closes the server on exit."""

    @property
    def path(self) -> str:
        """The socket's path."""
    @property
    def admitted(self) -> int:
        """Peers admitted so far."""
    @property
    def refused(self) -> int:
        """Peers refused so far."""
    @property
    def closed(self) -> bool:
        """True after close()."""
    def close(self) -> None:
        """Stops serving and removes the socket file. Idempotent."""
    def __enter__(self) -> Server: ...
    def __exit__(self, *args: object) -> None:
        """Closes the server."""

class Remote:
    """A connection to another process's hub, made by pushpoll.connect(). Its topics are the
    same Topic type, mapped read-only: subscribe, poll (zero-copy), wait, fileno and asyncio work
    as in-process; publish() goes through the hub when it lets this process publish, else raises
    Refused."""

    def topic(self, name: str) -> Topic:
        """The hub's topic ``name``, mapped read-only. Raises Error naming it if the hub has
        none, Closed if the hub's process is gone."""
    @property
    def connected(self) -> bool:
        """Whether the hub's process still answers (a hint)."""

def connect(path: str) -> Remote:
    """Connects to a hub served at ``path`` (Hub.serve()) in another process; returns a Remote.
    Raises Refused when the server does not admit this process's user or group, Error when
    nothing serves there."""

class WakeStats(NamedTuple):
    """What a hub's wake-up machinery has done (Hub.wake_stats()): a snapshot; counters only
    grow."""

    wakeups_sent: int
    """eventfd writes issued (one per woken fd per round)."""
    wakeups_coalesced: int
    """Subscribers woken through a write shared with others (wake groups)."""
    wakeups_skipped: int
    """Armed subscribers passed over: no matching tag."""
    rounds: int
    """Notifier rounds (each serves every armed subscriber)."""
    notifier_syscalls: int
    """write() or io_uring_enter() calls by the notifier."""
    subscriber_syscalls: int
    """eventfd reads, blocking polls and membarriers by subscribers."""
    arms: int
    """arm() calls that armed (waits arm too)."""
    wakeups_recovered: int
    """Messages a blocked wait found by its safety net, with no push: should stay 0."""

class TopicStats:
    """What a topic has done: a snapshot; counters only grow."""

    @property
    def head(self) -> int:
        """Messages readers can see (the next seq after the committed prefix)."""
    @property
    def oldest(self) -> int:
        """Oldest retained seq."""
    @property
    def bytes_claimed(self) -> int:
        """Ring bytes claimed so far (skipped lap ends included)."""
    @property
    def subscribers(self) -> int:
        """Live subscribers."""
    @property
    def full_waits(self) -> int:
        """Publishes that waited for subscribers to make room."""
    @property
    def held_waits(self) -> int:
        """Publishes that waited for a publish in progress at the oldest end of the ring."""
    @property
    def full_timeouts(self) -> int:
        """Publishes that gave up (Full, or try_publish() returning False)."""
    @property
    def detaches(self) -> int:
        """Stalled subscribers detached (overflow="block")."""
    @property
    def laps(self) -> int:
        """Polls that found their cursor overwritten (gap reported)."""
    @property
    def retire_walks(self) -> int:
        """Times the writers freed old records."""
    @property
    def gate_scans(self) -> int:
        """Times the writers scanned subscriber cursors."""
    @property
    def aborted(self) -> int:
        """Claims dropped without commit."""
    @property
    def expired(self) -> int:
        """Publishes aborted after holding readers or the ring back for claim_timeout."""
    @property
    def bias_revocations(self) -> int:
        """Times a sole publisher's fast path was taken back by another publisher."""
    @property
    def clamped_cursors(self) -> int:
        """Cursors of other processes' subscribers found outside [oldest, claimed], and clamped."""

class Topic:
    """A topic: an append-only ring log. Every message gets the next sequence number.

    Made by Hub.topic(). Publishing is safe from any number of threads. close() closes the
    topic for every holder: publishing and subscribing raise Closed; subscribers may still poll
    what is retained. A context manager that closes the topic on exit.
    """

    def publish(self, data: _Buffer, tag: int = 0) -> int:
        """Appends one message; returns its sequence number.

        data: any contiguous buffer (bytes, bytearray, memoryview, a C-contiguous numpy array),
        copied into the ring. tag: 0..63; subscribers filter on it.
        With overflow="block" it waits for room up to publish_timeout, without the GIL (Ctrl-C
        interrupts the wait), then raises Full. Payloads over 64 KiB are copied without the GIL.
        Raises MessageTooLarge over max_message, Closed after close(), Error for a tag out of
        range.
        """
    def try_publish(self, data: _Buffer, tag: int = 0) -> bool:
        """Appends one message if there is room now; never waits. Returns False when the ring
        is full (overflow="block" only). Raises like publish()."""
    def publish_many(self, messages: Iterable[_Buffer], tag: int = 0) -> int:
        """Appends every buffer of ``messages`` with one claim per ring-sized chunk, all with
        ``tag``; returns the sequence number of the last. An empty iterable raises Error.
        Releases the GIL while it copies (and, with overflow="block", while it waits)."""
    def subscribe(
        self, start: Union[Literal["oldest", "latest"], int] = "oldest", tags: int = ..., *, resume: bool = False
    ) -> Subscriber:
        """A new Subscriber reading from ``start``: "oldest" (the oldest retained message),
        "latest" (the next one published) or a sequence number in [oldest, head] (else
        InvalidCursor). With ``resume=True``, a sequence number is where a subscriber left off:
        it starts there if still retained, else at the oldest, and its first poll reports the
        exact gap. It receives the messages whose tag t has bit ``1 << t`` set in ``tags``
        (default ALL_TAGS). Raises Closed after close(), Error when the subscriber table is full
        or ``tags`` is 0."""
    @property
    def name(self) -> str: ...
    @property
    def head(self) -> int:
        """The next sequence number to be assigned (messages published so far)."""
    @property
    def oldest(self) -> int:
        """The oldest retained sequence number (== head when none is retained)."""
    @property
    def capacity(self) -> int:
        """Ring size in bytes."""
    @property
    def max_message(self) -> int:
        """Largest payload in bytes."""
    @property
    def overflow(self) -> Literal["block", "overwrite"]:
        """"block" or "overwrite"."""
    @property
    def publish_timeout(self) -> float:
        """Seconds a blocking publish waits for room."""
    @property
    def stall_timeout(self) -> float:
        """Seconds a subscriber may hold the ring back before it is detached."""
    @property
    def claim_timeout(self) -> float:
        """Seconds a stalled publish may hold readers and the ring back (0: forever)."""
    @property
    def index_size(self) -> int:
        """The most messages retained at once."""
    @property
    def max_subscribers(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def stats(self) -> TopicStats:
        """A TopicStats snapshot."""
    def close(self) -> None:
        """Closes the topic (for every holder). Idempotent."""
    def __enter__(self) -> Topic: ...
    def __exit__(self, *args: object) -> None: ...

class Subscriber:
    """A cursor on a topic, made by Topic.subscribe(). It reads batches in place with poll().

    To sleep until messages come: wait() (blocking, without the GIL), arm() and fileno()
    (selectors and event loops), a WakeGroup (many subscribers, one thread), or
    ``async for batch in sub`` (asyncio). A context manager that closes the subscriber on exit.
    A subscriber has one reader at a time: its methods may be called from several threads, and
    calls are serialized.
    """

    def poll(self, max_messages: int = 1024) -> Batch:
        """Up to max_messages messages (matching the tags) from the cursor, in place: a Batch.

        Never waits; may be empty. Releases the outstanding batch first, under the zero-copy
        rule (see Batch): BufferError if buffers derived from it are still alive. The cursor
        advances when the batch is released. Raises Closed after close().
        """
    @property
    def cursor(self) -> int:
        """The next sequence number this subscriber reads (also after close())."""
    @property
    def lag(self) -> int:
        """Messages published but not yet read (all tags). A hint: the head moves on."""
    @property
    def tags(self) -> int:
        """The tag mask: bit t set receives tag t."""
    @property
    def closed(self) -> bool:
        """True after close()."""
    def close(self) -> None:
        """Leaves the topic (and its WakeGroup). Releases the outstanding batch first, under
        the zero-copy rule: BufferError (and the subscriber stays open) if buffers derived from
        it are still alive. A wait() in another thread raises Closed; fileno() becomes
        readable, so that a selector or event loop watching it wakes up and finds Closed.
        Idempotent."""
    def __enter__(self) -> Subscriber: ...
    def __exit__(self, *args: object) -> None: ...
    def arm(self) -> bool:
        """Asks to be woken: False when matching messages are waiting already (poll them), True
        when fileno() becomes readable at the next matching publish (once: arm again after
        polling).

        Messages the tag mask skips are consumed. Releases the outstanding batch first, under
        the zero-copy rule (BufferError while buffers derived from it are alive). On a closed
        topic: False while unread messages remain, then raises Closed. Never blocks.
        """
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until pushed or until ``timeout`` seconds pass (None: no timeout), without
        the GIL.

        True when woken by a matching publish, or at once when matching messages are waiting;
        False on timeout. After the topic (or hub) is closed: True while unread messages
        remain, then raises Closed. Raises Closed when the subscriber is closed, also by another
        thread while this one waits: the wait runs in slices of at most 50 ms and looks for that
        between two slices. Releases the outstanding batch first, under the zero-copy rule.
        Honours set_wait_options(). Raises Error for a member of a WakeGroup (wait on the
        group), ValueError for a negative timeout.
        """
    def fileno(self) -> int:
        """The eventfd that wakes this subscriber, for selectors and event loops.

        It becomes readable once after arm() returned True and a matching message was
        published (then poll(), which drains it, and arm() again). Readiness is a hint; poll()
        is the truth. For a member of a WakeGroup, the group's eventfd. The number stays valid
        while the subscriber object lives; close() makes it readable.
        """
    def set_wait_options(self, *, spin: float = 0.0, min_interval: float = 0.0) -> None:
        """Client-side control of wait(), in seconds.

        spin: wait() first checks for messages this long (without the GIL) before it parks:
        lower latency when messages come fast, a busy core meanwhile. min_interval: at least
        this long between two wake-ups wait() returns; pushes inside it are coalesced into one
        (rate limiting). 0 turns either off.
        """
    @property
    def wait_options(self) -> dict[str, float]:
        """The options of set_wait_options(): {"spin": s, "min_interval": s}."""
    @property
    def wake_group(self) -> Optional[WakeGroup]:
        """The WakeGroup this subscriber belongs to, or None."""
    def __aiter__(self) -> AsyncIterator[Batch]:
        """``async for batch in sub``: batches with messages (or a gap) as they arrive, waiting
        through loop.add_reader(fileno()) without blocking the loop. Ends when the topic is
        closed and fully read, or the subscriber is closed. Each step releases the previous
        batch (BufferError while buffers derived from it are alive). Defined in pushpoll._aio."""
    def aiter_batches(self, max_messages: int = 1024) -> AsyncIterator[Batch]:
        """Like ``async for batch in sub``, with batches of at most max_messages messages."""
    async def next_batch(self, max_messages: int = 1024) -> Batch:
        """The next batch with messages (or with a gap to report), waiting for it without
        blocking the event loop. Raises Closed when the topic is closed and fully read, or the
        subscriber is closed; Error for a member of a WakeGroup (serve the group). Like poll(),
        it releases the outstanding batch first, under the zero-copy rule."""

class WakeGroup:
    """Subscribers served by one thread (or one event loop) share one eventfd: the notifier
    writes each distinct eventfd once per round, so waking many parked subscribers costs one
    write per group.

        group = pushpoll.WakeGroup(hub)
        ids = [group.add(s) for s in subs]          # 0, 1, 2, ...
        for i in group.wait(timeout=1.0):           # the members pushed (or with messages)
            with group[i].poll() as batch: ...

    Members are subscribers of the same hub (or, with a Remote, of that connection's topics); the
    group keeps them alive while they are in it.
    A member is woken through the group only: its wait() raises Error, its fileno() is the
    group's. Closing a member takes it out of the group. Safe to use from several threads
    (calls are serialized), though one serving thread is the intended use. A context manager
    that closes the group on exit; ``async for ids in group`` serves it from asyncio.
    """

    def __init__(self, hub: Union[Hub, Remote]) -> None: ...
    def add(self, subscriber: Subscriber) -> int:
        """Adds a subscriber of the group's hub; returns its id in the group (0, 1, 2, ...; ids
        of removed members are reused). Raises Error if it is in a group already, Closed if it
        or the group is closed."""
    def remove(self, subscriber: Subscriber) -> None:
        """Takes a subscriber out of the group (it gets its own eventfd back). A subscriber
        that is not a member is ignored."""
    def wait(self, timeout: Optional[float] = None) -> list[int]:
        """Arms every member; returns at once the sorted ids of members with unread matching
        messages, if any; otherwise blocks, without the GIL, until pushed (returns the ids
        pushed) or until ``timeout`` seconds pass (returns []). None: no timeout.

        Releases the members' outstanding batches first, under the zero-copy rule (BufferError
        while buffers derived from one are alive). A member whose topic is closed is reported
        while it has unread messages (also ones its tags skip: a poll moves past them), and
        never once it is fully read; when every member is so, raises Closed (as a single
        subscriber's wait() does). Raises Closed when the group is closed, also by another
        thread while this one waits (the wait runs in slices of at most 50 ms). Error for a wait
        without timeout on a group with no members.
        """
    def ready(self) -> list[int]:
        """After fileno() became readable in an external event loop: drains it and returns the
        sorted ids of the members pushed. Members are armed by wait() (``wait(0)`` arms them
        without blocking) or by their own arm()."""
    def fileno(self) -> int:
        """The group's eventfd, for selectors and event loops (then call ready()). Valid while
        the group object lives; close() makes it readable."""
    def close(self) -> None:
        """Takes every member out and closes the group: its methods raise Closed. Idempotent."""
    @property
    def closed(self) -> bool:
        """True after close()."""
    def __len__(self) -> int:
        """The number of members."""
    def __getitem__(self, id: int) -> Subscriber:
        """The member Subscriber with this id; KeyError if none."""
    def __iter__(self) -> Iterator[int]:
        """The ids of the members, in order (a snapshot)."""
    def __enter__(self) -> WakeGroup: ...
    def __exit__(self, *args: object) -> None: ...
    def __aiter__(self) -> AsyncIterator[list[int]]:
        """``async for ids in group``: the sorted ids of members with news, waiting through
        loop.add_reader(fileno()) without blocking the loop. Ends when the group is closed, or
        when every member's topic is closed and every member fully read. Defined in
        pushpoll._aio."""
    async def next_ready(self) -> list[int]:
        """The sorted ids of the members with news, waiting for them without blocking the event
        loop. Raises Closed when the group is closed, or when every member's topic is closed and
        every member fully read."""

class Message:
    """One message of a batch, read in place: seq, tag, aborted, data. seq, tag and aborted
    stay readable after the batch is released; data does not."""

    @property
    def seq(self) -> int:
        """Sequence number in the topic (0, 1, 2, ...)."""
    @property
    def tag(self) -> int:
        """0..63, chosen by the publisher."""
    @property
    def aborted(self) -> bool:
        """True for a claim dropped without commit: data is empty."""
    @property
    def data(self) -> memoryview:
        """The payload: a read-only memoryview INTO the ring, no copy.

        Valid until the batch is released; then it raises ValueError (copy with bytes(m.data)
        to keep it). numpy.frombuffer(m.data, ...) shares the memory; such a derived buffer
        must be deleted before the batch is released (see Batch).
        """

class BatchArrays(NamedTuple):
    """A batch as arrays (Batch.as_arrays()): message i is
    data[offsets[i] : offsets[i] + lengths[i]]."""

    data: memoryview
    """Read-only memoryview INTO the ring covering every payload of the batch."""
    offsets: memoryview
    """int64 (format "q"): where message i starts in data."""
    lengths: memoryview
    """int64 (format "q"): payload bytes of message i."""
    seqs: memoryview
    """uint64 (format "Q"): sequence number of message i."""
    tags: memoryview
    """uint8 (format "B"): tag of message i."""

class Batch:
    """Consecutive messages of one subscriber, read in place (zero-copy). Made by
    Subscriber.poll().

    Iterate it for Message objects, or take everything at once with as_arrays(). len() counts
    the messages that match the subscriber's tags. A context manager: ``with sub.poll() as
    batch:`` releases the batch on exit.

    The zero-copy rule: views of the batch (Message.data, as_arrays().data) point INTO the ring,
    so a batch is held (the cursor does not advance) until it is released: by release(), at the
    end of the ``with`` block, by the next poll(), by Subscriber.close(), or when the Batch is
    garbage-collected. Releasing releases every view the batch handed out: using one afterwards
    raises ValueError. Buffers derived from those views (numpy.frombuffer(m.data), a slice
    m.data[2:], memoryview(m.data)) keep the memory in use: while any is alive, releasing raises
    BufferError and the batch stays held. Delete them (or copy what you need) first. A Batch
    garbage-collected while some are alive stays held until they are gone. In overwrite mode
    the bytes may change while held; release() (and then intact) says whether they did.
    """

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __enter__(self) -> Batch: ...
    def __exit__(self, *args: object) -> None:
        """Releases the batch (see release())."""
    def release(self) -> bool:
        """Advances the subscriber's cursor past the batch.

        Returns False if the batch may have been overwritten while it was held
        (overflow="overwrite", or after a detach): do not trust what was read. Releases every
        view handed out first (they raise ValueError from then on); raises BufferError, and the
        batch stays held, while buffers derived from them are alive. Idempotent.
        """
    def as_arrays(self) -> BatchArrays:
        """The whole batch at once, for numeric consumers: a BatchArrays (data, offsets,
        lengths, seqs, tags).

        data is one read-only memoryview INTO the ring (no copy) covering every payload of the
        batch; message i is data[offsets[i] : offsets[i] + lengths[i]]. When the batch wraps
        around the end of the ring, data spans the ring and holds bytes of other messages
        between: index it only through offsets and lengths. offsets and lengths are int64
        memoryviews, seqs uint64, tags uint8 (numpy.asarray() takes them without a copy). data
        follows the zero-copy rule of Message.data.
        """
    @property
    def gap(self) -> int:
        """Messages lost just before this batch (lapped in overwrite mode, or detached)."""
    @property
    def first_seq(self) -> int:
        """Sequence number of the first message covered (also when its tag was filtered out)."""
    @property
    def end_seq(self) -> int:
        """One past the last message covered: the subscriber's cursor after release."""
    @property
    def span_bytes(self) -> int:
        """Ring bytes covered (framing and padding included)."""
    @property
    def released(self) -> bool:
        """True once the batch is released."""
    @property
    def intact(self) -> Optional[bool]:
        """None until released; then False if the batch may have been overwritten while held."""
