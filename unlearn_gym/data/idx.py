"""Reader and writer for the IDX format used by MNIST, Fashion-MNIST and torchvision's ``raw/``."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

# IDX type codes -> numpy dtypes (big-endian on disk).
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}


class IDXFormatError(ValueError):
    """An IDX file is malformed (bad magic number, unknown type or wrong size)."""


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) into a numpy array.

    :param path: file path.
    :raises IDXFormatError: when the magic number, the type code or the payload size is wrong.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as e:  # truncated gzip streams raise EOFError
        raise IDXFormatError(f"{path}: cannot read IDX file ({e})") from e
    if len(data) < 4:
        raise IDXFormatError(f"{path}: file too short to be IDX ({len(data)} bytes)")
    zero, code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise IDXFormatError(
            f"{path}: bad IDX magic number {data[:4].hex()} (expected 0000 + type code + ndim)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise IDXFormatError(
            f"{path}: IDX payload is {len(data) - header} bytes, header {shape} needs {expected}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``), atomically.

    :param path: destination.
    :param array: array of a dtype IDX supports (uint8, int8, int16, int32, float32, float64).
    """
    path = Path(path)
    array = np.asarray(array)
    dt = array.dtype.newbyteorder("=")
    if dt not in _CODES:
        raise IDXFormatError(f"dtype {array.dtype} cannot be stored in IDX")
    code = _CODES[dt]
    payload = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.astype(_DTYPES[code]).tobytes()
    tmp = path.with_name(path.name + ".tmp")
    with (gzip.open(tmp, "wb") if path.suffix == ".gz" else open(tmp, "wb")) as f:
        f.write(payload)
    os.replace(tmp, path)
