"""A small HTTP server for the outbound tests (it::outbound): started on a free port of 127.0.0.1
by the test, it answers

  GET  /ok                  200 {"ok": true}
  GET  /redirect?to=URL     302 to URL
  GET  /slow?ms=N           200 after N milliseconds
  GET  /big?bytes=N         200 with N bytes
  POST /echo                200 with the body it got; it counts POSTs
  GET  /posts               200 with the number of POSTs it got

and prints "ready" when it listens.
"""

import http.server
import json
import sys
import time
import urllib.parse

POSTS = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/ok":
            self.answer(200, json.dumps({"ok": True, "from": self.headers.get("x-from")}).encode())
        elif url.path == "/redirect":
            self.answer(302, b"", [("Location", query["to"])])
        elif url.path == "/slow":
            time.sleep(int(query["ms"]) / 1000)
            self.answer(200, b"slept")
        elif url.path == "/big":
            self.answer(200, b"x" * int(query["bytes"]))
        elif url.path == "/posts":
            self.answer(200, str(POSTS).encode())
        else:
            self.answer(404, b"no such page")

    def do_POST(self):
        global POSTS
        POSTS += 1
        length = int(self.headers.get("Content-Length", "0"))
        self.answer(200, self.rfile.read(length))

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
