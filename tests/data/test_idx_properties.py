"""Property tests of the IDX reader: whatever the bytes, a DataError or an array that matches its header."""

import gzip
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fashionbench.data.idx import encode_idx, parse_idx, read_bytes
from fashionbench.errors import DataError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def header_shape(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3]))


def assert_parses_or_refuses(data: bytes) -> None:
    try:
        array = parse_idx(data, "prop")
    except DataError:
        return
    shape = header_shape(data)
    assert array.dtype == np.uint8 and array.shape == shape
    assert array.size == math.prod(shape) == len(data) - 4 - 4 * len(shape)
    assert array.tobytes() == data[4 + 4 * len(shape):]


@st.composite
def valid_idx(draw) -> bytes:
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 30)),)
    else:
        shape = (draw(st.integers(0, 3)), draw(st.integers(0, 6)), draw(st.integers(0, 6)))
    body = draw(st.binary(min_size=math.prod(shape), max_size=math.prod(shape)))
    return encode_idx(np.frombuffer(body, np.uint8).reshape(shape))


def flip(data: bytes, where: int, mask: int) -> bytes:
    if not data:
        return data
    i = where % len(data)
    return data[:i] + bytes([data[i] ^ mask]) + data[i + 1:]


def set_dim(data: bytes, dim: int, value: int) -> bytes:
    i = 4 + 4 * dim
    return data[:i] + value.to_bytes(4, "big") + data[i + 4:] if len(data) >= i + 4 else data


@st.composite
def mutated_idx(draw) -> bytes:
    data = draw(valid_idx())
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "extend", "dim", "gzip", "gzip-corrupt", "gzip-truncate"]))
        if op == "flip":
            data = flip(data, draw(st.integers(0, 10_000)), draw(st.integers(1, 255)))
        elif op == "truncate":
            data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=40))
        elif op == "dim":
            value = draw(st.one_of(st.sampled_from([0, 1, 28, 0xFFFFFFFF, 2**31, 2**21, 2**22]),
                                   st.integers(0, 2**32 - 1)))  # huge, zero, and products that wrap int64
            data = set_dim(data, draw(st.integers(0, 2)), value)
        elif op == "gzip":
            data = gzip.compress(data, mtime=0)
        elif op == "gzip-corrupt":
            data = flip(gzip.compress(data, mtime=0), draw(st.integers(0, 10_000)), draw(st.integers(1, 255)))
        else:
            gz = gzip.compress(data, mtime=0)
            data = gz[: draw(st.integers(0, len(gz) - 1))]
    return data


SPECIAL_DIMS = st.sampled_from([0, 1, 2, 28, 2**21, 2**22, 2**31, 0xFFFFFFFF])
DIMS = st.one_of(SPECIAL_DIMS, SPECIAL_DIMS, st.integers(0, 2**32 - 1))  # mostly the edge cases


@st.composite
def forged_header(draw) -> bytes:
    """Any 1-D or 3-D header (zero, huge, int64-wrapping dimensions) over a short body."""
    ndim = draw(st.sampled_from([1, 3]))
    dims = [draw(DIMS) for _ in range(ndim)]
    body = draw(st.one_of(st.just(b""), st.binary(max_size=64)))
    return bytes([0, 0, 8, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims) + body


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("idx-properties") / "f.gz"


def assert_read_then_parse(path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        content = read_bytes(path)
    except DataError:
        assert data[:2] == b"\x1f\x8b", "only gzip decoding may fail on a readable file"
        return
    if data[:2] != b"\x1f\x8b":
        assert content == data
    assert_parses_or_refuses(content)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data):
    assert_parses_or_refuses(data)


@SETTINGS
@given(valid_idx())
def test_valid_files_round_trip(data):
    array = parse_idx(data)
    assert encode_idx(array) == data


@SETTINGS
@given(mutated_idx())
def test_mutated_bytes(data):
    assert_parses_or_refuses(data)


@SETTINGS
@given(forged_header())
def test_forged_headers(data):
    assert_parses_or_refuses(data)


@SETTINGS
@given(data=st.one_of(mutated_idx(), st.binary(max_size=300),
                      st.binary(max_size=300).map(lambda b: b"\x1f\x8b" + b)))
def test_mutated_files_through_read_bytes(scratch, data):
    assert_read_then_parse(scratch, data)


@pytest.mark.parametrize("dims", [(0xFFFFFFFF,) * 3, (2**22, 2**21, 2**21), (0xFFFFFFFF, 0, 5)])
def test_huge_header_dimensions_neither_allocate_nor_overflow(dims):
    data = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(10)
    with pytest.raises(DataError, match="header promises"):
        parse_idx(data)


def test_empty_body_with_impossible_dimensions():
    # Zero elements, so the size matches, but NumPy cannot make an axis of 2**32-1 next to another.
    data = bytes([0, 0, 8, 3]) + b"\xff" * 8 + bytes(4)
    with pytest.raises(DataError, match=r"header shape \(4294967295, 4294967295, 0\) is impossible"):
        parse_idx(data)
