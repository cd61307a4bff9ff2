"""Step results through shared memory, for a client on the session's host.

A session with a shared-memory folder writes every reset's and step's
fixed-size results (the step layout) into a file there, and WELCOME names
that file and a token. A client that can open the file and finds the token in
its header maps it and sends SHARE; from then on RESET_RESULT and STEP_RESULT
frames carry only the info, and the results are read from the mapping. A
client on another host cannot open the file (or finds another one under that
name), sends no SHARE, and gets every result through the socket as before
(docs/protocol.md, "Shared memory").

File layout: ``HEADER_BYTES`` of header (``MAGIC``, then the token in ASCII,
zero-padded), then ``step_nbytes`` of results.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netgym.folders import OwnedFolder

MAGIC = b"NETGYMSM"
HEADER_BYTES = 64


def memory_folder(configured: Path | None, prefix: str) -> tuple[Path, OwnedFolder | None]:
    """A folder for shared files, and when it was made here, the ``OwnedFolder`` to remove.

    ``configured`` is created when missing, and left in place; otherwise a new
    folder in ``/dev/shm`` (memory-backed on Linux), or in the temp folder
    elsewhere, which a crashed owner's successor removes (``netgym.folders``).
    """
    from netgym.folders import named_or_owned  # POSIX only (fcntl), and only services need it

    path, owned = named_or_owned(configured, prefix, _memory_parent())
    if owned is None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)  # for this user, when made here
    return path, owned


def remove_stale_memory_folders(prefix: str) -> None:
    """Remove the folders ``memory_folder`` made for killed services (for a service
    that makes none itself)."""
    from netgym.folders import remove_stale

    remove_stale(prefix, _memory_parent())


def _memory_parent() -> Path | None:
    """``/dev/shm`` where it can be written, else None (the temp folder)."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def reserve(fd: int, nbytes: int) -> None:
    """Make the file ``nbytes`` long with its pages taken now: a sparse file on a tmpfs
    that fills up later kills whoever first touches a page with SIGBUS.

    Raises:
        OSError: no room for it (ENOSPC).
    """
    if hasattr(os, "posix_fallocate"):  # Linux; elsewhere the file stays sparse
        os.posix_fallocate(fd, 0, nbytes)
    else:
        os.ftruncate(fd, nbytes)


def create_private_file(path: Path) -> int:
    """A new file, readable and writable by this user only; its descriptor, open for
    reading and writing. Never through a link, never over another file: in a folder
    that other users may write in (/dev/shm), either could give them the data.

    Raises:
        FileExistsError: when ``path`` exists, a link included.
    """
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)


def write_private_file(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path``, readable by this user only: written to a new file
    beside it, then renamed over it (a link at ``path`` is replaced, not followed)."""
    temporary = path.with_name(f".{path.name}-{secrets.token_hex(6)}")
    fd = create_private_file(temporary)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def create_results_file(path: Path, nbytes: int) -> tuple[mmap.mmap, str]:
    """Make the file, readable by this user only, and map it; return the map and token.

    The results start at ``HEADER_BYTES`` in the map.
    """
    token = secrets.token_hex(16)
    fd = create_private_file(path)
    try:
        reserve(fd, HEADER_BYTES + nbytes)
        memory = mmap.mmap(fd, HEADER_BYTES + nbytes)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    memory[: len(MAGIC) + len(token)] = MAGIC + token.encode()
    return memory, token


def open_results_file(path: str, token: str, nbytes: int) -> mmap.mmap | None:
    """Map a session's results file read-only, or None when this process cannot share it.

    None when the file is missing or unreadable here (another host, another
    user), too small, or holds another token (another machine's file of the
    same name, in a container say).
    """
    try:
        with open(path, "rb") as file:
            memory = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    expected = MAGIC + token.encode()
    if len(memory) < HEADER_BYTES + nbytes or memory[: len(expected)] != expected:
        with contextlib.suppress(BufferError):
            memory.close()
        return None
    return memory
