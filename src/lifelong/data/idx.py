"""The IDX format of MNIST-style files, read straight into tensors.

An IDX file is a 4-byte magic (two zero bytes, a dtype code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order, big-endian. Reading goes
``bytes -> numpy.frombuffer -> torch.from_numpy`` with a single copy (which also swaps
multi-byte values to native order), so the tensor is writable and owns its memory.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch
from torch import Tensor

from lifelong.errors import DataError

# dtype code -> (big-endian numpy dtype as stored, native numpy dtype returned)
_CODES: dict[int, tuple[str, str]] = {
    0x08: (">u1", "u1"),
    0x09: (">i1", "i1"),
    0x0B: (">i2", "=i2"),
    0x0C: (">i4", "=i4"),
    0x0D: (">f4", "=f4"),
    0x0E: (">f8", "=f8"),
}
_TORCH_CODES: dict[torch.dtype, int] = {
    torch.uint8: 0x08,
    torch.int8: 0x09,
    torch.int16: 0x0B,
    torch.int32: 0x0C,
    torch.float32: 0x0D,
    torch.float64: 0x0E,
}


def read_idx(raw: bytes | bytearray | memoryview, source: str = "IDX data") -> Tensor:
    """Parse an (uncompressed) IDX file into a tensor of its stored shape and dtype.

    ``source`` names the data in error messages (a file path, usually). Raises
    :class:`~lifelong.errors.DataError` when the header is malformed or the payload
    length does not match the dimensions (a truncated download, for instance).
    """
    raw = memoryview(raw).cast("B")
    if len(raw) < 4:
        raise DataError(f"{source}: {len(raw)} bytes is too short for an IDX header (at least 4 bytes)")
    zero, code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or code not in _CODES:
        raise DataError(
            f"{source}: not an IDX file (magic {bytes(raw[:4]).hex()}); expected 0000 followed by a dtype "
            f"code in {sorted(hex(c) for c in _CODES)} and the number of dimensions. Is it still gzipped?"
        )
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{source}: header declares {ndim} dimensions but the file ends after {len(raw)} bytes"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    stored, native = _CODES[code]
    expected = math.prod(dims) * np.dtype(stored).itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{source}: dims {dims} need {expected} bytes of values but {len(raw) - header} follow the "
            "header; the file is truncated or corrupted, fetch it again"
        )
    values = np.frombuffer(raw, dtype=stored, count=math.prod(dims), offset=header)
    # astype copies once: the result is writable, native-endian and independent of `raw`.
    return torch.from_numpy(values.astype(native).reshape(dims))


def write_idx(tensor: Tensor) -> bytes:
    """Serialise ``tensor`` as IDX bytes; used to build small fixture files and test data."""
    code = _TORCH_CODES.get(tensor.dtype)
    if code is None:
        raise DataError(
            f"write_idx: IDX cannot store dtype {tensor.dtype}; use one of {sorted(map(str, _TORCH_CODES))}"
        )
    if tensor.ndim == 0 or tensor.ndim > 255:
        raise DataError(f"write_idx: IDX needs 1 to 255 dimensions, got {tensor.ndim}")
    if max(tensor.shape) >= 2**32:
        raise DataError(f"write_idx: each dimension must be below 2**32, got shape {tuple(tensor.shape)}")
    header = struct.pack(f">HBB{tensor.ndim}I", 0, code, tensor.ndim, *tensor.shape)
    values = tensor.detach().cpu().contiguous().numpy().astype(_CODES[code][0], copy=False)
    return header + values.tobytes()
