"""Hypothesis strategies for reading payloads and near-miss datagrams, shared by the codec equality tests
(test_fastpath.py, test_legacy_codec.py, tests/simulator/test_native_device.py): the same near misses must
get the same decision from every implementation."""

from __future__ import annotations

import json

from hypothesis import strategies as st

# payloads: JSON objects, other JSON, near misses (NaN, bad escapes, control characters, lone surrogates,
# bad UTF-8, trailing garbage, leading/trailing whitespace) and random bytes
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4).map(
    lambda d: json.dumps(d, ensure_ascii=False).encode()
)
json_fragments = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b'"',
        b"\\",
        b"\\u",
        b"\\ud800",
        b"\\x",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"-",
        b"0",
        b"01",
        b"1.",
        b".5",
        b"1e",
        b"1e+",
        b"1E-3",
        b"-0.0e5",
        b"true",
        b"nul",
        b"null",
        b" ",
        b"\t",
        b"\n",
        b"\r",
        b"\x0b",
        b"\x00",
        b"\x1f",
        b"\x7f",
        b"\xc3\xa9",
        b"\xff",
        b"\xed\xa0\x80",
        b"\xef\xbb\xbf",
        b'"a"',
        b'{"a":1}',
        b"[1,]",
        b'{"a":1,}',
    ]
)
payloads = st.one_of(
    json_objects,
    st.builds(lambda a, b, c: a + b + c, st.binary(max_size=2), json_objects, st.binary(max_size=2)),
    st.lists(json_fragments, max_size=12).map(b"".join),
    st.builds(
        lambda obj, i, frag: obj[:i] + frag + obj[i:],
        json_objects,
        st.integers(0, 40),
        json_fragments,
    ),
    st.binary(max_size=20),
)


@st.composite
def near_misses(draw, valid: st.SearchStrategy[bytes], max_edits: int = 3) -> bytes:
    """A valid datagram with 1..max_edits edits: a byte changed, the tail cut, bytes inserted or a run
    deleted (edits land in the header, the id, the sequence, a payload or the tag)."""
    base = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, max_edits))):
        i = draw(st.integers(0, len(base)))
        op = draw(st.integers(0, 3))
        if op == 0 and i < len(base):
            base[i] = draw(st.integers(0, 255))
        elif op == 1:
            del base[i:]
        elif op == 2:
            base[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del base[i : i + draw(st.integers(1, 8))]
    return bytes(base)
