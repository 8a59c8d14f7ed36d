"""Busy but speaking: the on-host check (keepalived's track script) with an API contract and a
counter of real answers. A server without a probe lane that answers real traffic is not failed
for a slow probe; a hung one (counter standing still), a crashed one, or one with a lane is."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tts_probe_testlib import REPO, closed_port, sine_wav

CHECK = REPO / "bin" / "tts-synthesis-check"


class State:
    probe_delay_s = 0.0   # how long a synthesis takes now
    counter = 0.0         # audio seconds served, as a Prometheus counter
    speaking = True       # whether real requests complete (the counter grows)
    stats_2xx = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if State.speaking:
            State.counter += 1.5
            State.stats_2xx += 3
        if self.path == "/metrics":
            body = (f"# TYPE tts_audio_seconds_total counter\n"
                    f'tts_audio_seconds_total{{voice="a"}} {State.counter}\n'
                    f'tts_audio_seconds_total{{voice="b"}} 1.0\n').encode()
            return self._send(200, body, "text/plain; version=0.0.4")
        if self.path == "/;csv":
            body = ("# pxname,svname,scur,hrsp_2xx,\n"
                    f"tts,FRONTEND,1,{State.stats_2xx},\n"
                    "tts,tts-primary,0,5,\n").encode()
            return self._send(200, body, "text/csv")
        self._send(404, b"no", "text/plain")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(State.probe_delay_s)
        self._send(200, sine_wav(0.3), "audio/wav")


@pytest.fixture(scope="module")
def base_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def contract_file(tmp_path):
    def write(lane=False, metrics=True):
        sys.path.insert(0, str(REPO / "module_utils"))
        import tts_probe
        overrides = {"probe": {"lane": lane, "headers": {}}}
        if not metrics:
            overrides["evidence"] = {"metrics_path": "", "metric": ""}
        path = tmp_path / f"api-{lane}-{metrics}.json"
        path.write_text(json.dumps(tts_probe.resolve_contract("reference", overrides)))
        return str(path)
    return write


def check(url, api_file, state, *extra):
    proc = subprocess.run([sys.executable, str(CHECK), "--url", url, "--api-file", api_file,
                           "--timeout", "0.4", "--evidence-state", str(state), "--busy-window", "3",
                           *extra], capture_output=True, text=True, timeout=15, check=False)
    return proc.returncode, json.loads(proc.stdout.splitlines()[0])


def test_busy_server_that_answers_real_traffic_passes(base_url, contract_file, tmp_path):
    api, state = contract_file(), tmp_path / "ev.json"
    State.probe_delay_s, State.speaking = 0.0, True
    assert check(base_url, api, state)[0] == 0          # quiet: healthy, first sample
    State.probe_delay_s = 1.0                           # saturated: the probe waits in the queue
    code, result = check(base_url, api, state)
    assert code == 0 and result["busy"], result
    assert result["reason"].startswith("busy but speaking: metrics counter grew")
    assert "timed out" in result["reason"]


def test_hung_server_fails_although_it_accepts(base_url, contract_file, tmp_path):
    api, state = contract_file(), tmp_path / "ev.json"
    State.probe_delay_s, State.speaking = 0.0, False
    assert check(base_url, api, state)[0] == 0
    State.probe_delay_s = 1.0                           # hung: nothing completes, counter still
    code, result = check(base_url, api, state)
    assert code == 1 and not result.get("busy")
    assert result["evidence"]["grew_s_ago"] is None


def test_server_with_a_probe_lane_never_uses_the_rule(base_url, contract_file, tmp_path):
    api, state = contract_file(lane=True), tmp_path / "ev.json"
    State.probe_delay_s, State.speaking = 0.0, True
    check(base_url, api, state)
    State.probe_delay_s = 1.0
    code, result = check(base_url, api, state)
    assert code == 1 and "timed out" in result["reason"]


def test_router_stats_are_evidence_too(base_url, contract_file, tmp_path):
    api, state = contract_file(metrics=False), tmp_path / "ev.json"
    router = ["--evidence-kind", "haproxy", "--evidence-url", base_url + "/;csv"]
    State.probe_delay_s, State.speaking = 0.0, True
    check(base_url, api, state, *router)
    State.probe_delay_s = 1.0
    code, result = check(base_url, api, state, *router)
    assert code == 0 and result["evidence"]["kind"] == "haproxy", result


def test_crashed_server_fails_at_once(contract_file, tmp_path):
    api, state = contract_file(), tmp_path / "ev.json"
    url = f"http://127.0.0.1:{closed_port()}"
    code, result = check(url, api, state)
    assert code == 1 and "connection refused" in result["reason"]


def test_bad_contract_file_is_an_argument_error(tmp_path):
    bad = tmp_path / "api.json"
    bad.write_text(json.dumps({"text": {"in": "telepathy"}}))
    proc = subprocess.run([sys.executable, str(CHECK), "--url", "http://127.0.0.1:9", "--api-file", str(bad)],
                          capture_output=True, text=True, timeout=15, check=False)
    assert proc.returncode == 2 and "text.in" in json.loads(proc.stdout)["reason"]


# ----------------------------------------------------------------------------------------------
# The module with a contract: a definitive answer ends the readiness wait at once
# ----------------------------------------------------------------------------------------------

def test_module_stops_waiting_on_a_definitive_answer(base_url, tmp_path):
    """A Coqui-style contract (GET /api/tts) against a server that has no such route: the wait
    ends at the first 404 naming the contract's path, not after wait_timeout."""
    import os
    play = tmp_path / "play.yml"
    play.write_text(f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - tts_api_contract: {{preset: coqui}}
      register: c
    - tts_synthesis_check:
        url: "{base_url}"
        api: "{{{{ c.contract }}}}"
        wait_timeout: 60
        wait_interval: 1
""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path))
    started = time.monotonic()
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable}), str(play)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    assert "stopped at once" in proc.stdout and "path (the server has no such route)" in proc.stdout, proc.stdout
    assert elapsed < 30, f"waited {elapsed:.0f} s for an answer that cannot change"


def test_module_refuses_a_bad_contract_naming_the_field(tmp_path):
    import os
    play = tmp_path / "play.yml"
    play.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - tts_api_contract:
        preset: openai
        api: {auth: {token: CHANGE_ME}}
""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path))
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable}), str(play)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "tts_api_overrides.auth.token: is still a placeholder" in proc.stdout, proc.stdout
