"""The gateway's Kafka batches (gateway/batch.py): the native ``RecordBatch``, its pure-Python twin and aiokafka's
own ``BatchBuilder`` build the same bytes for the same records, and the bytes read back as those records.

The broker's side is in the gateway's end-to-end tests (a real broker checks every batch's CRC and layout and
the audit reads the records back); test_codec_paths.py runs a gateway on each path and on a chosen level.
"""

from __future__ import annotations

import json

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import batch, fastpath
from ibp import protocol
from tests.gateway.native_ext import ibp_native, needs_native

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
records_st = st.lists(st.tuples(st.binary(max_size=300), st.integers(0, 2**41)), min_size=1, max_size=60)
keys_st = st.one_of(st.none(), st.binary(min_size=1, max_size=40))


def fill(b, key, records) -> int:
    return b.append_from(key, records, 0)


def aiokafka_bytes(max_bytes: int, codec: str, key, records) -> tuple[int, bytes]:
    b = BatchBuilder(max_bytes, batch.CODEC_BITS[codec])
    n = 0
    for value, ts in records:
        if b.append(timestamp=ts, key=key, value=value) is None:
            break
        n += 1
    return n, bytes(b._build())


def same(a, b, codec: str) -> bool:
    """Equal bytes; for gzip, whose header holds the time of compression, equal but for those 4 bytes."""
    if codec != "gzip":
        return a == b
    if isinstance(a, tuple):
        return a[0] == b[0] and same(a[1], b[1], codec)
    return len(a) == len(b) and read_back(a) == read_back(b) and a[:65] == b[:17] + a[17:21] + b[21:65]


def read_back(data: bytes) -> list[tuple[int, int, bytes | None, bytes]]:
    out = []
    for r in DefaultRecordBatch(data):
        out.append((r.offset, r.timestamp, r.key, r.value))
    return out


@settings(max_examples=150, deadline=None)
@given(records_st, keys_st, st.integers(200, 6000), st.sampled_from(CODECS))
def test_python_batch_equals_aiokafka_builder(records, key, max_bytes, codec) -> None:
    bits, compress = batch.compressor(codec, None)
    ours = batch.PyRecordBatch(max_bytes, bits, compress)
    n = fill(ours, key, records)
    assert same((n, ours._build()), aiokafka_bytes(max_bytes, codec, key, records), codec)
    assert ours.record_count() == n >= 1  # the first record always goes in
    assert ours.closed()
    assert read_back(ours._build()) == [(i, ts, key, v) for i, (v, ts) in enumerate(records[:n])]


@needs_native
@settings(max_examples=150, deadline=None)
@given(records_st, keys_st, st.integers(200, 6000), st.sampled_from(CODECS), st.data())
def test_native_batch_equals_python_and_aiokafka(records, key, max_bytes, codec, data) -> None:
    level = None
    if codec in ("gzip", "lz4", "zstd"):
        lo, hi = {"gzip": (1, 9), "lz4": (0, 16), "zstd": (1, 22)}[codec]
        level = data.draw(st.one_of(st.none(), st.integers(lo, hi)))
    bits, compress = batch.compressor(codec, level)
    native = ibp_native.RecordBatch(max_bytes, bits, compress)
    python = batch.PyRecordBatch(max_bytes, bits, compress)
    n = fill(native, key, records)
    assert n == fill(python, key, records)
    assert native.size() == python.size()  # uncompressed so far: the same layout
    built = native._build()
    assert same(built, python._build(), codec) and native._build() is built  # built once
    if level is None:
        assert same((n, built), aiokafka_bytes(max_bytes, codec, key, records), codec)
    assert native.append(key, b"late", 1) is False and python.append(key, b"late", 1) is False
    assert DefaultRecordBatch(built).validate_crc()
    assert read_back(built) == [(i, ts, key, v) for i, (v, ts) in enumerate(records[:n])]


@needs_native
@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**64 - 1), st.sampled_from([b"{}", b'{"t":21.5}', b'{"s":"x"}'])),
        max_size=30,
        min_size=1,
    ),
    st.integers(0, 2**32 - 64),
    st.one_of(st.none(), st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=3)),
    st.integers(0, 2**62),
    st.integers(300, 4000),
)
def test_native_records_fill_a_batch_as_their_values_do(readings, first, ranges, now_ms, max_bytes) -> None:
    """A datagram's lazy ``Records`` written in place == the same values appended one by one, split the same."""
    datagram = protocol.encode_data("dev-1", bytes(32), first, readings)
    _, _, nreadings, _ = ibp_native.parse_data_raw(datagram)
    ranges = None if ranges is None else [(first + lo, first + hi) for lo, hi in ranges]
    lazy = ibp_native.build_records(nreadings, b'"dev-1"', first, now_ms, ranges)
    plain = list(lazy)
    _, _, preadings, _ = fastpath.parse_data_raw(datagram)
    assert plain == fastpath.build_records(preadings, b'"dev-1"', first, now_ms, ranges)
    bits, compress = batch.compressor("lz4", 1)
    start_a = start_b = 0
    while start_a < len(plain):
        a = ibp_native.RecordBatch(max_bytes, bits, compress)
        b = batch.PyRecordBatch(max_bytes, bits, compress)
        end_a, end_b = a.append_from(b"dev-1", lazy, start_a), b.append_from(b"dev-1", plain, start_b)
        assert end_a == end_b > start_a
        assert a._build() == b._build()
        start_a = start_b = end_a


def test_compressor_levels() -> None:
    assert batch.compressor("none", None) == (0, None)
    bits, lz4_fast = batch.compressor("lz4", 1)
    data = json.dumps([{"device_id": f"d-{i}", "t": 21.5} for i in range(200)]).encode()
    assert bits == 3 and len(lz4_fast(data)) < len(data)
    with pytest.raises(ValueError, match="snappy takes no compression level"):
        batch.compressor("snappy", 3)
    with pytest.raises(ValueError, match="codec must be 0 without compress"):
        batch.PyRecordBatch(1000, 3, None)
    if ibp_native is not None:
        with pytest.raises(ValueError, match="codec must be 0 without compress"):
            ibp_native.RecordBatch(1000, 0, lz4_fast)
