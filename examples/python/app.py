"""A Python app with the standard library only: no requirements.txt, nothing to install."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "text/plain", b"ok\n")
        elif self.path == "/":
            self.reply(200, "text/plain; charset=utf-8", b"Hello from Kiln!\n")
        elif self.path == "/info":
            info = {"python": sys.version.split()[0], "pid": os.getpid()}
            self.reply(200, "application/json", (json.dumps(info) + "\n").encode())
        else:
            self.reply(404, "text/plain", b"not found\n")

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        # One line per request on stdout, which Kiln keeps as the app's log.
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("", port), Handler)
    # Kiln stops an instance with SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("python app listening on port %d" % port, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
