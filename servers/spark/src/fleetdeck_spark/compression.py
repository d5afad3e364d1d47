"""Decompress Spark event-log streams as they are read: zstd, lz4 (lz4-java block stream), snappy.

Spark writes zstd as standard frames, lz4 with ``LZ4BlockOutputStream`` (``LZ4Block`` headers,
not the lz4 frame format) and snappy with xerial's ``SnappyOutputStream`` (a magic header, then
length-prefixed raw snappy blocks). Each reader yields the plain bytes in bounded chunks.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

import cramjam
import lz4.block
import zstandard

from fleetdeck.errors import InvalidInputError

CODECS = ("zstd", "lz4", "snappy")
LZ4_MAGIC = b"LZ4Block"
LZ4_HEADER = struct.Struct("<BiiI")
SNAPPY_MAGIC = b"\x82SNAPPY\x00"
BUFFER = 1 << 20


class ChunkStream(io.RawIOBase):
    """A readable raw stream over an iterator of byte chunks (so ``BufferedReader`` can split lines)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _read_exact(raw: BinaryIO, size: int) -> bytes:
    data = raw.read(size)
    if len(data) != size:
        raise EOFError(f"truncated block: wanted {size} bytes, got {len(data)}")
    return data


def lz4_chunks(raw: BinaryIO) -> Iterator[bytes]:
    """Blocks of an lz4-java ``LZ4BlockOutputStream``; a truncated last block ends the stream."""
    while True:
        magic = raw.read(len(LZ4_MAGIC))
        if not magic:
            return
        if magic != LZ4_MAGIC:
            raise InvalidInputError("not an lz4 block stream (bad magic)")
        try:
            token, compressed, original, _checksum = LZ4_HEADER.unpack(_read_exact(raw, LZ4_HEADER.size))
            data = _read_exact(raw, compressed)
        except EOFError:
            return
        if original == 0:
            continue
        if token & 0xF0 == 0x10:
            yield data
        else:
            yield lz4.block.decompress(data, uncompressed_size=original)


def snappy_chunks(raw: BinaryIO) -> Iterator[bytes]:
    """Blocks of a xerial ``SnappyOutputStream``; a truncated last block ends the stream."""
    while True:
        head = raw.read(4)
        if len(head) < 4:
            return
        if head == SNAPPY_MAGIC[:4]:
            raw.read(len(SNAPPY_MAGIC) - 4 + 8)  # rest of the magic, version, compatible version
            continue
        (size,) = struct.unpack(">i", head)
        try:
            block = _read_exact(raw, size)
        except EOFError:
            return
        yield bytes(cramjam.snappy.decompress_raw(block))


def zstd_chunks(raw: BinaryIO) -> Iterator[bytes]:
    """Plain bytes of a zstd stream (several frames allowed); an unfinished frame yields what it holds."""
    context = zstandard.ZstdDecompressor()
    decoder = context.decompressobj()
    while data := raw.read(BUFFER):
        while data:
            try:
                chunk = decoder.decompress(data)
            except zstandard.ZstdError:
                return
            if chunk:
                yield chunk
            data = b""
            if decoder.eof:  # the next frame starts in what this one left over
                data, decoder = decoder.unused_data, context.decompressobj()


def open_stream(raw: BinaryIO, codec: str | None) -> BinaryIO:
    """A buffered, line-iterable stream of the plain event-log bytes of ``raw``."""
    if codec is None:
        return raw
    if codec == "zstd":
        chunks = zstd_chunks(raw)
    elif codec == "lz4":
        chunks = lz4_chunks(raw)
    elif codec == "snappy":
        chunks = snappy_chunks(raw)
    else:
        raise InvalidInputError(f"event-log codec {codec!r} is not supported; supported: {', '.join(CODECS)}")
    return io.BufferedReader(ChunkStream(chunks), BUFFER)
