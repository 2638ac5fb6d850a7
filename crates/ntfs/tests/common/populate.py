# Populate a mounted ntfs-3g volume with a tree that exercises the reader.
# argv[1] = mount point. Prints nothing; the Rust test knows the contents
# through the same deterministic generator (seeded by file name).
import os, sys, random, struct
m = sys.argv[1]

def data(name, n):
    r = random.Random(name)
    return bytes(r.getrandbits(8) for _ in range(n))

os.makedirs(f"{m}/Windows/System32/drivers")
os.makedirs(f"{m}/Windows/System32/config")
os.makedirs(f"{m}/empty")
for i in range(40):
    with open(f"{m}/Windows/System32/drivers/drv{i:03}.sys", "wb") as f:
        f.write(data(f"drv{i}", 100 + 37 * i))
# tiny resident files and names needing upcase rules
for n in ["a.txt", "Ärger.txt", "ÉCOLE", "σίσυφος", "日本語.txt", "MiXeD.CaSe", "x"]:
    with open(f"{m}/{n}", "wb") as f:
        f.write(data(n, len(n) * 3))
# large fragmented files: interleave appends
with open(f"{m}/frag1.bin", "wb") as a, open(f"{m}/frag2.bin", "wb") as b:
    for i in range(60):
        a.write(data(f"f1-{i}", 12000)); a.flush(); os.fsync(a.fileno())
        b.write(data(f"f2-{i}", 9000)); b.flush(); os.fsync(b.fileno())
os.unlink(f"{m}/frag2.bin")
with open(f"{m}/Windows/System32/config/SYSTEM", "wb") as f:
    f.write(data("SYSTEM", 3 * 1024 * 1024 + 123))
# sparse file
with open(f"{m}/sparse.bin", "wb") as f:
    f.write(b"head")
    f.seek(5 * 1024 * 1024)
    f.write(b"tail" * 1000)
# compressed directory (FILE_ATTRIBUTE_COMPRESSED = 0x800, big endian)
os.makedirs(f"{m}/comp")
os.setxattr(f"{m}/comp", "system.ntfs_attrib_be", (0x800 | 0x10).to_bytes(4, "big"))
with open(f"{m}/comp/text.txt", "wb") as f:
    f.write((b"compressible text line %d\n" * 1) * 0 + b"".join(b"line %06d of a compressible file\n" % i for i in range(20000)))
with open(f"{m}/comp/random.bin", "wb") as f:
    f.write(data("comp-random", 200000))
with open(f"{m}/comp/mixed.bin", "wb") as f:
    f.write(data("mixed", 70000) + bytes(150000) + b"abc" * 30000)
# a big directory (several index levels)
os.makedirs(f"{m}/big")
for i in range(2500):
    with open(f"{m}/big/file_with_a_longish_name_{i:05}.txt", "wb") as f:
        f.write(data(f"big{i}", i % 50))
# DOS name, hard link, symlink, named stream
with open(f"{m}/Long File Name.document", "wb") as f:
    f.write(b"dos name test")
os.setxattr(f"{m}/Long File Name.document", "system.ntfs_dos_name", b"LONGFI~1.DOC")
os.link(f"{m}/a.txt", f"{m}/Windows/hardlink.txt")
open(f"{m}/link-to-a", "wb").close()
sub = "a.txt".encode("utf-16le")
body = struct.pack("<HHHHI", 0, len(sub), len(sub), len(sub), 1) + sub + sub
os.setxattr(f"{m}/link-to-a", "system.ntfs_reparse_data",
            struct.pack("<IHH", 0xA000000C, len(body), 0) + body)
with open(f"{m}/streams.txt", "wb") as f:
    f.write(b"main stream")
os.setxattr(f"{m}/streams.txt", "user.Zone.Identifier", b"[ZoneTransfer]\r\nZoneId=3\r\n")
