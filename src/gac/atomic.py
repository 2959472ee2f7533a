"""Atomic file writes: every file gac rewrites in place goes through ``atomic_write``.

The content is written to a temporary file beside the target, flushed to disk (fsync), then
renamed over the target, and the folder is synced so the rename itself survives a crash. A
process killed at any point leaves either the old file or the new one, never a mix; a failed
write removes its temporary file, and temporary files of writers that died (kill -9) are
removed by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on a clean exit it replaces
    ``path``. Without ``overwrite``, a file that exists (or appears meanwhile) is never
    replaced: ``FileExistsError``.

    The temporary name keeps ``path``'s suffix (``np.savez`` and h5py look at it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _publish(tmp, path, overwrite)
        _sync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """``Path.write_text``, atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    exists = FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    try:
        os.link(tmp, path)  # a hard link fails if the name exists; a rename would not
    except FileExistsError:
        raise exists from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise exists from None
        os.replace(tmp, path)


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale(path: Path) -> None:
    """Remove temporary files of ``path`` left by writers that no longer run."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp*"):
        pid = tmp.name[len(path.name) + 2:].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
