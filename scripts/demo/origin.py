#!/usr/bin/env python3
"""The demo's sample origin app, behind gatehouse-connector: answers every GET with a small page
greeting the user named in the `Gatehouse-Assertion` header the edge attaches to allowed requests.

It only decodes the assertion (a JWT) to show whom it names; it does not verify it. A real origin
verifies it against identity's JWKS (docs/origin-assertions.md, crate gatehouse-verify).

Usage: origin.py NAME PORT   (listens on 127.0.0.1; prints "ready" once it does)
"""
import base64, html, http.server, json, sys

name, port = sys.argv[1], int(sys.argv[2])


def claims(jwt):
    try:
        payload = jwt.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        seen = claims(self.headers.get("Gatehouse-Assertion", ""))
        who = seen.get("email") or "stranger (no Gatehouse-Assertion header)"
        via = "a browser session" if not seen.get("device_id") else f"device {seen['device_id']}"
        text = f"hello {who} from {name} (via {via}; assertion decoded, not verified)"
        if "text/html" in self.headers.get("Accept", ""):
            body = f"<!doctype html><title>{name}</title><h1>{html.escape(text)}</h1>\n"
            kind = "text/html; charset=utf-8"
        else:
            body, kind = text + "\n", "text/plain; charset=utf-8"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), App)
print("ready", flush=True)
server.serve_forever()
