"""Writing a file atomically, with the usual permissions, and one clear error when it fails.

Every file refnode writes (figures, JSON results, checkpoints, work-precision records) goes
through :func:`atomic_write`:

1. a temporary file ``.tmp-<pid>-*<suffix>`` is created in the target's own directory,
2. the caller writes into it; it is flushed and synced to disk,
3. it gets the mode a plain ``open(path, "w")`` would give (``0o666`` less the umask, so
   0644 under the common umask 022: readable by whoever the user shares it with; a
   temporary file alone would stay 0600),
4. ``os.replace`` moves it onto the target in one step, and the directory is synced.

An interruption or a failure at any step (a full disk, a read-only file system, Ctrl-C)
removes the temporary file: the target is the previous file, or absent, never half a file.
A failure of the file system is raised as :class:`WriteError`, one line naming the path and
the cause; ``refnode`` prints it and exits with status :data:`refnode.cli.WRITE_FAILED`.
"""

import errno
import os
import tempfile

from .errors import RefnodeError


class WriteError(RefnodeError):
    """A file could not be written (disk full, read-only, no permission, ...).

    ``path`` is the file meant, ``cause`` the :class:`OSError` of the file system.
    """

    def __init__(self, path, cause):
        code = errno.errorcode.get(cause.errno, "") if cause.errno else ""
        reason = (cause.strerror or str(cause)) + (f" [{code}]" if code else "")
        advice = ("free space or choose another path"
                  if cause.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", None))
                  else "choose another path")
        super().__init__(f"cannot write {os.fspath(path)!r}: {reason}; nothing was written under "
                         f"that name (an earlier file there is intact): {advice}")
        self.path, self.cause = os.fspath(path), cause


def current_umask():
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write, mode="wb", prefix=None):
    """Call ``write(file)`` on a temporary file beside ``path``, then move it onto ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The target. Its directory is created if needed.
    write : callable
        ``write(file)`` with ``file`` open in ``mode``.
    mode : {"wb", "w"}
    prefix : str, optional
        Name prefix of the temporary file; default ``.tmp-<pid>-``.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    WriteError
        When the file system refuses (the temporary file is removed first). Exceptions of
        ``write`` itself other than :class:`OSError`, and KeyboardInterrupt, pass through,
        also after removing the temporary file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".tmp-{os.getpid()}-" if prefix is None else prefix
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=os.path.splitext(path)[1])
    except OSError as exc:
        raise WriteError(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask()) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise WriteError(path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    sync_directory(directory)
    return path


def _remove(tmp):
    try:
        os.unlink(tmp)
    except OSError:
        pass  # already moved into place, or the directory went away


def sync_directory(directory):
    """fsync ``directory`` so that a completed rename survives a power cut (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):   # file systems without it
            raise
    finally:
        os.close(fd)
