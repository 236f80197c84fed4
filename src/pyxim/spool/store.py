"""Durable writes to the spool: nothing is acknowledged before it is on disk.

A message becomes real when its -H file appears under its final name. The
order is Exim's: the -D file is written and synced, then the -H file is
written to a temporary name, synced, renamed into place, and the directory
synced. A crash before the rename leaves only files that queue runners
ignore (-D without -H, or a temporary -H) and that are removed later; a crash
after it leaves a whole message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyxim.spool.format import SpoolMessage
from pyxim.spool.ids import is_message_id


class GroupCommit:
    """Sessions writing at the same time share their disk flushes.

    A writer asks for a flush and waits until one that *began after its
    request* has finished; one flush thread serves everyone who asked in the
    meantime. On Linux the flush is syncfs() on the spool's filesystem, which
    covers every file written there; elsewhere each writer falls back to
    fsync of its own files.
    """

    def __init__(self, directory: Path) -> None:
        import ctypes
        import threading

        self.directory = directory
        self._cond = threading.Condition()
        self._requested = 0  # highest ticket handed out
        self._done = 0  # every ticket up to this one is durable
        self._running = False
        libc = ctypes.CDLL(None, use_errno=True)
        self._syncfs = getattr(libc, "syncfs", None)

    @property
    def available(self) -> bool:
        return self._syncfs is not None

    def flush(self) -> None:
        import threading

        with self._cond:
            self._requested += 1
            ticket = self._requested
            if not self._running:
                self._running = True
                threading.Thread(target=self._flusher, daemon=True).start()
            else:
                self._cond.notify_all()
            while self._done < ticket:
                self._cond.wait()

    def _flusher(self) -> None:
        while True:
            with self._cond:
                if self._done >= self._requested:
                    self._running = False
                    return
                target = self._requested  # everyone who asked before this flush starts
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if self._syncfs(fd) != 0:  # type: ignore[misc]
                    os.fsync(fd)
            finally:
                os.close(fd)
            with self._cond:
                self._done = max(self._done, target)
                self._cond.notify_all()


@dataclass(slots=True)
class Spool:
    directory: Path  # spool_directory
    split: bool = False  # split_spool_directory
    group: GroupCommit | None = None  # shared flushes for a daemon's concurrent sessions

    def input_dir(self, message_id: str | None = None) -> Path:
        base = self.directory / "input"
        if self.split and message_id is not None:
            return base / message_id[5]
        return base

    def paths(self, message_id: str) -> tuple[Path, Path]:
        d = self.input_dir(message_id)
        return d / f"{message_id}-H", d / f"{message_id}-D"

    def write(self, message: SpoolMessage, body: bytes) -> None:
        """Write a message durably. Returns only once both files and the directory are synced."""
        d = self.input_dir(message.message_id)
        d.mkdir(parents=True, exist_ok=True, mode=0o750)
        hpath, dpath = self.paths(message.message_id)
        tmp = d / f"hdr.{message.message_id}"
        if self.group is not None and self.group.available:
            # both files on disk (shared flush), then the -H name, then that on disk
            _write_file(dpath, message.data_file_prefix() + body, sync=False)
            _write_file(tmp, message.header_file(), sync=False)
            self.group.flush()
            os.rename(tmp, hpath)
            self.group.flush()
            return
        _write_file(dpath, message.data_file_prefix() + body, sync=True)
        _write_file(tmp, message.header_file(), sync=True)
        os.rename(tmp, hpath)
        _sync_dir(d)

    def journal_path(self, message_id: str) -> Path:
        return self.input_dir(message_id) / f"{message_id}-J"

    def journal_append(self, message_id: str, address: str) -> None:
        """Exim's -J file: each address delivered during an attempt, synced at once, so a crash
        before the -H file is rewritten never delivers it twice."""
        fd = os.open(self.journal_path(message_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, (address + "\n").encode("utf-8", "surrogateescape"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def journal_read(self, message_id: str) -> list[str]:
        try:
            data = self.journal_path(message_id).read_bytes()
        except FileNotFoundError:
            return []
        return [line for line in data.decode("utf-8", "surrogateescape").split("\n") if line]

    def journal_remove(self, message_id: str) -> None:
        try:
            self.journal_path(message_id).unlink()
        except FileNotFoundError:
            pass

    def update_header(self, message: SpoolMessage) -> None:
        """Replace the -H file (after a delivery attempt): a new file renamed over the old, synced."""
        d = self.input_dir(message.message_id)
        hpath, _ = self.paths(message.message_id)
        tmp = d / f"hdr.{message.message_id}"
        _write_file(tmp, message.header_file(), sync=True)
        os.rename(tmp, hpath)
        _sync_dir(d)

    def read(self, message_id: str) -> tuple[SpoolMessage, bytes]:
        hpath, dpath = self.paths(message_id)
        message = SpoolMessage.parse_header_file(hpath.read_bytes())
        data = dpath.read_bytes()
        prefix = message.data_file_prefix()
        return message, data[len(prefix) :] if data.startswith(prefix) else data

    def remove(self, message_id: str) -> None:
        hpath, dpath = self.paths(message_id)
        for p in (hpath, dpath, self.journal_path(message_id)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        _sync_dir(hpath.parent)

    def message_ids(self) -> Iterator[str]:
        """Every message on the queue (those with a -H file), oldest first."""
        base = self.directory / "input"
        dirs = [base] + ([p for p in sorted(base.iterdir()) if p.is_dir()] if base.is_dir() else [])
        ids: list[str] = []
        for d in dirs:
            if not d.is_dir():
                continue
            for name in os.listdir(d):
                if name.endswith("-H") and is_message_id(name[:-2]):
                    ids.append(name[:-2])
        from pyxim.spool.ids import id_time

        yield from sorted(ids, key=lambda i: (id_time(i), i))


def _write_file(path: Path, data: bytes, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
