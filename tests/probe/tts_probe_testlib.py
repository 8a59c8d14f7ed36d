"""Audio builders and an in-process HTTP server for the tts_probe tests.

The server listens on 127.0.0.1 (ephemeral port) and serves one case per path. Handlers that
stall wait on the server's stop event, so shutting the fixture down never waits for them.
"""

import array
import collections
import datetime
import io
import ipaddress
import json
import math
import socket
import struct
import sys
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
RATE = 22050
INSTANCE = "tts-test-1"
# Stalling handlers give up after this long even if the stop event is never set.
STALL_S = 10.0


def sine_samples(frames, amplitude=0.5, period=50):
    """Float samples of a sine whose period is a whole number of frames (exact RMS)."""
    one = [amplitude * math.sin(2.0 * math.pi * i / period) for i in range(period)]
    return (one * (frames // period + 1))[:frames]


def sine_wav(duration_s=0.3, amplitude=0.5, rate=RATE, channels=1):
    """A real 16-bit PCM WAV written by the standard `wave` module."""
    frames = int(duration_s * rate)
    pcm = array.array("h", (round(s * 32767) for s in sine_samples(frames, amplitude)
                            for _ in range(channels)))
    if sys.byteorder == "big":
        pcm.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def encode_samples(samples, bits, encoding="pcm"):
    """Little-endian WAV sample bytes for floats in [-1, 1]."""
    if encoding == "float":
        return struct.pack(f"<{len(samples)}{'f' if bits == 32 else 'd'}", *samples)
    if bits == 8:
        return bytes(round(s * 127) + 128 for s in samples)
    scale = 2 ** (bits - 1) - 1
    width = bits // 8
    return b"".join(round(s * scale).to_bytes(width, "little", signed=True) for s in samples)


def riff_wav(data, *, bits=16, channels=1, rate=RATE, tag=1, extensible=False,
             data_size=None, riff_size=None, before_data=b""):
    """Hand-built RIFF/WAVE for the variants `wave` cannot write (float, 24-bit, extensible,
    streaming sizes, extra chunks, lying sizes)."""
    block_align = channels * bits // 8
    if extensible:
        # cbSize 22, valid bits, channel mask, then the SubFormat GUID opening with the tag.
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block_align, block_align,
                          bits, 22, bits, 0) + struct.pack("<H", tag) + bytes(14)
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
            + b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def chunk(chunk_id, payload):
    """A RIFF chunk with its pad byte."""
    return chunk_id + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


GOOD_WAV = sine_wav()
SILENT_WAV = riff_wav(bytes(2 * RATE // 2))  # 0.5 s of zero samples
SHORT_WAV = sine_wav(duration_s=0.005)
# Header declares the full data chunk, half of it is sent.
TRUNCATED_WAV = GOOD_WAV[:44 + (len(GOOD_WAV) - 44) // 2]
MP3_BYTES = (b"ID3\x04\x00\x00\x00\x00\x00\x00"  # ID3v2.4 header, empty tag
             + b"\xff\xfb\x90\x64" + bytes(413))  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
OGG_BYTES = b"OggS\x00\x02" + bytes(22) + b"\x13OpusHead\x01\x01" + bytes(10)
FLAC_BYTES = b"fLaC\x80\x00\x00\x22" + bytes(34)
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>It works!</h1></body></html>"
FORMATS = {
    "/mp3": ("audio/mpeg", MP3_BYTES),
    "/ogg": ("audio/ogg", OGG_BYTES),
    "/flac": ("audio/flac", FLAC_BYTES),
}


class ProbeTestServer(ThreadingHTTPServer):
    """127.0.0.1 HTTP(S) server with one test case per path."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, ssl_context=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stop = threading.Event()
        self.hits = collections.Counter()
        self.hits_lock = threading.Lock()
        self.scheme = "http"
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="probe-test-server", daemon=True)

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.shutdown()
        self.server_close()
        self.thread.join(5)

    def count(self, key):
        with self.hits_lock:
            self.hits[key] += 1
            return self.hits[key]

    def handle_error(self, request, client_address):
        # Clients that give up (timeouts, rejected TLS) are part of the tests.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.request_body = self.rfile.read(length)
        self.close_connection = True
        path = urlsplit(self.path).path
        head, _, rest = path[1:].partition("/")
        route = getattr(self, "route_" + head.replace("-", "_"), None)
        if route is not None:
            route(rest)
        elif path in FORMATS:
            self.send(200, FORMATS[path][1], FORMATS[path][0])
        else:
            self.send_json(404, {"error": f"no route {path}"})

    # -- helpers -------------------------------------------------------------------------
    def send(self, status, body, content_type="audio/wav", headers=None, length=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("X-TTS-Instance", INSTANCE)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj):
        self.send(status, json.dumps(obj).encode(), "application/json")

    def json_body(self):
        try:
            return json.loads(self.request_body or b"null")
        except ValueError:
            return None

    # -- routes --------------------------------------------------------------------------
    def route_wav(self, _rest):
        # Like the reference server: a JSON object with non-empty text, or 400.
        body = self.json_body()
        if self.command != "POST" or not isinstance(body, dict) or not body.get("text"):
            self.send_json(400, {"error": "POST a JSON object with non-empty 'text'"})
        else:
            self.send(200, GOOD_WAV)

    def route_html(self, _rest):
        self.send(200, HTML_PAGE, "text/html; charset=utf-8")

    def route_error500(self, _rest):
        self.send_json(500, {"error": "model not loaded"})

    def route_silence(self, _rest):
        self.send(200, SILENT_WAV)

    def route_truncated(self, _rest):
        self.send(200, TRUNCATED_WAV)

    def route_short(self, _rest):
        self.send(200, SHORT_WAV)

    def route_wrong_type(self, _rest):
        self.send(200, GOOD_WAV, "application/octet-stream")

    def route_instance(self, _rest):
        self.send(200, GOOD_WAV, headers={"X-Backend": "tts-node-b:8000"})

    def route_slow(self, _rest):
        # Never answers in time: sits on the request until the server stops.
        if not self.server.stop.wait(STALL_S):
            self.send(200, GOOD_WAV)

    def route_trickle(self, _rest):
        # Prompt headers, then a few bytes every 50 ms: no single read ever times out.
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(GOOD_WAV)))
        self.end_headers()
        for offset in range(0, len(GOOD_WAV), 16):
            self.wfile.write(GOOD_WAV[offset:offset + 16])
            self.wfile.flush()
            if self.server.stop.wait(0.05):
                return

    def route_redirect(self, _rest):
        self.send(302, b"", "text/plain", headers={"Location": "/wav"})

    def route_redirect_loop(self, _rest):
        self.send(302, b"", "text/plain", headers={"Location": "/redirect-loop"})

    def route_see_other(self, _rest):
        self.send(303, b"", "text/plain", headers={"Location": "/get-only"})

    def route_get_only(self, _rest):
        if self.command == "GET":
            self.send(200, GOOD_WAV)
        else:
            self.send_json(405, {"error": "GET only"})

    def route_auth(self, _rest):
        # An OpenAI-style API: key in a header, text in "input".
        body = self.json_body()
        if self.headers.get("X-Api-Key") != "secret":
            self.send_json(401, {"error": "bad api key"})
        elif not isinstance(body, dict) or body.get("input") != "hello":
            self.send_json(400, {"error": "expected input=hello", "got": body})
        else:
            self.send(200, GOOD_WAV)

    def route_script(self, rest):
        # /script/<key>/<s1>.<s2>...: the n-th request for <key> answers status s_n (WAV for
        # 200); requests past the script get the WAV. Hits are counted per key.
        key, _, script = rest.partition("/")
        statuses = [int(code) for code in script.split(".") if code]
        hit = self.server.count(key)
        status = statuses[hit - 1] if hit <= len(statuses) else 200
        if status == 200:
            self.send(200, GOOD_WAV)
        else:
            self.send_json(status, {"error": f"scripted {status}", "hit": hit})

    def route_garbage(self, _rest):
        self.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")

    def route_chunked(self, _rest):
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for offset in range(0, len(GOOD_WAV), 4096):
            piece = GOOD_WAV[offset:offset + 4096]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def route_chunked_cut(self, _rest):
        # One complete chunk, then the connection closes without the terminating chunk.
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s\r\n" % (4096, GOOD_WAV[:4096]))

    def route_short_body(self, _rest):
        # Announces the whole WAV, sends 100 bytes, hangs up.
        self.send(200, GOOD_WAV[:100], length=len(GOOD_WAV))


def closed_port():
    """A 127.0.0.1 port that was just bound and released: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_cert(directory):
    """Write a self-signed certificate for 127.0.0.1/localhost; return (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = Path(directory) / "cert.pem"
    key_path = Path(directory) / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
