"""A huggingface_hub cache on disk and a fake Hub on 127.0.0.1, for pretrained-weights tests.

Nothing here touches the internet: the cache is written in huggingface_hub's
layout (``models--timm--<arch>.<tag>/{blobs,snapshots,refs}``), the fake Hub
answers ``HEAD``/``GET /<repo>/resolve/<rev>/<file>`` as the Hub does (the
headers ``get_hf_file_metadata`` needs: commit, ETag = sha256, size).
"""

import hashlib
import http.server
import threading
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(cache, repo, filename, payload, commit=COMMIT):
    """``payload`` (bytes) as ``repo``'s ``filename`` in a huggingface_hub cache;
    returns the snapshot path."""
    folder = Path(cache) / f"models--{repo.replace('/', '--')}"
    digest = hashlib.sha256(payload).hexdigest()
    blob = folder / "blobs" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(payload)
    snapshot = folder / "snapshots" / commit / filename
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    snapshot.symlink_to(Path("..") / ".." / "blobs" / digest)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot


class FakeHub:
    """Serves ``files[(repo, filename)] = bytes``; ``mode`` bends the answers:
    ``"good"``, ``"swapped"`` (same size, other bytes, the good file's sha256
    in the headers), ``"truncated"`` (half the body, the full length
    announced, nothing to resume from) or ``"missing"`` (404)."""

    def __init__(self):
        self.files, self.mode, self.requests = {}, "good", []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, body):
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                key = ("/".join(parts[:2]), "/".join(parts[4:])) if len(parts) > 4 else None
                payload = hub.files.get(key)
                if payload is None or hub.mode == "missing":
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                digest = hashlib.sha256(payload).hexdigest()
                if hub.mode == "swapped":
                    payload = bytes(reversed(payload))
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{digest}"')
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.send_header("X-Linked-Size", str(len(payload)))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body and hub.mode == "truncated":
                    # Half the body, then the connection closes; huggingface_hub's
                    # retries get nothing more.
                    first = hub.requests.count(("GET", self.path)) == 1
                    self.wfile.write(payload[: len(payload) // 2] if first else b"")
                elif body:
                    self.wfile.write(payload)

            def do_HEAD(self):  # noqa: N802 (http.server's name)
                self._answer(body=False)

            def do_GET(self):  # noqa: N802
                self._answer(body=True)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
