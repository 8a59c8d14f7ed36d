"""Helpers for the drill tests: a switchable TTS stand-in on 127.0.0.1 and synthetic drill data."""

import array
import io
import json
import math
import sys
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
# Hanging handlers give up after this long even if the server is never closed.
STALL_S = 5.0
RATE = 16000


def wav(duration_s=0.2, amplitude=0.5):
    """16-bit mono WAV of a 400 Hz sine (amplitude 0: digital silence)."""
    frames = int(duration_s * RATE)
    pcm = array.array("h", (round(amplitude * 32767 * math.sin(2 * math.pi * 400 * i / RATE))
                            for i in range(frames)))
    if sys.byteorder == "big":
        pcm.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


SINE = wav()
SILENCE = wav(amplitude=0)
HTML = b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"


class StandInHTTPServer(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: at the load tests' 50-100 requests/s a stand-in
    # starved of CPU for a moment (the machine runs molecule beside the unit tests) drops SYNs, and
    # the client times out on the stand-in's queue, not on what the test checks. Real servers
    # (uvicorn, gunicorn) listen with 2048.
    request_queue_size = 128


class SwitchableServer:
    """Answers POSTs like a TTS instance; `mode` and `instance` may change while a load runs.

    Modes: ok, slow (ok after `slow_s`), hang (no answer until closed or STALL_S), error500,
    silence (200 WAV of zeros), html (200 text/html). refuse() closes the listening socket so
    connections are refused; resume() listens again on the same port.
    """

    def __init__(self, instance="tts-primary"):
        self.mode = "ok"
        self.instance = instance
        self.slow_s = 0.3
        self.received = []  # (headers dict, body dict) per request
        self._closed = threading.Event()
        self._httpd = None
        self.port = 0
        self.resume()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/tts"

    def resume(self):
        self._httpd = StandInHTTPServer(("127.0.0.1", self.port), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def refuse(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def close(self):
        self._closed.set()
        self.refuse()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.received.append((dict(self.headers), json.loads(body or b"{}")))
                mode = server.mode
                if mode == "hang":
                    server._closed.wait(STALL_S)
                    return
                if mode == "slow":
                    server._closed.wait(server.slow_s)
                status, kind, payload = {
                    "error500": (500, "application/json", b'{"error": "injected fault: error500"}'),
                    "silence": (200, "audio/wav", SILENCE),
                    "html": (200, "text/html", HTML),
                }.get(mode, (200, "audio/wav", SINE))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-TTS-Instance", server.instance)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# Synthetic drill data for the report tests (times relative to FAULT_AT)
# --------------------------------------------------------------------------------------------

FAULT_AT = 1_700_000_000.0


def synth_requests(behaviour, start=-5.0, end=10.0, rate=10, shuffle=False):
    """One record every 1/rate s from start to end (seconds relative to the fault).

    behaviour(t) -> (outcome, instance, latency_s) for a request starting at t.
    shuffle: write them in completion order, as the load generator does.
    """
    records = []
    for seq in range(round((end - start) * rate)):
        t = start + seq / rate
        outcome, instance, latency = behaviour(round(t, 6))
        records.append({
            "seq": seq, "t_start": FAULT_AT + t, "t_end": FAULT_AT + t + latency,
            "latency_ms": round(latency * 1000, 1), "status": 200 if outcome == "ok" else None,
            "ok": outcome == "ok", "outcome": outcome, "reason": "ok" if outcome == "ok" else outcome,
            "instance": instance, "bytes": 6444 if outcome == "ok" else 0,
            "audio_duration_s": 0.2 if outcome == "ok" else None,
        })
    if shuffle:
        records.sort(key=lambda r: r["t_end"])
    return records


def transitions(host, *changes, instance="VI_TTS"):
    """Keepalived transition records: changes are (t relative to the fault, state)."""
    return [{"ts": FAULT_AT + t, "host": host, "instance": instance, "type": "INSTANCE",
             "state": state, "priority": 100} for t, state in changes]


def events(fault="crash", restored=None, failback=None, **extra):
    return {"fault": fault, "fault_at": FAULT_AT,
            "restored_at": None if restored is None else FAULT_AT + restored,
            "failback_at": None if failback is None else FAULT_AT + failback,
            "drill_started_at": FAULT_AT - 5, "drill_ended_at": FAULT_AT + 10,
            "expected_primary": "tts-primary", **extra}


def write_jsonl(path, records):
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
