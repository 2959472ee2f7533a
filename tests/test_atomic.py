"""Atomic writes: one helper serves every file gac rewrites in place; it syncs to disk, keeps
the old file when a write fails, and leaves (or keeps) no temporary files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gac
from gac.atomic import atomic_write, write_text


def test_a_failed_write_keeps_the_old_file_and_no_temporary_file(tmp_path):
    path = write_text(tmp_path / "status.json", "old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_the_content_is_synced_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    write_text(tmp_path / "a.txt", "new")
    assert len(synced) >= 1 and (tmp_path / "a.txt").read_text() == "new"


def test_without_overwrite_an_existing_file_is_kept(tmp_path):
    path = write_text(tmp_path / "data.hdf5", "mine")
    with pytest.raises(FileExistsError, match="data.hdf5 exists"), \
            atomic_write(path, overwrite=False) as tmp:
        tmp.write_text("theirs")
    assert path.read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".checkpoint.pt.{dead}-abcd1234.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / f".other.pt.{dead}-abcd1234.tmp.pt"  # another file's: left alone
    other.write_bytes(b"x")
    write_text(tmp_path / "checkpoint.pt", "whole")
    assert not stale.exists() and other.exists()


def test_no_module_writes_atomically_by_hand():
    src = Path(gac.__file__).parent
    by_hand = re.compile(r"os\.replace\(|tmp\.replace\(|mkstemp\(|os\.rename\(")
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if p.name != "atomic.py" and by_hand.search(p.read_text())]
    assert offenders == []
