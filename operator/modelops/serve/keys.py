"""The feedback keys directory (``--feedback-keys``): reading it, and noticing when it changes.

The directory is what the kubelet makes of the namespace's ``modelops-feedback-keys`` Secret
(``docs/contracts.md``, "Keys"): ``key-<g>`` files, each at least 32 bytes, and ``current``, the
generation to sign with, as decimal text. Without ``current``, a directory with exactly one key file
signs with that one. A mounted Secret changes in place (the kubelet swaps a symlink), so
:class:`Watcher` compares the files' identities once a second and re-reads them when they moved.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 32
_KEY_FILE = re.compile(r"^key-([1-9][0-9]{0,17})$")


class KeysError(Exception):
    """The directory gives no usable keys; the message says why."""


@dataclass(frozen=True)
class KeyRing:
    """Every key generation held, and the one to sign with."""

    current: int
    keys: dict[int, bytes]

    @property
    def key_ids(self) -> dict[int, int]:
        """Key id (generation mod 256, what an id carries) -> generation."""
        return {g % 256: g for g in self.keys}


def read(directory: Path) -> KeyRing:
    """The keys in ``directory``; :class:`KeysError` naming the problem."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError as exc:
        raise KeysError(f"cannot read the feedback keys directory {directory}: {exc.strerror}") from None
    keys: dict[int, bytes] = {}
    for name in names:
        match = _KEY_FILE.match(name)
        if match is None:
            continue
        try:
            data = (directory / name).read_bytes()
        except OSError as exc:
            raise KeysError(f"cannot read feedback key {directory / name}: {exc.strerror}") from None
        if len(data) < MIN_KEY_BYTES:
            raise KeysError(
                f"feedback key {directory / name} has {len(data)} bytes; a key has at least {MIN_KEY_BYTES}"
            )
        keys[int(match.group(1))] = data
    if not keys:
        raise KeysError(f"no feedback key in {directory}: expected files key-<generation> (e.g. key-1)")
    if len({g % 256 for g in keys}) != len(keys):
        raise KeysError(f"feedback keys in {directory} collide modulo 256 (generations {sorted(keys)})")
    current_file = directory / "current"
    if current_file.exists():
        try:
            text = current_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeysError(f"cannot read {current_file}: {exc}") from None
        if not text.isdigit() or int(text) not in keys:
            raise KeysError(f"{current_file} says {text[:20]!r}, which is not the generation of a key file there")
        current = int(text)
    elif len(keys) == 1:
        current = next(iter(keys))
    else:
        raise KeysError(f"{directory} holds {len(keys)} keys but no file 'current' saying which one signs")
    return KeyRing(current, keys)


def _identity(directory: Path) -> tuple[tuple[str, int, int, int], ...] | None:
    """What changes when any file in the directory does (its target, for the kubelet's symlinks)."""
    try:
        out = []
        for entry in os.scandir(directory):
            if entry.name == "current" or _KEY_FILE.match(entry.name):
                st = entry.stat()  # follows symlinks: a swapped Secret shows new inodes
                out.append((entry.name, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(sorted(out))
    except OSError:
        return None


class Watcher:
    """Re-reads the directory when its files change; keeps the last good keys through a bad change."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen = _identity(directory)
        self.ring = read(directory)
        self._complained: tuple[tuple[str, int, int, int], ...] | None = None

    def poll(self) -> KeyRing | None:
        """The new keys when the directory changed and still reads well; None otherwise."""
        seen = _identity(self.directory)
        if seen is None or seen == self._seen:
            return None
        try:
            ring = read(self.directory)
        except KeysError as exc:
            if seen != self._complained:
                log.warning("keeping the feedback keys in use: %s", exc)
                self._complained = seen
            return None
        self._seen = seen
        self._complained = None
        if ring == self.ring:
            return None
        self.ring = ring
        return ring
