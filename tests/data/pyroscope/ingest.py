#!/usr/bin/env python3
"""Pyroscope's ingest endpoint as tests/interval_export.rs needs it: POST /ingest?name=...&
from=...&until=...&format=pprof with a pprof body, as Grafana Pyroscope and Alloy take it (a
real Pyroscope is built from Go modules, which this machine cannot reach). Each request's body
is saved as DIR/N.pb.gz, for the test to read with go tool pprof, and its query as DIR/N.json.
Usage: ingest.py DIR. Prints the port it listens on (127.0.0.1), then serves until killed."""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

DIR = sys.argv[1]
count = {"n": 0}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        url = urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if url.path != "/ingest":
            self.send_response(404)
            self.end_headers()
            return
        count["n"] += 1
        n = count["n"]
        with open(os.path.join(DIR, f"{n:03}.pb.gz"), "wb") as out:
            out.write(body)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        query["content_type"] = self.headers.get("Content-Type")
        with open(os.path.join(DIR, f"{n:03}.json"), "w") as out:
            json.dump(query, out)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
