"""Directories and files only their owner can open: the data directory, the SQLite database, the keyring.

Threat model: another account on the same machine (a shared server, a CI runner, a compromised
service) reading the database, its write-ahead log or the keyring. The umask usually lets new
files be read by everyone (0644) and directories be listed (0755), so what this module creates
is 0700 / 0600 from the first moment, whatever the umask says. SQLite creates the database's
``-wal`` and ``-shm`` files with the database file's own mode, so a database file created here
keeps its companions private too.

It does not tighten what exists already (an operator may have chosen a group on purpose), and
it does not protect against root or the owner's own account.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE_DIRECTORY_MODE", "PRIVATE_FILE_MODE", "create_private_file", "make_private_directory"]

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_directory(path: Path) -> None:
    """``mkdir -p`` where each directory created is 0700; existing ones are left as they are."""
    missing: list[Path] = []
    for directory in [path, *path.parents]:
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue  # another process made it first; its mode is its own
        directory.chmod(PRIVATE_DIRECTORY_MODE)  # the umask may have taken bits off mkdir's mode; never adds any


def create_private_file(path: Path) -> None:
    """An empty file with mode 0600, unless the file exists already."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)
