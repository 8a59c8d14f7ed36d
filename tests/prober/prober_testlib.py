"""A loopback TTS stub whose behaviour a test switches at will, for the resident prober tests.

Modes: ok (real WAV, /metrics counter), hang (every request stalls, counter stands still), busy
(synthesis 503 or stall while the counter keeps growing: busy but speaking), silence (200 with a
silent WAV), reset (accepts and closes without an answer, as docker-proxy in front of a dead
container). A crash is the server shut down (connection refused). Stalls end when the mode
changes or the server stops, so no test waits for them.
"""

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "module_utils"))
sys.path.insert(0, str(REPO / "tests" / "probe"))

from tts_probe_testlib import sine_wav  # noqa: E402

WAV = sine_wav(0.2)
SILENT = sine_wav(0.2, amplitude=0.0)


class StubTTS(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port=0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.mode = "ok"
        self.busy_kind = "503"
        self.counter = 0.0
        self.syntheses = 0
        self.pings = 0
        self.changed = threading.Condition()
        self._thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def set_mode(self, mode):
        with self.changed:
            self.mode = mode
            self.changed.notify_all()

    def stall(self, mode, limit=5.0):
        with self.changed:
            self.changed.wait_for(lambda: self.mode != mode, timeout=limit)

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.set_mode("stopped")
        self.shutdown()
        self.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reset(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass

    def do_GET(self):
        server = self.server
        server.pings += 1
        mode = server.mode
        if mode == "reset":
            return self._reset()
        if mode == "hang":
            server.stall("hang")
            return self._reset()
        if mode == "busy":
            server.counter += 1.0
        body = f"# TYPE tts_audio_seconds_total counter\ntts_audio_seconds_total {server.counter}\n".encode()
        self._send(200, body, "text/plain")

    def do_POST(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        server.syntheses += 1
        mode = server.mode
        if mode == "reset":
            return self._reset()
        if mode == "hang" or (mode == "busy" and server.busy_kind == "stall"):
            server.stall(mode)
            return self._reset()
        if mode == "busy":
            return self._send(503, b"busy", "text/plain")
        if mode == "silence":
            return self._send(200, SILENT, "audio/wav")
        server.counter += 0.2
        self._send(200, WAV, "audio/wav")

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-TTS-Instance", "stub")
        self.end_headers()
        self.wfile.write(body)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
