#!/usr/bin/env python3
"""An OTLP profiles receiver for tests/interval_export.rs: decodes each request with the
OpenTelemetry project's own Python messages (opentelemetry-proto from PyPI, the same proto
release as the Rust crate rbt encodes with) and appends what it holds, as one JSON line, to
OUT. Usage: receiver.py OUT [FAIL_FIRST]: answers 503 to the first FAIL_FIRST requests (to try
rbt's retries). Prints the port it listens on (127.0.0.1), then serves until killed."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as service

OUT = sys.argv[1]
FAIL_FIRST = int(sys.argv[2]) if len(sys.argv) > 2 else 0
seen = {"requests": 0}


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def summary(request):
    d = request.dictionary
    s = d.string_table

    def frame_names(location_index):
        loc = d.location_table[location_index]
        return [s[d.function_table[line.function_index].name_strindex] for line in loc.lines]

    resources = []
    for rp in request.resource_profiles:
        attrs = {kv.key: any_value(kv.value) for kv in rp.resource.attributes}
        profiles = []
        for sp in rp.scope_profiles:
            for p in sp.profiles:
                stacks = []
                for sample in p.samples:
                    names = []
                    for li in d.stack_table[sample.stack_index].location_indices:
                        names.extend(frame_names(li))
                    sample_attrs = {
                        s[d.attribute_table[i].key_strindex]: any_value(d.attribute_table[i].value)
                        for i in sample.attribute_indices
                    }
                    stacks.append({"frames": names, "value": sum(sample.values), "attributes": sample_attrs})
                profiles.append({
                    "scope": sp.scope.name,
                    "type": s[p.sample_type.type_strindex],
                    "unit": s[p.sample_type.unit_strindex],
                    "time_unix_nano": p.time_unix_nano,
                    "duration_nano": p.duration_nano,
                    "total": sum(st["value"] for st in stacks),
                    "stacks": stacks,
                })
        resources.append({"attributes": attrs, "profiles": profiles})
    build_ids = sorted(
        any_value(d.attribute_table[i].value)
        for m in d.mapping_table
        for i in m.attribute_indices
        if s[d.attribute_table[i].key_strindex] == "process.executable.build_id.gnu"
    )
    return {"resources": resources, "build_ids": build_ids}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen["requests"] += 1
        if seen["requests"] <= FAIL_FIRST:
            self.send_response(503)
            self.end_headers()
            return
        request = service.ExportProfilesServiceRequest()
        request.ParseFromString(body)
        line = summary(request)
        line["path"] = self.path
        line["content_type"] = self.headers.get("Content-Type")
        line["authorization"] = self.headers.get("Authorization")
        with open(OUT, "a") as out:
            out.write(json.dumps(line) + "\n")
        reply = service.ExportProfilesServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
