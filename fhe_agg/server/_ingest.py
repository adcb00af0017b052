"""Bounded ingestion: a queue in front of an :class:`~fhe_agg.Aggregator` with back-pressure.

Updates can arrive from many connections faster than the aggregator verifies and adds them
(about a second per million parameters on one core). Buffering every pending update would let a
burst of clients, or one hostile sender, exhaust the server's memory. :class:`IngestQueue` holds
an update only while the bytes pending (queued or being added) stay within
``max_pending_bytes`` and their number within ``max_pending``; otherwise :meth:`IngestQueue.submit`
waits up to ``timeout`` and raises :class:`Busy`, so the network layer answers "retry later" and
stops reading from that connection. A single worker thread owns the aggregator: updates are added
one at a time, in arrival order, each exactly once; with an aggregator of ``workers`` > 1 it takes
up to that many queued updates at once and has them checked together, proofs included
(:meth:`~fhe_agg.Aggregator.add_many`).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from fhe_agg.errors import Busy, FheAggError, MalformedMessage, MessageTooLarge, Rejected
from fhe_agg.server._aggregator import Aggregator

__all__ = ["Busy", "IngestQueue"]


class IngestQueue:
    """Feed ``aggregator`` from many threads with bounded memory.

    >>> with IngestQueue(aggregator, max_pending_bytes=256 << 20) as queue:
    ...     queue.submit(update_bytes, timeout=5.0)   # from any number of handler threads
    >>> aggregate = aggregator.finalize()              # after the queue is closed

    Refusals of the aggregator (:class:`~fhe_agg.MalformedMessage` or a
    :class:`~fhe_agg.Rejected` subclass: a bad update, as :meth:`Aggregator.add` documents) are
    kept in :attr:`rejected` with the ticket :meth:`submit` returned. Any other exception, a
    :class:`~fhe_agg.StoreError` (disk full, I/O error) included, is the server's failure, not
    the client's: it stops the worker and is raised again by :meth:`close`. Do not touch the
    aggregator until the queue is closed.
    """

    def __init__(
        self, aggregator: Aggregator, *, max_pending_bytes: int, max_pending: int = 64
    ) -> None:
        if not isinstance(aggregator, Aggregator):
            raise TypeError(f"aggregator: expected Aggregator, got {type(aggregator).__name__}")
        for name, value in (("max_pending_bytes", max_pending_bytes), ("max_pending", max_pending)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        self._aggregator = aggregator
        self.max_pending_bytes = max_pending_bytes
        self.max_pending = max_pending
        self._cond = threading.Condition()
        self._items: deque[tuple[int, bytes]] = deque()
        self._pending = 0
        self._pending_bytes = 0
        self._peak_pending = 0
        self._peak_pending_bytes = 0
        self._tickets = 0
        self._accepted = 0
        self._rejected: list[tuple[int, FheAggError]] = []
        self._failure: BaseException | None = None
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="fhe_agg-ingest", daemon=True)
        self._worker.start()

    @property
    def pending(self) -> int:
        """Updates queued or being added."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        """Bytes of the updates queued or being added."""
        return self._pending_bytes

    @property
    def peak_pending(self) -> int:
        """The largest :attr:`pending` seen (never above ``max_pending``)."""
        return self._peak_pending

    @property
    def peak_pending_bytes(self) -> int:
        """The largest :attr:`pending_bytes` seen (never above ``max_pending_bytes``)."""
        return self._peak_pending_bytes

    @property
    def accepted(self) -> int:
        """Updates the aggregator accepted through this queue."""
        return self._accepted

    @property
    def rejected(self) -> tuple[tuple[int, FheAggError], ...]:
        """``(ticket, error)`` of every update the aggregator refused."""
        with self._cond:
            return tuple(self._rejected)

    def submit(self, update: bytes, *, timeout: float | None = None) -> int:
        """Queue ``update`` (bytes as received) and return its ticket number.

        Waits while the queue is full: forever with ``timeout=None``, not at all with ``0``.
        Raises :class:`Busy` when still full after ``timeout`` seconds,
        :class:`~fhe_agg.MessageTooLarge` for bytes beyond the round's update bound or the
        queue's whole capacity (they could never be accepted), and
        :class:`~fhe_agg.Rejected` once the queue is closed.
        """
        if not isinstance(update, bytes | bytearray | memoryview):
            raise TypeError(f"update: expected bytes, got {type(update).__name__}")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout: expected None or a non-negative number, got {timeout!r}")
        size = len(update)
        limit = min(self.max_pending_bytes, self._aggregator.bounds.update_bytes)
        if size > limit:
            raise MessageTooLarge(f"update: {size} bytes exceeds the ingest bound of {limit} bytes")
        blob = bytes(update)  # before taking the lock the worker needs (no copy for bytes)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed and (
                self._pending >= self.max_pending
                or self._pending_bytes + size > self.max_pending_bytes
            ):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Busy(
                        f"ingest queue full ({self._pending} updates, {self._pending_bytes} of "
                        f"{self.max_pending_bytes} bytes pending); retry later"
                    )
                self._cond.wait(remaining)
            if self._closed:
                raise Rejected("the ingest queue is closed: it accepts no more updates")
            ticket = self._tickets
            self._tickets += 1
            self._items.append((ticket, blob))
            self._pending += 1
            self._pending_bytes += size
            self._peak_pending = max(self._peak_pending, self._pending)
            self._peak_pending_bytes = max(self._peak_pending_bytes, self._pending_bytes)
            self._cond.notify_all()
        return ticket

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if not self._items:
                    return
                # with a worker pool, as many updates as it has workers are checked together
                take = min(len(self._items), self._aggregator.workers)
                batch = [self._items.popleft() for _ in range(take)]
            size = sum(len(blob) for _, blob in batch)
            refusals: list[FheAggError | None] = []
            try:
                if len(batch) == 1:
                    refusals = [self._add_one(batch[0][1])]
                else:
                    refusals = self._aggregator.add_many([blob for _, blob in batch])
            except BaseException as exc:  # not a refusal: stop and surface it in close()
                with self._cond:
                    self._failure = exc
                    self._closed = True
                    for _, dropped in self._items:
                        self._pending -= 1
                        self._pending_bytes -= len(dropped)
                    self._items.clear()
            tickets = [ticket for ticket, _ in batch]
            del batch
            with self._cond:
                self._pending -= len(tickets)
                self._pending_bytes -= size
                for ticket, refusal in zip(tickets, refusals, strict=False):
                    if refusal is not None:
                        self._rejected.append((ticket, refusal))
                    elif self._failure is None:
                        self._accepted += 1
                self._cond.notify_all()
                if self._failure is not None:
                    return

    def _add_one(self, blob: bytes) -> FheAggError | None:
        try:
            self._aggregator.add(blob)
        except (MalformedMessage, Rejected) as exc:
            return exc
        return None

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending; False if ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Accept nothing more, add what is queued, stop the worker; re-raise a worker crash."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join()
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> IngestQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"IngestQueue(pending={self._pending}, pending_bytes={self._pending_bytes}, "
            f"max_pending_bytes={self.max_pending_bytes}, accepted={self._accepted})"
        )
