import concurrent.futures, hashlib, http.client, json, os, socket, sys, time, random

host, port = sys.argv[1], int(sys.argv[2])
D = "sha256:" + "a" * 64

def req(method, path, body=b"", headers=None, timeout=60):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        r.read()
        return r.status
    except Exception as e:
        return str(e)
    finally:
        c.close()

def raw(line):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(line.encode())
    try:
        s.recv(65536)
    except Exception:
        pass
    s.close()

cases = []
# 1. traversal-looking URLs
for p in ["/v2/../../../../etc/passwd", f"/v2/a/blobs/{D}/../../x", "/v2/a/manifests/..%2f..%2fetc%2fpasswd",
          "/v2/a/manifests/a%2Fb", "/v2/a/blobs/uploads/..%2f..%2fetc%2fpasswd"]:
    for m in ["GET", "PUT", "PATCH", "DELETE"]:
        cases.append(lambda p=p, m=m: raw(f"{m} {p} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
# 2. oversized and malformed manifests, 64 at once
big = b"{" + b" " * (4 << 20) + b"}"
junk = b'{"schemaVersion":2,"layers":[' + b'{"digest":"x"},' * 200000 + b'{}]}'
for i in range(32):
    cases.append(lambda: req("PUT", "/v2/h/m/manifests/t", big, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
    cases.append(lambda: req("PUT", "/v2/h/m/manifests/t", junk[: (4 << 20) - 10], {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
# 3. abandoned chunked uploads, 100
def abandon():
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("POST", "/v2/h/u/blobs/uploads/")
    r = c.getresponse(); r.read()
    loc = r.getheader("Location")
    c.request("PATCH", loc, body=os.urandom(1 << 20), headers={"Content-Type": "application/octet-stream"})
    r = c.getresponse(); r.read()
    c.close()
for i in range(100):
    cases.append(abandon)
# 4. lying Content-Range and Content-Length
for i in range(20):
    cases.append(lambda: raw("PATCH /v2/h/u/blobs/uploads/" + "0" * 32 + " HTTP/1.1\r\nHost: x\r\nContent-Range: 0-999999999999\r\nContent-Length: 10\r\n\r\n0123456789"))
# 5. listings with huge n, catalog
for i in range(20):
    cases.append(lambda: req("GET", "/v2/_catalog?n=100000000"))
    cases.append(lambda: req("GET", "/v2/h/u/tags/list?n=100000000"))
with concurrent.futures.ThreadPoolExecutor(64) as ex:
    list(ex.map(lambda f: f(), cases))
print("hostile: %d requests" % len(cases))
