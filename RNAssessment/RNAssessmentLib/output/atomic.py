"""Output folders written all at once: a run never leaves a half report, and never touches what it read.

:class:`OutputFolder` hands out a temporary folder beside the destination (same file system), and on success
moves it into place in two renames (the previous outputs aside, the new ones in), then deletes the previous ones.
A crash, Ctrl-C or SIGKILL before that leaves the previous outputs as they were; a kill between the two renames
(microseconds) is repaired by the next run, which puts the previous outputs back before starting. A lock file
beside the destination keeps two runs from writing the same folder at once.

Refused up front, before any work, with the reason: an empty name, a destination that is an existing file, a
symbolic link that points nowhere (or loops), a folder that cannot be written, one that holds or would replace an
input file, and an existing folder holding files that no rnassess run wrote. A symbolic link to a folder is
followed: the outputs go where it points, and the link stays.

What the user adds to an output folder stays: the marker file lists the files a run wrote, and only those are
replaced by the next run (notes, screenshots and folders of the user's are carried over). The folder's
permissions follow the umask, as any folder the user makes.
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


def resolve_output(out_dir, what: str = "--out") -> str:
    """The absolute folder an output path names: '' refused; a symbolic link followed (and kept), one that loops or
    points nowhere refused."""
    text = os.fspath(out_dir)
    if not str(text).strip():
        raise ValueError(f"{what} is empty: give the output folder's name")
    path = os.path.abspath(text)
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ValueError(f"{what} '{path}' is a symbolic link to '{os.readlink(path)}', which does not exist: "
                             "create the folder it points to, or give another folder") from None
    except PermissionError:
        raise ValueError(f"{what} '{path}': cannot write in '{os.path.dirname(path)}' (permission denied: it cannot "
                         "even be reached): choose a folder you can write to") from None
    except OSError as exc:
        raise ValueError(f"{what} '{path}': {exc.strerror} (a symbolic link that loops?): give another folder") \
            from None
    return os.path.realpath(path) if os.path.islink(path) else path


def check_output_folder(out_dir, what: str = "--out") -> str:
    """Before any work: the folder an output path names (:func:`resolve_output`), refused when it is an existing
    file or cannot be written. Returns it."""
    out = resolve_output(out_dir, what)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{what} '{out}' is an existing file, not a folder: give a folder name")
    here = _nearest_existing(out)
    if not os.path.isdir(here) or not os.access(here, os.W_OK | os.X_OK):
        raise ValueError(f"{what} '{out}': cannot write in '{here}' (permission denied): choose a folder you can "
                         "write to")
    return out


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        up = os.path.dirname(path)
        if up == path:
            break
        path = up
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputFolder:
    """``with OutputFolder(out, inputs) as tmp:`` write into ``tmp``; it becomes ``out`` when the block succeeds."""

    def __init__(self, out_dir: str | os.PathLike, inputs=(), what: str = "--out"):
        self.out = resolve_output(out_dir, what)
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
                raise ValueError(f"{self.what} '{out}' holds the input '{p}': outputs go to a folder of their own "
                                 "(e.g. '<case folder>/assessment'), never among the files they were made from")
        if os.path.isdir(out) and [f for f in os.listdir(out) if f != ERROR_LOG] and \
                not os.path.exists(os.path.join(out, MARKER)):
            raise ValueError(f"{self.what} '{out}' holds files that rnassess did not write: choose a new or empty "
                             "folder (or one an earlier run wrote)")
        check_output_folder(out, self.what)

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
        ours = sorted(os.path.relpath(os.path.join(root, f), self.tmp) for root, _dirs, files in os.walk(self.tmp)
                      for f in files if f != MARKER)
        with open(os.path.join(self.tmp, MARKER), "w", encoding="utf-8") as f:
            f.write("# written by rnassess; the files below are replaced by the next run, anything else is kept\n")
            f.write("".join(p + "\n" for p in ours))
        os.chmod(self.tmp, 0o777 & ~_umask())
        old = None
        if os.path.exists(self.out):
            old = tempfile.mkdtemp(prefix=f".{self.name}.old-", dir=self.parent)
            os.rmdir(old)
            os.rename(self.out, old)
        os.rename(self.tmp, self.out)
        self.tmp = None
        if old:
            _carry_over(old, self.out)
            shutil.rmtree(old, ignore_errors=True)

    def _release(self) -> None:
        if self._locked:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.lock)
            self._locked = False


def _ours(folder: str) -> set | None:
    """The files an earlier run wrote into ``folder`` (its marker's list); None for a marker without a list (runs
    before the list existed), whose every file is taken as theirs."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith("#")]
    except FileNotFoundError:
        return set()
    return set(lines) or None


def _carry_over(old: str, new: str) -> None:
    """Move what the user added to the previous output folder ``old`` (files and folders not in its marker's list,
    the error log of a failed run excepted) into ``new``, where the run wrote nothing of that name."""
    ours = _ours(old)
    if ours is None:
        return
    for root, dirs, files in os.walk(old):
        rel_root = os.path.relpath(root, old)
        for d in list(dirs):
            rel = os.path.normpath(os.path.join(rel_root, d))
            if not any(p == rel or p.startswith(rel + os.sep) for p in ours):
                dirs.remove(d)                  # a folder of the user's: moved whole
                if not os.path.exists(os.path.join(new, rel)):
                    os.makedirs(os.path.dirname(os.path.join(new, rel)), exist_ok=True)
                    os.rename(os.path.join(root, d), os.path.join(new, rel))
        for f in files:
            rel = os.path.normpath(os.path.join(rel_root, f))
            if rel in ours or rel in (MARKER, ERROR_LOG) or os.path.exists(os.path.join(new, rel)):
                continue
            os.makedirs(os.path.dirname(os.path.join(new, rel)), exist_ok=True)
            os.rename(os.path.join(root, f), os.path.join(new, rel))


def write_file_atomically(path: str, write, inputs=(), what: str = "--out") -> None:
    """``write(tmp_path)`` then rename onto ``path``: the file is whole or absent, never half-written."""
    path = os.path.abspath(path)
    for p in inputs:
        if p and os.path.exists(p) and os.path.realpath(p) == os.path.realpath(path):
            raise ValueError(f"{what} '{path}' is an input file: choose another output name")
    if os.path.isdir(path):
        raise ValueError(f"{what} '{path}' is an existing folder: give a file name")
    folder = os.path.dirname(path)
    here = _nearest_existing(folder)
    if not os.path.isdir(here) or not os.access(here, os.W_OK | os.X_OK):
        raise ValueError(f"{what} '{path}': cannot write in '{here}' (permission denied)")
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
