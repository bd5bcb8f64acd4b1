"""Prediction ids (feedback tokens, formats 1 and 2): signed with a request's predictions, checked when its labels
come back.

Pure: keys and predictions in, text out; text in, a :class:`Claim` out. The byte layout is
``docs/contracts.md`` ("The id (token), format 1"): a header that names the version that predicted
(and, for a classifier, its classes), a per-id nonce, the rows' predictions, and a 128-bit tag: keyed
BLAKE2s (RFC 7693) under a subkey derived with HMAC-SHA256 for one deployment and model
(:func:`subkey`). Format 2 (a version whose fairness record names sensitive inputs) also names, in
the header, each input and its recorded groups, and after the predictions each row's group index:
so a label fed back is counted by group, on any server of the deployment.

Why keyed BLAKE2s and not HMAC-SHA256 for the tag: both are MACs (BLAKE2's keyed mode is one by
design: the key is the first block, no nested hashing needed), but the tag is computed on the
inference path, once per request, and BLAKE2s from a copied keyed state costs half of HMAC-SHA256
from copied pad states (measured: 0.9 µs against 1.8 µs per id), which is the difference between a
few per cent of a single-row request and most of the speed budget. The subkey is derived once per
key, where HMAC-SHA256 is the standard choice.

:class:`Signer` does as little per id as it can: the header (everything but the nonce, the rows and
the tag) and the keyed state after absorbing it are cached for the current second, and a single
row's packed prediction is looked up, not computed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelops.serve.contract import OTHER_GROUP

FORMAT = 1
#: Format 1 plus each row's group of every sensitive input the version records (docs/contracts.md).
FORMAT_GROUPS = 2
TAG_BYTES = 16
CLASSIFICATION = ord("c")
REGRESSION = ord("r")
#: What a subkey is derived for (``docs/contracts.md``, "What a server signs with").
SUBKEY_CONTEXT = b"modelops feedback v1\x00"
_MASK64 = (1 << 64) - 1
_NONCE_ROWS = struct.Struct(">QI")
_ISSUED = struct.Struct(">I")
_VALUE = struct.Struct(">d")
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class TokenError(ValueError):
    """An id that cannot be read; the message says why (never quoting more than a few bytes of it)."""


class UnsignableError(ValueError):
    """A version name or class label an id cannot carry (the layout's byte limits)."""


def subkey(key: bytes, scope: str, model: str) -> bytes:
    """The key a server signs with: bound to its deployment (``scope``) and model, so ids only count there."""
    return hmac.digest(key, SUBKEY_CONTEXT + scope.encode() + b"\x00" + model.encode(), "sha256")


def bits_for(classes: int) -> int:
    """Bits per row of a predicted class index: max(1, ceil(log2 C))."""
    return max(1, (classes - 1).bit_length())


class Mac:
    """Keyed BLAKE2s with a 16-byte digest under one subkey (32 bytes, BLAKE2s' largest key)."""

    __slots__ = ("state",)

    def __init__(self, key: bytes) -> None:
        self.state = hashlib.blake2s(key=key[:32], digest_size=TAG_BYTES)

    def tag(self, message: bytes | memoryview) -> bytes:
        state = self.state.copy()
        state.update(message)
        return state.digest()


#: One sensitive input an id names rows' groups of: its name and its recorded groups (``__other__``
#: not among them: a row's group index equal to their number means a value outside them).
Groups = tuple[tuple[str, tuple[str, ...]], ...]


def with_other(groups: Groups) -> Groups:
    """``groups`` as an id's reader names them: ``__other__`` appended to each input's."""
    return tuple((feature, (*names, OTHER_GROUP)) for feature, names in groups)


def _short(text: str, what: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise UnsignableError(f"{what} {text[:40]!r}… is longer than 255 bytes: an id cannot name it")
    return bytes((len(raw),)) + raw


def groups_section(groups: Groups) -> bytes:
    """The sensitive inputs and their groups, as a format-2 header carries them after the classes."""
    if not 1 <= len(groups) <= 255:
        raise UnsignableError(f"{len(groups)} sensitive inputs: an id names 1 to 255")
    parts = [bytes((len(groups),))]
    for feature, names in groups:
        if len(names) > 254:
            raise UnsignableError(f"{len(names)} groups of {feature!r}: an id names at most 254")
        parts += [_short(feature, "sensitive input"), bytes((len(names),))]
        parts += [_short(name, "group") for name in names]
    return b"".join(parts)


def header(
    key_id: int, issued: int, version: str, classes: Sequence[str] | None, groups: Groups = ()
) -> bytes:
    """The token's bytes before the nonce: format, key id, time, version, task, classes (and groups)."""
    name = version.encode()
    if not 1 <= len(name) <= 255:
        raise UnsignableError(f"version name {version!r} is not 1 to 255 bytes of UTF-8: an id cannot name it")
    form = FORMAT_GROUPS if groups else FORMAT
    parts = [bytes((form, key_id & 0xFF)), _ISSUED.pack(issued), bytes((len(name),)), name]
    if classes is None:
        parts.append(bytes((REGRESSION,)))
    else:
        if not 1 <= len(classes) <= 0xFFFF:
            raise UnsignableError(f"{len(classes)} classes: an id names at most 65535")
        parts += [bytes((CLASSIFICATION,)), len(classes).to_bytes(2, "big")]
        parts += [_short(label, "class label") for label in classes]
    if groups:
        parts.append(groups_section(groups))
    return b"".join(parts)


def pack_classes(index: npt.NDArray[Any], bits: int) -> bytes:
    """Class indices as ``bits``-bit unsigned integers, most significant bit first, zero-padded to a byte."""
    if bits == 1:
        return np.packbits(index.astype(np.uint8)).tobytes()
    if bits == 8:
        return index.astype(np.uint8).tobytes()
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    matrix = (np.asarray(index, dtype=np.uint32)[:, None] >> shifts) & 1
    return np.packbits(matrix.astype(np.uint8).ravel()).tobytes()


def unpack_classes(raw: bytes | memoryview, rows: int, bits: int) -> npt.NDArray[np.intp]:
    """The inverse of :func:`pack_classes`."""
    if bits == 8:
        return np.frombuffer(raw, dtype=np.uint8, count=rows).astype(np.intp)
    flat = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[: rows * bits].reshape(rows, bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.intp)
    out: npt.NDArray[np.intp] = flat.astype(np.intp) @ weights
    return out


class Signer:
    """Issues the ids of one server's predictions (see the module docstring).

    :meth:`rekey` swaps the key in place, so callers may keep bound methods of one Signer.
    """

    def __init__(
        self, key_id: int, key: bytes, version: str, classes: Sequence[str] | None, groups: Groups = ()
    ) -> None:
        self.version = version
        self.classes = tuple(classes) if classes is not None else None
        self.groups: Groups = tuple((feature, tuple(names)) for feature, names in groups)
        self.bits = bits_for(len(self.classes)) if self.classes is not None else 0
        #: A single row's packed prediction, by class index.
        self._one_row = _one_row_bytes(self.bits, len(self.classes or ()))
        #: Per sensitive input: bits of a group index, and a single row's packed group, by index.
        self._group_bits = [bits_for(len(names) + 1) for _, names in self.groups]
        self._one_group = [
            _one_row_bytes(bits, len(names) + 1) for bits, (_, names) in zip(self._group_bits, self.groups, strict=True)
        ]
        self._nonce = int.from_bytes(os.urandom(8), "big")
        header(key_id, 0, version, self.classes, self.groups)  # refuse what an id cannot carry, now
        self.rekey(key_id, key)

    def rekey(self, key_id: int, key: bytes) -> None:
        """Sign with another key from now on."""
        self.key_id = key_id
        self.mac = Mac(key)
        self._second = -1
        self._header = b""
        self._state: Any = None

    def _refresh(self, now: int) -> None:
        self._header = header(self.key_id, now, self.version, self.classes, self.groups)
        self._state = self.mac.state.copy()
        self._state.update(self._header)
        self._second = now

    def _sign(self, rows: int, predictions: bytes, _time: Callable[[], float] = time.time) -> str:
        now = int(_time())
        if now != self._second:
            self._refresh(now)
        self._nonce = nonce = (self._nonce + 1) & _MASK64
        tail = _NONCE_ROWS.pack(nonce, rows) + predictions
        state = self._state.copy()
        state.update(tail)
        raw = self._header + tail + state.digest()
        return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")

    def one_class(self, index: int, groups: Sequence[int] = ()) -> str:
        """The id of a single row predicted as class ``index``, whose group of each sensitive input is ``groups``."""
        if not self.groups:
            return self._sign(1, self._one_row[index])
        return self._sign(1, self._one_row[index] + self._one_groups(groups))

    def classes_of(self, index: npt.NDArray[Any], groups: Sequence[npt.NDArray[Any]] = ()) -> str:
        """The id of a batch whose rows were predicted as these class indices (and are in these groups)."""
        if index.shape[0] == 1:
            return self.one_class(int(index[0]), [int(g[0]) for g in groups])
        return self._sign(index.shape[0], pack_classes(index, self.bits) + self._packed_groups(groups))

    def one_value(self, value: float, groups: Sequence[int] = ()) -> str:
        """The id of a single row whose predicted value (a regression) is ``value`` (in these ``groups``)."""
        return self._sign(1, _VALUE.pack(value) + self._one_groups(groups))

    def values_of(self, values: npt.NDArray[Any], groups: Sequence[npt.NDArray[Any]] = ()) -> str:
        """The id of a batch of predicted values (and the rows' groups)."""
        return self._sign(values.shape[0], np.asarray(values, dtype=">f8").tobytes() + self._packed_groups(groups))

    def _one_groups(self, groups: Sequence[int]) -> bytes:
        return b"".join(one[g] for one, g in zip(self._one_group, groups, strict=True)) if self.groups else b""

    def _packed_groups(self, groups: Sequence[npt.NDArray[Any]]) -> bytes:
        if not self.groups:
            return b""
        return b"".join(pack_classes(g, b) for g, b in zip(groups, self._group_bits, strict=True))


def _one_row_bytes(bits: int, count: int) -> list[bytes]:
    """A single row's packed index (``bits`` bits, most significant first), by index."""
    size, shift = (bits + 7) // 8, 8 * ((bits + 7) // 8) - bits
    return [(i << shift).to_bytes(size, "big") for i in range(count)]


@dataclass(frozen=True)
class Claim:
    """What an id says, read but not yet checked (:meth:`Verifier.check`).

    ``predicted`` holds every row's prediction: a class index into ``classes`` (a classifier's id)
    or the predicted value (a regressor's). A format-2 id also names ``groups`` (each sensitive
    input's recorded groups, ``__other__`` appended) and ``group_rows``: per input, each row's index
    into them.
    """

    key_id: int
    issued: int
    version: str
    classes: tuple[str, ...] | None
    nonce: int
    rows: int
    predicted: Sequence[Any]
    signed: bytes
    tag: bytes
    groups: Groups = ()
    group_rows: tuple[Sequence[int], ...] = ()


class _Reader:
    """A cursor over an id's bytes that says which field ran short (the slow path, for the error message)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.at = 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.raw):
            raise TokenError(f"not a prediction id: it ends inside its {what}")
        out = self.raw[self.at : self.at + n]
        self.at += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def text(self, n: int, what: str) -> str:
        try:
            return self.take(n, what).decode()
        except UnicodeDecodeError:
            raise TokenError(f"not a prediction id: its {what} is not UTF-8") from None


def _why_not(raw: bytes) -> TokenError:
    """What is wrong with bytes the fast reading could not take: the first field that does not fit."""
    r = _Reader(raw)
    try:
        form = r.byte("format")
        if form not in (FORMAT, FORMAT_GROUPS):
            return TokenError(
                f"not a prediction id of a format this server reads (format {form}, "
                f"expected {FORMAT} or {FORMAT_GROUPS})"
            )
        r.byte("key id")
        r.take(4, "time")
        r.text(r.byte("version"), "version")
        task = r.byte("task")
        count = 0
        if task == CLASSIFICATION:
            count = int.from_bytes(r.take(2, "class count"), "big")
            for _ in range(count):
                r.text(r.byte("class labels"), "class labels")
        elif task != REGRESSION:
            return TokenError("not a prediction id: unknown task")
        sizes = []
        if form == FORMAT_GROUPS:
            for _ in range(r.byte("sensitive inputs")):
                r.text(r.byte("sensitive inputs"), "sensitive inputs")
                names = r.byte("groups")
                for _ in range(names):
                    r.text(r.byte("groups"), "groups")
                sizes.append(bits_for(names + 1))
        r.take(_NONCE_ROWS.size, "nonce")
        rows = _NONCE_ROWS.unpack(raw[r.at - _NONCE_ROWS.size : r.at])[1]
        r.take(8 * rows if task == REGRESSION else math.ceil(rows * bits_for(max(count, 1)) / 8), "predictions")
        for bits in sizes:
            r.take(math.ceil(rows * bits / 8), "groups of its rows")
        r.take(TAG_BYTES, "tag")
    except TokenError as exc:
        return exc
    return TokenError("not a prediction id: bytes after its tag")


_CLASSES_KEPT = 256
#: Class lists already decoded, by their bytes: the ids of one version all carry the same list.
_classes_seen: dict[bytes, tuple[str, ...]] = {}


def _classes_at(raw: bytes, at: int) -> tuple[tuple[str, ...], int]:
    """The class labels that start at ``at`` (after the task byte), and where they end."""
    count = int.from_bytes(raw[at : at + 2], "big")
    end = at + 2
    for _ in range(count):
        end += 1 + raw[end]
    if end > len(raw):
        raise IndexError(end)
    def parse(key: bytes) -> tuple[str, ...]:
        labels = []
        pos = 2
        for _ in range(count):
            m = key[pos]
            labels.append(key[pos + 1 : pos + 1 + m].decode())
            pos += 1 + m
        return tuple(labels)

    return _remembered(_classes_seen, raw[at:end], parse), end


def _remembered(seen: dict[bytes, Any], key: bytes, parse: Callable[[bytes], Any]) -> Any:
    """What ``parse`` makes of ``key``, remembered in ``seen`` (cleared when full)."""
    found = seen.get(key)
    if found is None:
        if len(seen) >= _CLASSES_KEPT:
            seen.clear()
        found = seen[key] = parse(key)
    return found


#: Group sections already decoded, by their bytes (as :data:`_classes_seen`).
_groups_seen: dict[bytes, Groups] = {}


def _groups_at(raw: bytes, at: int) -> tuple[Groups, int]:
    """The sensitive inputs and groups that start at ``at`` (``__other__`` appended to each), and where they end."""
    end = at + 1
    for _ in range(raw[at]):
        end += 1 + raw[end]
        names = raw[end]
        end += 1
        for _ in range(names):
            end += 1 + raw[end]
    if end > len(raw):
        raise IndexError(end)
    def parse(key: bytes) -> Groups:
        r = _Reader(key)
        parsed: list[tuple[str, tuple[str, ...]]] = []
        for _ in range(r.byte("sensitive inputs")):
            feature = r.text(r.byte("sensitive inputs"), "sensitive inputs")
            parsed.append((feature, tuple(r.text(r.byte("groups"), "groups") for _ in range(r.byte("groups")))))
        if not parsed:
            raise TokenError("not a prediction id: it names no sensitive inputs")
        return with_other(tuple(parsed))

    groups: Groups = _remembered(_groups_seen, raw[at:end], parse)
    return groups, end


def read(text: str) -> Claim:
    """Parse an id; :class:`TokenError` when it is not a well-formed id of format 1 or 2 (forgery is not checked)."""
    if not text or len(text) > 1 << 24:
        raise TokenError("not a prediction id: empty" if not text else "not a prediction id: far too long")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise TokenError("not a prediction id: not base64url text") from None
    try:
        form = raw[0]
        if form != FORMAT and form != FORMAT_GROUPS:
            raise IndexError(0)
        key_id = raw[1]
        issued = int.from_bytes(raw[2:6], "big")
        at = 7 + raw[6]
        version = raw[7:at].decode()
        task = raw[at]
        classes: tuple[str, ...] | None = None
        if task == CLASSIFICATION:
            classes, at = _classes_at(raw, at + 1)
            if not classes:
                raise TokenError("not a prediction id: it names no classes")
        elif task == REGRESSION:
            at += 1
        else:
            raise IndexError(at)
        groups: Groups = ()
        if form == FORMAT_GROUPS:
            groups, at = _groups_at(raw, at)
        nonce, rows = _NONCE_ROWS.unpack_from(raw, at)
        at += _NONCE_ROWS.size
        if rows == 0:
            raise TokenError("not a prediction id: it covers no rows")
        size = 8 * rows if classes is None else math.ceil(rows * bits_for(len(classes)) / 8)
        group_sizes = [math.ceil(rows * bits_for(len(names)) / 8) for _, names in groups]
        if len(raw) != at + size + sum(group_sizes) + TAG_BYTES or len(version) == 0:
            raise IndexError(at)
        chunk = raw[at : at + size]
    except (IndexError, UnicodeDecodeError, struct.error):
        raise _why_not(raw) from None
    group_rows: list[Sequence[int]] = []
    end = at + size
    for (_, names), group_size in zip(groups, group_sizes, strict=True):
        index = unpack_classes(raw[end : end + group_size], rows, bits_for(len(names)))
        if int(index.max()) >= len(names):
            raise TokenError("not a prediction id: a group index past its groups")
        group_rows.append(index.tolist())
        end += group_size
    predicted: Sequence[Any]
    if classes is None:
        predicted = [_VALUE.unpack(chunk)[0]] if rows == 1 else np.frombuffer(chunk, dtype=">f8").tolist()
        top = -1
    elif rows == 1:
        bits = bits_for(len(classes))
        top = int.from_bytes(chunk, "big") >> (8 * size - bits)
        predicted = [top]
    else:
        indices = unpack_classes(chunk, rows, bits_for(len(classes)))
        top = int(indices.max())
        predicted = indices.tolist()
    if classes is not None and top >= len(classes):
        raise TokenError("not a prediction id: a predicted class index past its classes")
    return Claim(
        key_id, issued, version, classes, nonce, rows, predicted, raw[:end], raw[end:], groups, tuple(group_rows)
    )


class Verifier:
    """Checks ids against the subkeys of every key generation a server holds, by key id."""

    def __init__(self, macs: dict[int, Mac]) -> None:
        self.macs = macs

    def holds(self, key_id: int) -> bool:
        return key_id in self.macs

    def check(self, claim: Claim) -> bool:
        mac = self.macs.get(claim.key_id)
        return mac is not None and hmac.compare_digest(mac.tag(claim.signed), claim.tag)
