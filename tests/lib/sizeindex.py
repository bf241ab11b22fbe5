"""Reads a commit's size index file, abdeploy/sizes/COMMIT.sizes
(abdeploy-manifest(5)): a GVariant of type a(ayytt) in normal form,
compressed with gzip, read here with the standard library only (an
independent check of the C writer and parser)."""

import gzip
import os
import struct


def _width(size):
    """Bytes of a framing offset in a GVariant container of SIZE bytes."""
    return 1 if size <= 0xff else 2 if size <= 0xffff else 4 if size <= 0xffffffff else 8


def _uint(data, at, width):
    return int.from_bytes(data[at:at + width], "little")


def _align8(n):
    return (n + 7) & ~7


def parse(file_data):
    """[(checksum hex, object type, archived, unpacked)] of the file's bytes."""
    data = gzip.decompress(file_data)
    if not data:
        return []
    w = _width(len(data))
    first_offset = _uint(data, len(data) - w, w)
    ends = [_uint(data, first_offset + i * w, w)
            for i in range((len(data) - first_offset) // w)]
    out, start = [], 0
    for end in ends:
        el = data[start:end]
        ew = _width(len(el))
        csum_end = _uint(el, len(el) - ew, ew)
        archived, unpacked = struct.unpack_from("<QQ", el, _align8(csum_end + 1))
        out.append((el[:csum_end].hex(), el[csum_end], archived, unpacked))
        start = _align8(end)
    return out


def path(commit):
    return "abdeploy/sizes/%s.sizes" % commit


def read(repo, commit):
    with open(os.path.join(repo, path(commit)), "rb") as f:
        return parse(f.read())


def understate(file_data, size=1):
    """The file FILE_DATA with every archived and unpacked size set to SIZE:
    still a valid index in normal form (the sizes are fixed-width fields),
    compressed again."""
    data = gzip.decompress(file_data)
    out = bytearray(data)
    w = _width(len(data))
    first_offset = _uint(data, len(data) - w, w)
    start = 0
    for i in range((len(data) - first_offset) // w):
        end = _uint(data, first_offset + i * w, w)
        el = data[start:end]
        ew = _width(len(el))
        at = start + _align8(_uint(el, len(el) - ew, ew) + 1)
        struct.pack_into("<QQ", out, at, size, size)
        start = _align8(end)
    return gzip.compress(bytes(out))
