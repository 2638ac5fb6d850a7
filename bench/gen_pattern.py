#!/usr/bin/env python3
"""Writes a filesystem-like benchmark pattern to stdout-named file.

Layout of the raw file (its size is DATA + ZEROS; the image made from it is
larger, and the rest stays unallocated):
  [0, DATA)         text and structured binary that zlib shrinks 2-3x,
                    with every 10th MiB incompressible (random)
  [DATA, +ZEROS)    written zeros
"""
import os
import random
import struct
import sys

MiB = 1 << 20
path, data_mib, zero_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
words = [
    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
    for _ in range(4000)
]


def text_block():
    out = bytearray()
    while len(out) < MiB:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14)))
        line += " %d" % rng.randint(0, 99999)
        out += (line + "\r\n").encode()
    return bytes(out[:MiB])


def binary_block():
    out = bytearray()
    base = rng.randint(0, 1 << 30)
    i = 0
    while len(out) < MiB:
        # An MFT-/registry-like record: counters, small ints, a name, padding.
        name = rng.choice(words).encode().ljust(16, b"\0")
        out += struct.pack("<IIQHH", 0x454C4946, i, base + i * 4096,
                           rng.randint(0, 7), rng.randint(0, 300)) + name
        out += rng.randbytes(6) + bytes(rng.randint(0, 3) for _ in range(18)) + b"\0" * 16
        i += 1
    return bytes(out[:MiB])


blocks = [text_block() if k % 2 == 0 else binary_block() for k in range(24)]
with open(path, "wb") as f:
    for m in range(data_mib):
        if m % 10 == 9:
            f.write(os.urandom(MiB))
        else:
            b = bytearray(blocks[rng.randrange(len(blocks))])
            b[0:8] = struct.pack("<Q", m)  # every block differs
            f.write(b)
    zero = b"\0" * MiB
    for _ in range(zero_mib):
        f.write(zero)
