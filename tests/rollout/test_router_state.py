"""roles/tts_router/files/tts-router-state against a stub HAProxy admin socket (unix, in tmp)."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/tts_router/files/tts-router-state"
HEADER = "# pxname,svname,qcur,qmax,scur,smax,status\n"


class StubHAProxy:
    """Answers `show stat` and `set server` like HAProxy's admin socket; scur drains over time."""

    def __init__(self, path, scur=0, drain_after=0.0, servers=("tts-primary_node1",)):
        self.path, self.commands, self.state = str(path), [], {}
        self.scur, self.drain_after, self.servers, self.drain_at = scur, drain_after, servers, None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, cmd):
        self.commands.append(cmd)
        if cmd == "show stat":
            left = self.scur
            if self.drain_at is not None and time.monotonic() - self.drain_at >= self.drain_after:
                left = 0
            rows = "".join(f"tts,{s},0,0,{left},1,UP\n" for s in self.servers)
            return HEADER + "tts,BACKEND,0,0,0,1,UP\n" + rows + "\n"
        parts = cmd.split()
        if parts[:2] == ["set", "server"] and len(parts) == 5:
            name = parts[2].split("/", 1)[1]
            if name not in self.servers:
                return "No such server.\n"
            self.state[name] = parts[4]
            if parts[4] == "drain" and self.drain_at is None:
                self.drain_at = time.monotonic()
            return "\n"
        return "Unknown command\n"

    def serve(self):
        deadline = time.monotonic() + 30
        while not self.stop and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.answer(data.decode().strip()).encode())

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def stub(tmp_path):
    made = []

    def make(**kw):
        s = StubHAProxy(tmp_path / "admin.sock", **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def run(*args, timeout=15):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_maint_drains_first_and_waits_for_requests_in_flight(stub):
    s = stub(scur=2, drain_after=0.6)
    t0 = time.monotonic()
    rc, out = run("--socket", s.path, "--server", "tts/tts-primary_node1", "--state", "maint")
    assert rc == 0 and out["ok"] and out["left_in_flight"] == 0
    assert time.monotonic() - t0 >= 0.5
    sets = [c for c in s.commands if c.startswith("set")]
    assert sets == ["set server tts/tts-primary_node1 state drain", "set server tts/tts-primary_node1 state maint"]


def test_maint_after_the_drain_timeout_reports_what_was_left(stub):
    s = stub(scur=1, drain_after=60)
    rc, out = run("--socket", s.path, "--server", "tts/tts-primary_node1", "--state", "maint",
                  "--drain-timeout", "0.5")
    assert rc == 0 and out["left_in_flight"] == 1 and s.state["tts-primary_node1"] == "maint"


def test_ready_puts_the_server_back(stub):
    s = stub()
    rc, out = run("--socket", s.path, "--server", "tts/tts-primary_node1", "--state", "ready")
    assert rc == 0 and s.state == {"tts-primary_node1": "ready"}
    assert not any("drain" in c for c in s.commands)


def test_unknown_server_fails_without_setting_anything(stub):
    s = stub()
    rc, out = run("--socket", s.path, "--server", "tts/nope", "--state", "maint")
    assert rc == 1 and "no server tts/nope" in out["error"] and s.state == {}


def test_missing_socket_fails(tmp_path):
    rc, out = run("--socket", str(tmp_path / "none.sock"), "--server", "tts/x", "--state", "ready")
    assert rc == 1 and not out["ok"]


def test_bad_server_argument(tmp_path):
    rc, out = run("--socket", str(tmp_path / "s"), "--server", "x", "--state", "ready")
    assert rc == 2


def test_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)
