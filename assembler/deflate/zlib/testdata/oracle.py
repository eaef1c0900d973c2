# oracle.py: the reference encoder for the tests, zlib through Python.
# Reads requests on stdin: level (1 byte), chunk size (4 bytes LE, 0 = all
# at once), length (4 bytes LE), data; answers length (4 bytes LE) and the
# raw deflate stream (wbits -15, memLevel 8, default strategy).
# First line written: the zlib runtime version, then a newline.
import sys, zlib, struct
out = sys.stdout.buffer
inp = sys.stdin.buffer
out.write((zlib.ZLIB_RUNTIME_VERSION + "\n").encode())
out.flush()
while True:
    h = inp.read(9)
    if len(h) < 9:
        break
    level = h[0]
    chunk, n = struct.unpack("<II", h[1:])
    data = inp.read(n)
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    if chunk == 0:
        res = c.compress(data) + c.flush()
    else:
        parts = [c.compress(data[i:i + chunk]) for i in range(0, len(data), chunk)]
        parts.append(c.flush())
        res = b"".join(parts)
    out.write(struct.pack("<I", len(res)))
    out.write(res)
    out.flush()
