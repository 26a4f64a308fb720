"""Is an image or label file complete? One check for every place that reads raw files itself.

SimpleITK reads a `.nii.gz` cut short (an interrupted copy or download) without an error and fills
the missing part with zeros; it does the same for an uncompressed `.nii` that ends early. A model
then predicts the half-empty volume, or trains on it, and nobody notices. So before we read such a
file we make sure that:

- a `.gz` file decompresses completely: the whole stream is read in chunks with Python's gzip
  module, which raises on a missing end-of-stream marker, a CRC mismatch or corrupt deflate data;
- a NIfTI file (`.nii`, or `.nii.gz` once decompressed) holds as many bytes as its header's image
  size and data offset say.

`malenia predict` (inference/input_check.py), `malenia evaluate` and `malenia verify-dataset` all
call `check_complete`. `stored_float_voxels` reads a float NIfTI's voxels as stored, for the NaN
check of `malenia verify-dataset`: ITK's NIfTI reader replaces NaN and inf by 0 silently.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_malenia.errors import MaleniaError

CHUNK_BYTES = 1 << 20
_NIFTI1_HEADER_BYTES, _NIFTI2_HEADER_BYTES = 348, 540
_NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 and float64


@dataclass(frozen=True)
class NiftiLayout:
    """Where a NIfTI-1/-2 file keeps its voxels, from its header."""

    endian: str  # "<" or ">"
    datatype: int
    bitpix: int
    offset: int  # of the voxel data, in bytes from the file start
    shape: tuple[int, ...]  # NIfTI order: x first

    @property
    def expected_bytes(self) -> int:
        return self.offset + math.prod(self.shape) * self.bitpix // 8


def nifti_layout(header: bytes) -> NiftiLayout | None:
    """The layout a NIfTI-1/-2 header declares, or None if `header` is not one we can read."""
    for size, endian in ((_NIFTI1_HEADER_BYTES, "<"), (_NIFTI1_HEADER_BYTES, ">"),
                         (_NIFTI2_HEADER_BYTES, "<"), (_NIFTI2_HEADER_BYTES, ">")):
        if len(header) < size or struct.unpack_from(f"{endian}i", header, 0)[0] != size:
            continue
        if size == _NIFTI1_HEADER_BYTES:
            dim = struct.unpack_from(f"{endian}8h", header, 40)
            datatype, bitpix = struct.unpack_from(f"{endian}2h", header, 70)
            offset = int(struct.unpack_from(f"{endian}f", header, 108)[0])
        else:
            datatype, bitpix = struct.unpack_from(f"{endian}2h", header, 12)
            dim = struct.unpack_from(f"{endian}8q", header, 16)
            offset = struct.unpack_from(f"{endian}q", header, 168)[0]
        ndim = dim[0]
        if not 1 <= ndim <= 7 or bitpix <= 0 or any(d <= 0 for d in dim[1:ndim + 1]):
            return None
        return NiftiLayout(endian, datatype, bitpix, max(offset, size), tuple(dim[1:ndim + 1]))
    return None


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def stored_float_voxels(path: str | Path) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """(flat voxel values as stored, NIfTI shape x-first) of a float32/float64 NIfTI file; None for anything else.

    ITK's NIfTI reader, and so SimpleITK and nnU-Net's default reader, turns NaN and inf into 0
    without a word (other formats keep them): only the stored bytes show them. Call after
    `check_complete`; reads the whole file into memory, as reading the image would.
    """
    path = Path(path)
    if not _is_nifti(path):
        return None
    with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")) as stream:
        data = stream.read()
    layout = nifti_layout(data[:_NIFTI2_HEADER_BYTES])
    if layout is None or layout.datatype not in _NIFTI_FLOAT_TYPES:
        return None
    dtype = np.dtype(_NIFTI_FLOAT_TYPES[layout.datatype]).newbyteorder(layout.endian)
    return np.frombuffer(data, dtype=dtype, count=math.prod(layout.shape), offset=layout.offset), layout.shape


def incompleteness(path: str | Path) -> str | None:
    """Why `path` is truncated or corrupt, or None if it is complete (or of a format not checked here)."""
    path = Path(path)
    name = path.name.lower()
    is_gz, is_nifti = name.endswith(".gz"), _is_nifti(path)
    if not (is_gz or is_nifti):
        return None
    header, total = b"", 0
    try:
        with (gzip.open(path, "rb") if is_gz else path.open("rb")) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                if len(header) < _NIFTI2_HEADER_BYTES:
                    header += chunk[:_NIFTI2_HEADER_BYTES - len(header)]
                total += len(chunk)
    except EOFError as e:  # "Compressed file ended before the end-of-stream marker was reached"
        return f"{e}"
    except (gzip.BadGzipFile, zlib.error) as e:
        return f"corrupt compressed data ({e})"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    layout = nifti_layout(header) if is_nifti else None
    if layout is not None and total < layout.expected_bytes:
        return f"holds {total} bytes of image data where its NIfTI header declares {layout.expected_bytes}"
    return None


def check_complete(path: str | Path) -> None:
    """Raise MaleniaError (one line naming the file) if `path` is truncated or corrupt."""
    problem = incompleteness(path)
    if problem is not None:
        raise MaleniaError(f"{path}: truncated or corrupt ({problem}); copy or export the file again "
                           "(an interrupted copy or download leaves it incomplete)")
