"""Output folders written all at once: a run never leaves a half report, and never touches what it read.

:class:`OutputFolder` hands out a temporary folder beside the destination (same file system), and on success
moves it into place in two renames (the previous outputs aside, the new ones in), then deletes the previous ones.
A crash, Ctrl-C or SIGKILL before that leaves the previous outputs as they were; a kill between the two renames
(microseconds) is repaired by the next run, which puts the previous outputs back before starting. A lock file
beside the destination keeps two runs from writing the same folder at once.

Refused up front, with the reason: a destination that is an existing file, one that holds or would replace an
input file, and an existing folder holding files that no rnassess run wrote (it would be replaced as a whole).
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile

#: Written into every output folder: its presence allows the folder to be replaced by the next run.
MARKER = ".rnassess-output"
#: The traceback of an internal error (cli.py) may be the only file in a destination that never got outputs.
ERROR_LOG = "rnassess-error.log"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class OutputFolder:
    """``with OutputFolder(out, inputs) as tmp:`` write into ``tmp``; it becomes ``out`` when the block succeeds."""

    def __init__(self, out_dir: str | os.PathLike, inputs=(), what: str = "--out"):
        self.out = os.path.abspath(os.fspath(out_dir))
        self.parent = os.path.dirname(self.out)
        self.name = os.path.basename(self.out)
        self.lock = os.path.join(self.parent, f".{self.name}.lock")
        self.what = what
        self.inputs = [os.fspath(p) for p in inputs if p]
        self.tmp: str | None = None
        self._locked = False

    # -- checks -------------------------------------------------------------------------------------------------
    def check(self) -> None:
        out = self.out
        if os.path.exists(out) and not os.path.isdir(out):
            raise ValueError(f"{self.what} '{out}' is an existing file, not a folder: give a folder name")
        for p in self.inputs:
            if _inside(p, out):
                raise ValueError(f"{self.what} '{out}' holds the input '{p}': outputs replace the folder as a whole, "
                                 "so they go to a folder of their own (e.g. '<case folder>/assessment')")
        if os.path.isdir(out) and [f for f in os.listdir(out) if f != ERROR_LOG] and \
                not os.path.exists(os.path.join(out, MARKER)):
            raise ValueError(f"{self.what} '{out}' holds files that rnassess did not write: they would be "
                             "replaced; choose a new or empty folder")

    def _recover(self) -> None:
        """Put back previous outputs a run killed between its two renames left aside."""
        aside = sorted(glob.glob(os.path.join(self.parent, f".{glob.escape(self.name)}.old-*")))
        if aside and not os.path.exists(self.out):
            os.rename(aside[-1], self.out)
            aside = aside[:-1]
        for p in aside + glob.glob(os.path.join(self.parent, f".{glob.escape(self.name)}.tmp-*")):
            shutil.rmtree(p, ignore_errors=True)

    def _acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(self.lock, encoding="utf-8") as f:
                        pid = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if _pid_alive(pid) and pid != os.getpid():
                    raise ValueError(f"{self.what} '{self.out}' is being written by another rnassess run (process "
                                     f"{pid}); wait for it to finish or choose another folder") from None
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.lock)          # left by a run that was killed
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(str(os.getpid()))
            self._locked = True
            return
        raise ValueError(f"{self.what} '{self.out}': could not take the lock '{self.lock}'")

    # -- context ------------------------------------------------------------------------------------------------
    def __enter__(self) -> str:
        self.check()
        os.makedirs(self.parent, exist_ok=True)
        self._acquire()
        try:
            self._recover()
            self.check()
            self.tmp = tempfile.mkdtemp(prefix=f".{self.name}.tmp-", dir=self.parent)
            open(os.path.join(self.tmp, MARKER), "w").close()
        except BaseException:
            self._release()
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self.commit()
            elif self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            self._release()
        return False

    def commit(self) -> None:
        old = None
        if os.path.exists(self.out):
            old = tempfile.mkdtemp(prefix=f".{self.name}.old-", dir=self.parent)
            os.rmdir(old)
            os.rename(self.out, old)
        os.rename(self.tmp, self.out)
        self.tmp = None
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def _release(self) -> None:
        if self._locked:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.lock)
            self._locked = False


def write_file_atomically(path: str, write, inputs=(), what: str = "--out") -> None:
    """``write(tmp_path)`` then rename onto ``path``: the file is whole or absent, never half-written."""
    path = os.path.abspath(path)
    for p in inputs:
        if p and os.path.exists(p) and os.path.realpath(p) == os.path.realpath(path):
            raise ValueError(f"{what} '{path}' is an input file: choose another output name")
    if os.path.isdir(path):
        raise ValueError(f"{what} '{path}' is an existing folder: give a file name")
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
