import struct

import pytest
import torch

from lifelong.data.idx import read_idx, write_idx
from lifelong.errors import DataError


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32, torch.float64]
)
@pytest.mark.parametrize("shape", [(7,), (3, 28, 28), (2, 3, 4, 5)])
def test_round_trip_keeps_values_shape_and_dtype(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    tensor = (torch.arange(torch.Size(shape).numel()) - 3).reshape(shape).to(dtype)
    back = read_idx(write_idx(tensor))
    assert back.dtype == dtype and back.shape == shape
    assert torch.equal(back, tensor)


def test_header_is_big_endian_idx() -> None:
    raw = write_idx(torch.zeros(2, 3, dtype=torch.int16))
    assert raw[:4] == b"\x00\x00\x0b\x02"
    assert struct.unpack(">2I", raw[4:12]) == (2, 3)
    assert len(raw) == 12 + 2 * 3 * 2


def test_result_is_writable_and_independent_of_the_buffer() -> None:
    raw = bytearray(write_idx(torch.arange(4, dtype=torch.uint8)))
    tensor = read_idx(raw)
    tensor[0] = 9  # would fail or warn on a read-only view
    assert raw[-4] == 0


def test_multibyte_values_come_back_native_endian() -> None:
    raw = struct.pack(">HBBI", 0, 0x0C, 1, 2) + struct.pack(">2i", 1, -2)
    assert read_idx(raw).tolist() == [1, -2]


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x00\x00", "too short"),
        (b"\x1f\x8b\x08\x01" + b"\x00" * 8, "not an IDX file"),  # still gzipped
        (b"\x00\x00\x07\x01" + b"\x00" * 8, "not an IDX file"),  # unknown dtype code
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "ends after"),
        (struct.pack(">HBB2I", 0, 8, 2, 3, 4) + bytes(11), "truncated"),
        (struct.pack(">HBB2I", 0, 8, 2, 3, 4) + bytes(13), "truncated"),
    ],
)
def test_malformed_data_raises_a_clear_error(raw: bytes, match: str) -> None:
    with pytest.raises(DataError, match=match):
        read_idx(raw, "sample.idx")


def test_error_names_the_source() -> None:
    with pytest.raises(DataError, match="/data/x-idx1-ubyte"):
        read_idx(b"", "/data/x-idx1-ubyte")


def test_write_rejects_what_idx_cannot_store() -> None:
    with pytest.raises(DataError, match="dtype"):
        write_idx(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(DataError, match="dimensions"):
        write_idx(torch.tensor(1, dtype=torch.uint8))
