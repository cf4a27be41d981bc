"""The naive torch service that benchmarks/serve_load.py races `netwright serve` against: what a
user writes by hand today. The standard library's threading HTTP server (a thread per
connection, like Flask's development server), the model rebuilt once, and one model call per
request: JSON in, a tensor, forward under no_grad, softmax, JSON out.

    python benchmarks/naive_service.py RUN_DIR PORT
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

import netwright as nw


def main() -> None:
    run_dir, port = sys.argv[1], int(sys.argv[2])
    model = nw.open_run(run_dir).model.eval()  # the same model, with its standardisation inside
    shape = tuple(nw.open_run(run_dir).meta["model"]["input_shape"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect

        def log_message(self, *args: object) -> None:  # no per-request log, like the others
            pass

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, {"status": "ok"})

        def do_POST(self) -> None:
            try:
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                x = torch.tensor(data["rows"], dtype=torch.float32).reshape(-1, *shape)
                with torch.no_grad():
                    probs = torch.softmax(model(x), dim=1)
                self._send(200, {"labels": [str(i) for i in probs.argmax(1).tolist()],
                                 "probabilities": probs.tolist()})
            except Exception as exc:  # noqa: BLE001 - the naive service answers 500
                self._send(500, {"detail": str(exc)})

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
