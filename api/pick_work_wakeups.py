"""Wake-ups for the pick-task long poll (GET /v1/pick-tasks with `wait`).

A waiting poll used to re-read the pick work every 50 ms: one autocommit statement each,
20 commits a second per poll while nothing changed. Instead, a trigger on `shipment` and
`shipment_line` sends NOTIFY `pick_work` (payload: the location; empty: every location) when
a change can change the pick work (migration 0012), and each API process holds ONE
connection that LISTENs and fans the notifications out to its waiting polls. A poll takes a
`mark` before it reads, then waits for the version of its location to move past it: a
change that commits after the read was started is announced after the mark was taken, so it
is never missed; one that committed before is in the read.

Correctness does not rest on the listener. Until it listens (start-up) and whenever its
connection drops, waiting polls fall back to re-reading every FALLBACK_RECHECK_SECONDS; it
reconnects with backoff, and every time it starts or stops listening each waiting poll
re-reads once (a notification may have been lost in between).

A poll that sends back the tag it was last answered need not be read at all: the process
remembers the tag of its last read of each location (and wave size) and the version it was
read at, and while that version stands the work is still what the tag names."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import psycopg
import tenacity
from psycopg.conninfo import make_conninfo

from runtime.db import libpq_url
from runtime.logging import get_logger

log = get_logger("omniflow.api.pick_work")

CHANNEL = "pick_work"
FALLBACK_RECHECK_SECONDS = 1.0
# A healthy session this long resets the reconnect backoff (a server that accepts and
# drops at once is retried with backoff, not in a tight loop).
_HEALTHY_SECONDS = 5.0
_TAGS_KEPT = 256  # locations and wave sizes asked for: any string may be asked
# libpq keepalives: a listener whose server vanished without a FIN (a partition, a host
# gone) notices within ~25 s and the polls fall back, instead of trusting a dead socket.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


@dataclass(frozen=True)
class Mark:
    """What a poll saw of the change counters before its read."""

    location: str | None
    version: tuple[int, int]


class _ListenerLost(Exception):
    """The listening connection failed after listening a while: reconnect without backoff."""


def _retried(exc: BaseException) -> bool:
    """Any error but a cancel (the app stopping: tenacity would swallow it) and a session that
    ended after listening a while (reconnected at once, by a fresh retry)."""
    return isinstance(exc, Exception) and not isinstance(exc, _ListenerLost)


class PickWorkWakeups:
    """The API process's pick-work listener and the waiting polls' wake-ups (all on the
    event loop that ran `start`)."""

    def __init__(self, database_url: str, application_name: str = "omniflow-api-listen") -> None:
        self._conninfo = make_conninfo(
            libpq_url(database_url), application_name=application_name, connect_timeout=5, **_KEEPALIVES
        )
        self._epoch = 0  # moves for everyone: listening started or stopped, or a TRUNCATE
        self._any = 0  # moves with every notification (the polls of every location)
        self._per_location: dict[str, int] = {}
        # The tag of the last read per (location, max_lines), with the version it was read at.
        self._tags: OrderedDict[tuple[str | None, int], tuple[tuple[int, int], str]] = OrderedDict()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        self.backend_pid: int | None = None  # the listening connection's backend, for tests

    # -- the polls' side ---------------------------------------------------------------

    def mark(self, location: str | None) -> Mark:
        """Take before reading the pick work at `location` (None: everywhere)."""
        return Mark(location, self._version(location))

    def seen(self, mark: Mark, max_lines: int, tag: str) -> None:
        """The pick work read after `mark` (with `max_lines` a wave) had this tag."""
        key = (mark.location, max_lines)
        self._tags[key] = (mark.version, tag)
        self._tags.move_to_end(key)
        if len(self._tags) > _TAGS_KEPT:
            self._tags.popitem(last=False)

    def unchanged(self, mark: Mark, max_lines: int, tag: str) -> bool:
        """Known without a read: the pick work is still what `tag` names. So when a read
        gave `tag` and nothing was announced at the location since, while listening all
        along (listening starting or stopping moves the version). A change committed but
        not announced yet reads as unchanged: only a poll's wait may trust this, and the
        announcement wakes it (its answer is always read, never this)."""
        return self.listening and self._tags.get((mark.location, max_lines)) == (mark.version, tag)

    async def wait(self, mark: Mark, seconds: float) -> bool:
        """Wait up to `seconds` for the pick work at the mark's location to have changed
        since `mark`. True: read again (it may have; or the fallback's re-check is due);
        False: the time is up with no sign of a change."""
        deadline = time.monotonic() + seconds
        while self._version(mark.location) == mark.version:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            listening, changed = self.listening, self._changed
            try:
                await asyncio.wait_for(
                    changed.wait(), left if listening else min(left, FALLBACK_RECHECK_SECONDS)
                )
            except TimeoutError:
                if not listening and time.monotonic() < deadline:
                    return True  # no listener: the slow re-check
        return True

    def _version(self, location: str | None) -> tuple[int, int]:
        return self._epoch, self._any if location is None else self._per_location.get(location, 0)

    def _bump(self, location: str) -> None:
        """A change at `location` ("": everywhere); wakes every waiting poll to compare."""
        if location:
            self._per_location[location] = self._per_location.get(location, 0) + 1
        else:
            self._epoch += 1
        self._any += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def _set_listening(self, listening: bool) -> None:
        self.listening = listening
        self._bump("")

    # -- the listener ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pick-work-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            retrying = tenacity.AsyncRetrying(
                wait=tenacity.wait_exponential(multiplier=0.2, max=10),
                retry=tenacity.retry_if_exception(_retried),
                before_sleep=lambda state: log.warning(
                    "pick-work listener down, polls re-check every second",
                    attempt=state.attempt_number,
                    error=repr(state.outcome.exception() if state.outcome else None)[:200],
                ),
            )
            with contextlib.suppress(_ListenerLost):
                async for attempt in retrying:
                    with attempt:
                        await self._listen()

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            self._set_listening(True)
            since = time.monotonic()
            log.info("pick-work listener listening", backend_pid=self.backend_pid)
            try:
                async for note in conn.notifies():
                    self._bump(note.payload)
            except (psycopg.Error, OSError) as exc:
                if time.monotonic() - since < _HEALTHY_SECONDS:
                    raise
                log.warning("pick-work listener lost, reconnecting", error=repr(exc)[:200])
                raise _ListenerLost() from exc
            finally:
                self.backend_pid = None
                self._set_listening(False)
