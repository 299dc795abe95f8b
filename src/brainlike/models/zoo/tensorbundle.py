"""Read TensorFlow checkpoints (TensorBundle: ``NAME.index`` + ``NAME.data-00000-of-00001``) without TensorFlow.

The ``.index`` file is a LevelDB-format SSTable: data blocks of prefix-compressed ``(key, value)`` entries
(``varint32 shared, varint32 unshared, varint32 value length, key suffix, value``, then a uint32 restart array and
its count), each followed by a 5-byte trailer (compression type, crc32c); an index block maps the last key of each
data block to its ``BlockHandle`` (``varint64 offset, varint64 size``); the 48-byte footer holds the metaindex and
index handles and the magic number ``0xdb4775248b80fb57``. Keys are tensor names (the empty key holds the
``BundleHeaderProto``); values are ``BundleEntryProto`` protobuf messages: ``dtype`` (field 1), ``shape`` (2, a
``TensorShapeProto`` whose repeated field 2 holds ``Dim {int64 size = 1}``), ``shard_id`` (3), ``offset`` (4),
``size`` (5), ``crc32c`` (6, fixed32). The tensor's bytes are ``data[offset : offset + size]`` in the shard file,
little-endian, C order. Only uncompressed blocks and single-shard bundles are supported (what ``tf.train.Saver``
writes), and nothing but numbers is read: no pickle, no code.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from brainlike.errors import DataError

MAGIC = 0xDB4775248B80FB57
FOOTER = 48
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 19: np.float16, 17: np.uint16, 22: np.uint32, 23: np.uint64}
"""TensorFlow ``DataType`` enum values -> numpy dtypes (strings and resources are not supported)."""


class CheckpointError(DataError):
    """A TensorBundle checkpoint cannot be parsed (bad magic, compressed block, unsupported dtype, out of range)."""


def varint(buffer: bytes, pos: int) -> tuple[int, int]:
    """Decode a protobuf/LevelDB base-128 varint at ``pos``; return (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buffer) or shift > 63:
            raise CheckpointError("truncated or overlong varint")
        byte = buffer[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def protobuf_fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """``[(field number, value)]`` of a protobuf message: ints for varint/fixed fields, bytes for length-delimited."""
    fields, pos = [], 0
    while pos < len(message):
        key, pos = varint(message, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(message, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", message, pos)[0], pos + 8
        elif wire == 2:
            length, pos = varint(message, pos)
            value, pos = message[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", message, pos)[0], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _block(index: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` entries of the SSTable block that ``handle`` (encoded BlockHandle) points to."""
    offset, pos = varint(handle, 0)
    size, _ = varint(handle, pos)
    if offset + size + 5 > len(index):
        raise CheckpointError("SSTable block handle points past the end of the index file")
    if index[offset + size] != 0:
        raise CheckpointError("compressed SSTable blocks are not supported")
    block = index[offset : offset + size]
    n_restarts = struct.unpack_from("<I", block, size - 4)[0]
    end = size - 4 - 4 * n_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = varint(block, pos)
        unshared, pos = varint(block, pos)
        length, pos = varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def read_index(index_path: str | Path) -> dict[str, dict]:
    """``{tensor name: {"dtype", "shape", "shard", "offset", "size"}}`` from a TensorBundle ``.index`` file."""
    index = Path(index_path).read_bytes()
    if len(index) < FOOTER or struct.unpack_from("<Q", index, len(index) - 8)[0] != MAGIC:
        raise CheckpointError(f"{index_path}: not an SSTable (bad magic number)")
    footer = index[-FOOTER:]
    _, pos = varint(footer, 0)  # metaindex offset
    _, pos = varint(footer, pos)  # metaindex size
    index_handle = footer[pos:]
    entries = {}
    for _, handle in _block(index, index_handle):
        for key, value in _block(index, handle):
            if key == b"":  # BundleHeaderProto
                continue
            info = {"dtype": 1, "shape": [], "shard": 0, "offset": 0, "size": 0}
            for number, field in protobuf_fields(value):
                if number == 1:
                    info["dtype"] = field
                elif number == 2:
                    info["shape"] = [dict(protobuf_fields(dim)).get(1, 0)
                                     for n, dim in protobuf_fields(field) if n == 2]
                elif number in (3, 4, 5):
                    info[{3: "shard", 4: "offset", 5: "size"}[number]] = field
                elif number == 7:
                    raise CheckpointError(f"{key.decode()}: sliced tensors are not supported")
            entries[key.decode()] = info
    return entries


def read_tensorbundle(index_path: str | Path, data_path: str | Path,
                      names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Tensors of a single-shard TensorBundle checkpoint as numpy arrays (all, or only ``names``).

    Raises
    ------
    CheckpointError
        Bad index, a tensor in another shard, an unsupported dtype or a byte range outside the data file.
    """
    entries = read_index(index_path)
    wanted = list(entries) if names is None else names
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise CheckpointError(f"{index_path}: no tensor named {missing[0]!r}")
    data = np.memmap(data_path, dtype=np.uint8, mode="r")
    tensors = {}
    for name in wanted:
        info = entries[name]
        if info["shard"] != 0:
            raise CheckpointError(f"{name}: tensors in other shards are not supported")
        if info["dtype"] not in DTYPES:
            raise CheckpointError(f"{name}: unsupported TensorFlow dtype {info['dtype']}")
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        count = int(np.prod(info["shape"], dtype=np.int64))
        if count * dtype.itemsize != info["size"] or info["offset"] + info["size"] > len(data):
            raise CheckpointError(f"{name}: byte range does not fit shape {info['shape']} or the data file")
        raw = np.frombuffer(data[info["offset"] : info["offset"] + info["size"]].tobytes(), dtype=dtype)
        tensors[name] = raw.reshape(info["shape"]).astype(dtype.newbyteorder("="))
    return tensors
