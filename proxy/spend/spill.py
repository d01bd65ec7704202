"""The spill file: spend events the database could not take yet, as JSON lines, safe across processes.

Several workers may share one path. Appends and claims are serialised by an flock on `<path>.lock`. A
claim renames the file to `<path>.<id>.ingesting` and holds an flock on it until its events are written
(`Claim.release`), so a file whose owner died (lock gone) is claimed again by the next `claim()`, and a
live owner's file is left alone. A crash can at worst make an event appear twice: the store's write is
idempotent on request_id, so it is still counted once. POSIX only (fcntl).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

from .encoding import to_json
from .events import SpendEvent

log = logging.getLogger(__name__)
FORMAT = 1


def encode(event: SpendEvent) -> str:
    """One JSON line (no newline). Decimal and datetime values, at any depth, become strings."""
    return to_json({"v": FORMAT, **asdict(event)})


def decode(line: str) -> SpendEvent:
    """The event `encode` wrote; ValueError/KeyError/TypeError on a malformed line."""
    data = json.loads(line)
    if data.pop("v", None) != FORMAT:
        raise ValueError("unknown spill format")
    data["started_at"] = datetime.fromisoformat(data["started_at"])
    data["cost"] = Decimal(data["cost"])
    if "cost_saved" in data:
        data["cost_saved"] = Decimal(data["cost_saved"])
    return SpendEvent(**data)


@dataclass
class Claim:
    """Spill files taken by this process, read a chunk at a time (`read`); `release()` once their events are safe.

    Reading in chunks keeps a replay's memory bounded by the chunk, not by the journal (up to
    `spend_spill_max_mb`, ~1.5 million rows a GiB)."""

    paths: list[Path] = field(default_factory=list)
    _handles: list[IO[bytes]] = field(default_factory=list)
    _lines: Iterator[SpendEvent] | None = None
    done: bool = False
    """Every event of every claimed file has been returned by `read`."""

    def read(self, limit: int) -> list[SpendEvent]:
        """The next events, at most `limit` (fewer only at the end: then `done` is True)."""
        if self._lines is None:
            self._lines = (event for path, handle in zip(self.paths, self._handles, strict=True)
                           for event in SpillFile._read(handle, path))
        events = list(itertools.islice(self._lines, limit))
        self.done = len(events) < limit
        return events

    def release(self) -> None:
        """Delete the claimed files: call once their events are written or spilled again."""
        for path in self.paths:
            path.unlink(missing_ok=True)
        self.abandon()

    def abandon(self) -> None:
        """Let go of the files, keeping them: the next `claim()` (here or in another process) takes them again."""
        for handle in self._handles:
            handle.close()
        self.paths, self._handles, self._lines = [], [], None


class JournalFull(OSError):
    """The spill file reached its configured size: the events were not appended."""


class SpillFile:
    """Append events to, and claim events from, one JSON-lines file shared by any number of processes.

    `max_bytes` bounds the file (None: only the disk does); an append that would pass it raises JournalFull.
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes

    def size(self) -> int:
        """Bytes in the file and in claims being ingested (0 when none)."""
        total = 0
        for path in (self.path, *self.path.parent.glob(self.path.name + ".*.ingesting")):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total

    @contextmanager
    def _mutex(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, events: Iterable[SpendEvent]) -> int:
        """Append events durably (flushed and fsynced); returns how many."""
        lines = [encode(event) + "\n" for event in events]
        if not lines:
            return 0
        data = "".join(lines)
        with self._mutex():
            if self.max_bytes is not None and self.size() + len(data) > self.max_bytes:
                raise JournalFull(f"the spill file would pass its {self.max_bytes} bytes")
            self._write(data)
        return len(lines)

    def _write(self, data: str) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def claim(self) -> Claim:
        """Take the spill file and any orphaned claims (their owner died); `Claim.read` reads their events."""
        claim = Claim()
        with self._mutex():
            if self.path.exists():
                self.path.rename(self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.ingesting"))
            for path in sorted(self.path.parent.glob(self.path.name + ".*.ingesting")):
                handle = open(path, "rb")  # noqa: SIM115 - held open (and locked) until Claim.release
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a live process owns it
                    handle.close()
                    continue
                claim.paths.append(path)
                claim._handles.append(handle)
        return claim

    @staticmethod
    def _read(handle: IO[bytes], path: Path) -> Iterator[SpendEvent]:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield decode(raw.decode("utf-8"))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                # e.g. a line cut short by a crash mid-write; the rest of the file is still good
                log.warning("skipping malformed spill line %d of %s", number, path.name)
