"""Read an NVS partition image back into {namespace: {key: value}} (ESP-IDF NVS format, v1 and v2).

Used to prove a generated image holds what the board will read. Checks every CRC the format has
(page header, entry header, string/blob data); strings come back as str, blobs as bytes, integers as int.
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from typing import Any

PAGE_SIZE = 4096
ENTRY_SIZE = 32
ENTRIES_PER_PAGE = 126
PAGE_ACTIVE = 0xFFFFFFFE
PAGE_FULL = 0xFFFFFFFC
ENTRY_WRITTEN = 0b10
INTEGER_TYPES = {
    0x01: "<B",
    0x11: "<b",
    0x02: "<H",
    0x12: "<h",
    0x04: "<I",
    0x14: "<i",
    0x08: "<Q",
    0x18: "<q",
}
T_STRING = 0x21
T_BLOB_V1 = 0x41
T_BLOB_DATA = 0x42
T_BLOB_INDEX = 0x48


class NvsFormatError(ValueError):
    pass


def _crc(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def _entry_state(page: bytes, index: int) -> int:
    bitmap = page[32:64]
    return (bitmap[index // 4] >> ((index % 4) * 2)) & 0b11


def read_nvs(image: bytes) -> dict[str, dict[str, Any]]:
    if len(image) % PAGE_SIZE != 0 or not image:
        raise NvsFormatError(f"image size {len(image)} is not a multiple of {PAGE_SIZE}")
    namespaces: dict[int, str] = {}
    raw: list[tuple[int, str, int, Any]] = []  # (ns index, key, type, value)
    chunks: dict[tuple[int, str], dict[int, bytes]] = defaultdict(dict)
    indexes: dict[tuple[int, str], tuple[int, int, int]] = {}
    for start in range(0, len(image), PAGE_SIZE):
        page = image[start : start + PAGE_SIZE]
        (state,) = struct.unpack_from("<I", page, 0)
        if state not in (PAGE_ACTIVE, PAGE_FULL):
            continue
        (header_crc,) = struct.unpack_from("<I", page, 28)
        if _crc(page[4:28]) != header_crc:
            raise NvsFormatError(f"page at 0x{start:x}: header CRC mismatch")
        i = 0
        while i < ENTRIES_PER_PAGE:
            if _entry_state(page, i) != ENTRY_WRITTEN:
                i += 1
                continue
            off = 64 + i * ENTRY_SIZE
            entry = page[off : off + ENTRY_SIZE]
            ns, etype, span, chunk = entry[0], entry[1], entry[2], entry[3]
            (entry_crc,) = struct.unpack_from("<I", entry, 4)
            if _crc(entry[0:4] + entry[8:32]) != entry_crc:
                raise NvsFormatError(f"page at 0x{start:x}, entry {i}: CRC mismatch")
            key = entry[8:24].split(b"\x00", 1)[0].decode()
            data = entry[24:32]
            if span < 1 or i + span > ENTRIES_PER_PAGE:
                raise NvsFormatError(f"page at 0x{start:x}, entry {i}: bad span {span}")
            if etype in INTEGER_TYPES:
                (value,) = struct.unpack_from(INTEGER_TYPES[etype], data, 0)
                if ns == 0:
                    namespaces[value] = key
                else:
                    raw.append((ns, key, etype, value))
            elif etype in (T_STRING, T_BLOB_V1, T_BLOB_DATA):
                size, _reserved, data_crc = struct.unpack_from("<HHI", data, 0)
                payload = page[off + ENTRY_SIZE : off + ENTRY_SIZE + size]
                if len(payload) != size or _crc(payload) != data_crc:
                    raise NvsFormatError(f"key {key!r}: data CRC mismatch")
                if etype == T_STRING:
                    raw.append((ns, key, etype, payload.rstrip(b"\x00").decode()))
                elif etype == T_BLOB_V1:
                    raw.append((ns, key, etype, bytes(payload)))
                else:
                    chunks[(ns, key)][chunk] = bytes(payload)
            elif etype == T_BLOB_INDEX:
                size, count, first = struct.unpack_from("<IBB", data, 0)
                indexes[(ns, key)] = (size, count, first)
            else:
                raise NvsFormatError(f"key {key!r}: unknown entry type 0x{etype:02x}")
            i += span
    for (ns, key), (size, count, first) in indexes.items():
        parts = chunks.get((ns, key), {})
        try:
            blob = b"".join(parts[first + n] for n in range(count))
        except KeyError:
            raise NvsFormatError(f"blob {key!r}: missing chunk") from None
        if len(blob) != size:
            raise NvsFormatError(f"blob {key!r}: {len(blob)} bytes, index says {size}")
        raw.append((ns, key, T_BLOB_INDEX, blob))
    out: dict[str, dict[str, Any]] = {}
    for ns, key, _etype, value in raw:
        if ns not in namespaces:
            raise NvsFormatError(f"key {key!r} refers to undefined namespace index {ns}")
        out.setdefault(namespaces[ns], {})[key] = value
    return out
