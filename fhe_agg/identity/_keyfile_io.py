"""The file-system side of key files: a private directory, new files with a fixed mode, and the
checks made before a private key file is read (see :mod:`fhe_agg.identity._keystore`)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fhe_agg.errors import CorruptKeyFile, InsecureKeyFile
from fhe_agg.identity._encoding import strict_json

__all__ = ["MAX_KEY_FILE_BYTES", "read_private", "secure_directory", "write_new"]

#: Largest private-key or public-identity file that is read (bytes).
MAX_KEY_FILE_BYTES = 64 * 1024


def secure_directory(directory: Path) -> None:
    """Create ``directory`` (0700) if needed; :class:`InsecureKeyFile` if open to others."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        raise InsecureKeyFile(
            f"key directory {directory} is open to group or others (mode {mode:04o}); "
            f"run: chmod 700 {directory}"
        )


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to the new file ``path`` with ``mode`` (never a symlink or an existing
    file: ``FileExistsError``), durably."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.close(fd)


def _refuse_public_file(path: Path, fd: int, private_format: str) -> None:
    """Raise :class:`CorruptKeyFile` if the open file ``fd`` holds a public identity: a public
    file is readable by design, so its mode is no finding; the finding is the wrong file."""
    with os.fdopen(os.dup(fd), "rb") as fh:
        raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    try:
        doc = strict_json(raw)
    except ValueError:
        return
    if isinstance(doc, dict) and "proof" in doc and doc.get("format") != private_format:
        raise CorruptKeyFile(
            f"{path} is a public identity file (.pub.json); pass the private .key file"
        )


def read_private(path: Path, private_format: str) -> bytes:
    """The bytes of the private key file ``path`` (at most :data:`MAX_KEY_FILE_BYTES`) after its
    checks: regular file, no symlink, 0600-like mode, owned by us, directory not writable by
    others. A public identity file (``proof``, not ``private_format``) is named as such."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if path.is_symlink():
        raise InsecureKeyFile(f"key file {path} is a symbolic link; use the file itself")
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptKeyFile(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            _refuse_public_file(
                path, fd, private_format
            )  # a .pub.json given for a .key: say that, not chmod
            raise InsecureKeyFile(
                f"key file {path} is open to group or others (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise InsecureKeyFile(f"key file {path} is owned by another user (uid {info.st_uid})")
        folder = path.parent
        folder_mode = stat.S_IMODE(folder.stat().st_mode)
        if folder_mode & 0o022:
            raise InsecureKeyFile(
                f"key directory {folder} is writable by group or others (mode "
                f"{folder_mode:04o}); run: chmod 700 {folder}"
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise CorruptKeyFile(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
        return raw
    finally:
        os.close(fd)
