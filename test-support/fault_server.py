#!/usr/bin/env python3
"""A small HTTP server that misbehaves on purpose, for the remote-reading tests.

Serves the files of --root. The first path segment chooses the fault; the rest is the file:
  /ok/F       ranges served, but no Accept-Ranges header and HEAD refused (405)
  /drop/F     the first answer to each range sends half its body, then closes the connection
  /short/F    the first answer to each range claims the whole length, sends less, and closes
  /503/F      the first request for each range is answered 503
  /429/F      the first request for each range is answered 429 with Retry-After: 0
  /stall/F    the first answer to each range sends half its body, then stalls for 20 s
  /norange/F  Range ignored: 200 with the whole file, no Accept-Ranges
  /416/F      every ranged request is answered 416
  /401/F      every request is answered 401
Prints the port it listens on, then serves until killed. Counts body bytes sent per fault in
/stats (JSON).
"""
import argparse
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = set()
lock = threading.Lock()
sent = {}


def first_time(key):
    with lock:
        if key in seen:
            return False
        seen.add(key)
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_body(self, fault, data):
        self.wfile.write(data)
        with lock:
            sent[fault] = sent.get(fault, 0) + len(data)

    def do_GET(self):
        if self.path == "/stats":
            body = json.dumps(sent).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        parts = self.path.split("?")[0].lstrip("/").split("/", 1)
        if len(parts) != 2:
            return self.error(404)
        fault, name = parts
        path = os.path.join(self.server.root, name)
        if ".." in name.split("/") or not os.path.isfile(path):
            return self.error(404)
        if fault == "401":
            return self.error(401)
        size = os.path.getsize(path)
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if fault == "norange" or not m:
            with open(path, "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            return self.send_body(fault, data)
        if fault == "416":
            return self.error(416)
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        # A range is failed once: a retry for what is left of it (same end) is served.
        key = (fault, name, end)
        if fault in ("503", "429") and first_time(key):
            self.send_response(int(fault))
            if fault == "429":
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end + 1 - start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"%x-%x"' % (size, int(os.path.getmtime(path))))
        self.end_headers()
        if fault in ("drop", "short", "stall") and len(data) > 1 and first_time(key):
            self.send_body(fault, data[: len(data) // 2])
            self.wfile.flush()
            if fault == "stall":
                time.sleep(20)
            self.close_connection = True
            return
        self.send_body(fault, data)

    def error(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A client that closes early (a read in one pass stopped by an error) is no failure here.
    server.handle_error = lambda request, address: None
    server.root = args.root
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
