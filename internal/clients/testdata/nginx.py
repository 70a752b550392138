"""nginx's memcached module (nginx-light: memcached_pass), with upstream
keepalive so that one memcached connection carries many requests.

Usage: nginx.py NGINX HOST:PORT. Starts nginx in the foreground (no master
process) on a unix socket in a temporary directory, stores items with raw
memcached commands, fetches them through nginx, and stops nginx by its PID."""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time

from checklib import check, run

nginx_bin, addr = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)

CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log stderr error;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream mc {{
        server {addr};
        keepalive 4;
    }}
    server {{
        listen unix:{d}/http.sock;
        location / {{
            set $memcached_key "$uri";
            memcached_pass mc;
            memcached_gzip_flag 2;
            default_type text/plain;
        }}
        location /once/ {{
            set $memcached_key "$uri";
            memcached_pass {addr};
        }}
    }}
}}
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def memcached(cmds):
    """Sends raw commands on a fresh connection; returns the reply bytes up
    to the last line the commands are known to end with."""
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(cmds + b"quit\r\n")
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b


def store(key, value, flags=0, exptime=0):
    return memcached(b"set %s %d %d %d\r\n%s\r\n" % (key, flags, exptime, len(value), value))


def main(d):
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(CONF.format(d=d, addr=addr))
    sock = os.path.join(d, "http.sock")
    proc = subprocess.Popen([nginx_bin, "-p", d, "-c", os.path.join(d, "nginx.conf")],
                            stdout=sys.stderr, stderr=sys.stderr)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock):
            if proc.poll() is not None or time.time() > deadline:
                print("FAIL nginx_start: nginx exited or did not listen", flush=True)
                return
            time.sleep(0.05)
        conn = UnixHTTPConnection(sock)

        def get(path):
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Encoding"), r.read()

        def basic():
            check("store", store(b"/hello", b"hello world"), b"STORED\r\n")
            check("hit", get("/hello"), (200, None, b"hello world"))
            check("miss", get("/nothing")[0], 404)
            store(b"/gz", b"\x1f\x8b fake", flags=2)
            check("gzip_flag", get("/gz"), (200, "gzip", b"\x1f\x8b fake"))
            big = bytes(range(256)) * 2048  # 512 KB
            store(b"/big", big)
            check("large_value", get("/big"), (200, None, big))
            # nginx escapes the key: a space goes to memcached as %20.
            store(b"/a%20b", b"escaped")
            check("escaped_key", get("/a%20b"), (200, None, b"escaped"))
            store(b"/once/x", b"no keepalive")
            check("no_keepalive", get("/once/x"), (200, None, b"no keepalive"))

        def expiry():
            check("store_ttl_-1", store(b"/neg", b"v", exptime=-1), b"STORED\r\n")
            check("expired_ttl_-1", get("/neg")[0], 404)
            check("store_ttl_4294967295", store(b"/exp", b"v", exptime=4294967295), b"STORED\r\n")
            check("expired_ttl_4294967295", get("/exp")[0], 404)

        def many():
            # Hits and misses over the kept-alive upstream connections.
            got = [get("/hello" if i % 2 == 0 else "/miss%d" % i)[0] for i in range(100)]
            check("keepalive_hits_and_misses", got, [200 if i % 2 == 0 else 404 for i in range(100)])

        for name, fn in [("basic", basic), ("expiry", expiry), ("many", many)]:
            run(name, fn)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)


with tempfile.TemporaryDirectory(prefix="nginx") as d:
    main(d)
