"""The Kafka record batches a worker fills: ``ibp_native.RecordBatch``, or :class:`PyRecordBatch` without it.

Both take a datagram's records in one ``append_from(key, records, start)`` call, compress once per batch
with the codec and level of the config (:func:`compressor`), and offer what aiokafka's producer calls on
a builder handed to ``send_batch()`` (``_build``, ``size``, ``record_count``, ``close``, ``closed``,
``_set_producer_state``). For the same records and codec both build the same bytes as aiokafka's own
``BatchBuilder`` (tests/gateway/test_batch.py).

Why not aiokafka's builder: it costs a Python call per record, and it compresses lz4 at level 9 whatever
the config says: at level 9, lz4 took 0.80 µs of CPU per 150-byte reading here, at level 1 0.04 µs
(docs/gateway.md, "Kafka batches and the compression level").
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import codec as kafka_codec
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

from gateway import hotpath

Compress = Callable[[bytes], bytes]

# the compression bits of a record batch's attributes (Kafka's DefaultRecordBatch)
CODEC_BITS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

_HEADER = 61  # the v2 batch header: base offset .. record count
_LENGTH = struct.Struct(">i")
_ATTRIBUTES = struct.Struct(">h")


def compressor(codec: str, level: int | None) -> tuple[int, Compress | None]:
    """``(attribute bits, compress function)`` for a codec name of ``kafka.compression`` and its level."""
    bits = CODEC_BITS[codec]
    encode: Callable[..., bytes]
    if codec == "none":
        return 0, None
    if codec == "gzip":
        encode, arg = kafka_codec.gzip_encode, "compresslevel"
    elif codec == "snappy":
        encode, arg = kafka_codec.snappy_encode, ""
    elif codec == "lz4":
        encode, arg = kafka_codec.lz4_encode, "level"
    else:
        encode, arg = kafka_codec.zstd_encode, "level"
    if level is None:
        return bits, encode
    if not arg:
        raise ValueError(f"{codec} takes no compression level")
    return bits, functools.partial(encode, **{arg: level})


class Batch(Protocol):
    """What :class:`gateway.kafka_out.KafkaOut` needs of a batch (both implementations)."""

    def append_from(self, key: bytes | None, records: Sequence[tuple[bytes, int]], start: int) -> int: ...
    def record_count(self) -> int: ...
    def close(self) -> None: ...


class PyRecordBatch:
    """The pure-Python twin of ``ibp_native.RecordBatch`` (aiokafka's record builder without compression,
    then one compression of the whole batch and the header's attributes and CRC-32C rewritten)."""

    def __init__(self, max_bytes: int, codec: int = 0, compress: Compress | None = None) -> None:
        if not 0 <= codec <= 4 or (codec != 0) != (compress is not None):
            raise ValueError("codec must be 0 without compress, or 1..4 with a compress function")
        self._builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, max_bytes)
        self._codec, self._compress = codec, compress
        self._count = 0
        self._closed = False
        self._built: bytes | None = None

    def append(self, key: bytes | None, value: bytes, timestamp: int) -> bool:
        if self._closed:
            return False
        if self._builder.append(self._count, timestamp, key, value, []) is None:
            self._closed = True
            return False
        self._count += 1
        return True

    def append_from(self, key: bytes | None, records: Sequence[tuple[bytes, int]], start: int) -> int:
        append = self.append
        for k in range(start, len(records)):
            value, ts = records[k]
            if not append(key, value, ts):
                return k
        return len(records)

    def _build(self) -> bytes:
        if self._built is not None:
            return self._built
        self._closed = True
        buf = self._builder.build()  # header written, no compression
        del self._builder
        if self._compress is not None:  # always, even when it does not shrink: as aiokafka's builder
            packed = self._compress(bytes(buf[_HEADER:]))
            del buf[_HEADER:]
            buf += packed
            _LENGTH.pack_into(buf, 8, len(buf) - 12)
            _ATTRIBUTES.pack_into(buf, 21, self._codec)
            struct.pack_into(">I", buf, 17, calc_crc32c(bytes(buf[21:])))
        self._built = bytes(buf)
        return self._built

    def size(self) -> int:
        return len(self._built) if self._built is not None else self._builder.size()

    def record_count(self) -> int:
        return self._count

    def close(self) -> None:
        self._closed = True

    def closed(self) -> bool:
        return self._closed

    def _set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
        if self._built is None:
            self._builder.set_producer_state(producer_id, producer_epoch, base_sequence)


def factory(max_bytes: int, codec: str, level: int | None) -> Callable[[], Batch]:
    """A function making empty batches: native when ``ibp_native`` is in use (gateway/hotpath.py)."""
    bits, compress = compressor(codec, level)
    make: Callable[[int, int, Compress | None], Batch] = (
        hotpath.native_module().RecordBatch if hotpath.IMPL == "native" else PyRecordBatch
    )
    return lambda: make(max_bytes, bits, compress)
