# Build a $LogFile image: two RSTR restart pages (one active log client;
# restart-area flags from argv[3]: 0 = unclean, 2 = clean) then 0xFF.
# usage: mkrstr.py SIZE OUT FLAGS
import struct, sys
def page(size_log):
    p=bytearray(4096)
    p[0:4]=b"RSTR"
    struct.pack_into("<HHQIIHhh",p,4,0x1e,9,0,4096,4096,0x30,1,1)
    ra=0x30
    # current_lsn, log_clients, free, in_use, flags, seq_bits, ra_len, ca_ofs, file_size, last_lsn_len, hdr_len, data_ofs, open_count
    struct.pack_into("<QHHHHIHHQIHHI",p,ra,0x10000,1,0xffff,0,int(sys.argv[3]),45,0x40+0xa0,0x40,size_log,0x30,0x30,0x40,1)
    c=ra+0x40
    struct.pack_into("<QQHHH",p,c,0x10000,0x10000,0xffff,0xffff,1)
    struct.pack_into("<I",p,c+0x20,8)
    p[c+0x24:c+0x2c]="NTFS".encode("utf-16le")
    usn=1
    struct.pack_into("<H",p,0x1e,usn)
    for i in range(8):
        e=(i+1)*512-2
        p[0x20+2*i:0x22+2*i]=p[e:e+2]
        struct.pack_into("<H",p,e,usn)
    return bytes(p)
n=int(sys.argv[1])
pg=page(n)
open(sys.argv[2],"wb").write(pg+pg+b"\xff"*(n-8192))
