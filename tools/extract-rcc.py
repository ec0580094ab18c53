#!/usr/bin/env python3
# extract-rcc.py — data-preparation script: lists or unpacks the files inside a Qt binary resource
# bundle (.rcc). Used only by tools/fetch-training-data.sh; never by the build, the tests or the product.
#
# Usage: extract-rcc.py BUNDLE.rcc              list "size<TAB>path" of every file
#        extract-rcc.py BUNDLE.rcc DIR [GLOB..]  write the files (matching any GLOB, if given) under DIR
#
# Format (Qt 5/6 rcc, versions 1-3, all integers big-endian): "qres", version, tree offset, data offset,
# names offset, and from version 3 a flags word. The tree is an array of nodes (14 bytes, 22 from
# version 2 with a last-modified stamp): name offset u32, flags u16, then for a directory the child
# count u32 and first child index u32, for a file locale u32 and data offset u32. A name is u16 length
# in UTF-16 units, u32 hash, UTF-16BE text. A data entry is a u32 size then the bytes; flag 1 means
# zlib via qCompress (u32 uncompressed size then a zlib stream), flag 4 zstd (not supported here:
# Python's standard library has no zstd), flag 2 a directory.
import fnmatch
import os
import struct
import sys
import zlib

FLAG_COMPRESSED = 1
FLAG_DIRECTORY = 2
FLAG_ZSTD = 4


def fail(msg):
    sys.stderr.write("extract-rcc: %s\n" % msg)
    sys.exit(1)


def u16(buf, off):
    return struct.unpack_from(">H", buf, off)[0]


def u32(buf, off):
    return struct.unpack_from(">I", buf, off)[0]


def read_bundle(path):
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 20 or buf[:4] != b"qres":
        fail("%s: not a Qt resource bundle (no 'qres' magic)" % path)
    version = u32(buf, 4)
    if version < 1 or version > 3:
        fail("%s: unsupported rcc version %d" % (path, version))
    tree, data, names = u32(buf, 8), u32(buf, 12), u32(buf, 16)
    if max(tree, data, names) >= len(buf):
        fail("%s: offsets (tree %d, data %d, names %d) past the end (%d bytes)"
             % (path, tree, data, names, len(buf)))
    node_size = 14 if version == 1 else 22
    return buf, tree, data, names, node_size


def node_name(buf, names, name_off):
    n = u16(buf, names + name_off)
    start = names + name_off + 6
    return buf[start:start + 2 * n].decode("utf-16-be")


def walk(path):
    """Yields (resource path, flags, data offset) for every file in the bundle."""
    buf, tree, data, names, node_size = read_bundle(path)
    count_limit = (len(buf) - tree) // node_size
    stack = [(0, "")]
    seen = 0
    while stack:
        index, prefix = stack.pop()
        seen += 1
        if index >= count_limit or seen > count_limit:
            fail("%s: tree node %d out of range (%d nodes fit)" % (path, index, count_limit))
        node = tree + index * node_size
        name_off, flags = u32(buf, node), u16(buf, node + 4)
        name = "" if index == 0 else node_name(buf, names, name_off)
        full = prefix + "/" + name if prefix else name
        if flags & FLAG_DIRECTORY:
            count, first = u32(buf, node + 6), u32(buf, node + 10)
            for child in range(first + count - 1, first - 1, -1):
                stack.append((child, full))
        else:
            yield full, flags, data + u32(buf, node + 10), buf


def payload(path, name, flags, off, buf):
    size = u32(buf, off)
    raw = buf[off + 4:off + 4 + size]
    if len(raw) != size:
        fail("%s: %s: entry of %d bytes runs past the end" % (path, name, size))
    if flags & FLAG_ZSTD:
        fail("%s: %s: zstd-compressed entry, not supported" % (path, name))
    if flags & FLAG_COMPRESSED:
        want = u32(raw, 0)
        out = zlib.decompress(raw[4:])
        if len(out) != want:
            fail("%s: %s: inflated to %d bytes, header says %d" % (path, name, len(out), want))
        return out
    return raw


def main(argv):
    if len(argv) < 2:
        fail("usage: extract-rcc.py BUNDLE.rcc [DIR [GLOB...]]")
    path = argv[1]
    dest = argv[2] if len(argv) > 2 else None
    globs = argv[3:]
    for name, flags, off, buf in walk(path):
        if globs and not any(fnmatch.fnmatch(name, g) for g in globs):
            continue
        if dest is None:
            sys.stdout.write("%d\t%s\n" % (len(payload(path, name, flags, off, buf)), name))
            continue
        parts = [p for p in name.split("/") if p not in ("", ".", "..")]
        out = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(payload(path, name, flags, off, buf))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
