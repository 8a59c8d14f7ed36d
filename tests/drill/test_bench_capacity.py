"""benchmarks/bench_capacity.py: the ramp's maths, and a short ramp against a 1-worker stand-in."""

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from tts_drill_testlib import REPO, SINE, StandInHTTPServer, SwitchableServer

spec = importlib.util.spec_from_file_location("bench_capacity", REPO / "benchmarks" / "bench_capacity.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def record(outcome="ok", latency_ms=100.0, instance="tts-standby"):
    return {"outcome": outcome, "latency_ms": latency_ms if outcome == "ok" else None, "instance": instance}


def test_rates_are_a_bounded_geometric_ramp():
    assert bench.rates(0.5, 2, 4, 10) == [0.5, 1.0, 2.0, 4.0]
    assert bench.rates(1, 1.25, 100, 5) == [1, 1.25, 1.56, 1.95, 2.44]


def test_judge_holds_within_the_bounds():
    step = bench.judge([record(latency_ms=ms) for ms in range(100, 2100, 100)], 2.0, 10, 2000, 0.0)
    assert step["held"] and step["broke"] is None
    assert (step["requests"], step["ok"], step["p50_ms"], step["p95_ms"]) == (20, 20, 1050.0, 1905.0)
    assert step["instances"] == ["tts-standby"]


def test_judge_breaks_on_errors_or_latency():
    failing = bench.judge([record()] * 9 + [record("http_error")], 2.0, 5, 2000, 0.0)
    assert not failing["held"] and failing["broke"] == "1/10 failed (http_error 1)"
    assert bench.judge([record()] * 9 + [record("http_error")], 2.0, 5, 2000, 0.1)["held"]
    slow = bench.judge([record(latency_ms=2500)] * 4, 2.0, 2, 2000, 0.0)
    assert slow["broke"] == "p95 2500 ms > 2000 ms"
    nothing = bench.judge([record("timeout")] * 3, 2.0, 2, 2000, 0.5)
    assert nothing["broke"] == "3/3 failed (timeout 3); no ok answer"


def test_standby_primary_ratio():
    def result(profile, rate):
        return {"profile": profile, "sustainable_rate_per_s": rate}
    assert bench.ratio([result("primary", 4.0), result("standby", 5.0)]) == 1.25
    assert bench.ratio([result("primary", 4.0), result("standby", None)]) == 0.0
    assert bench.drill_rate([result("primary", 4.0), result("standby", 3.05)]) == 1.52
    assert bench.drill_rate([result("primary", 4.0)]) is None
    assert bench.ratio([result("primary", 4.0)]) is None
    assert bench.ratio([result("primary", 4.0), result("primary", 2.0), result("standby", 3.0),
                        result("canary", 1.0)]) == 0.5


class OneWorker:
    """Synthesises one request at a time, SERVICE_S each: saturates at 1/SERVICE_S requests/s."""

    SERVICE_S = 0.1

    def __init__(self):
        self.texts = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    outer.texts.append(body["text"])
                    time.sleep(outer.SERVICE_S)
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(SINE)))
                self.send_header("X-TTS-Instance", "tts-one")
                self.end_headers()
                self.wfile.write(SINE)

        self.httpd = StandInHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tts"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def one_worker():
    server = OneWorker()
    yield server
    server.close()


def test_ramp_finds_the_rate_a_one_worker_stand_in_sustains(one_worker, tmp_path, capsys):
    # 10/s capacity: 2/s and 5/s hold; at 12.5/s the queue grows 2.5 requests a second.
    out = tmp_path / "capacity.json"
    code = bench.main(["--target", f"tts-one:standby:{one_worker.url}", "--start-rate", "2", "--factor", "2.5",
                       "--max-rate", "20", "--step-s", "2", "--max-p95-ms", "300", "--pause-s", "0.2",
                       "--warmup", "1", "--timeout", "5", "--seed", "3", "--json-out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    (result,) = report["instances"]
    assert [s["rate_per_s"] for s in result["steps"]] == [2, 5, 12.5]
    assert result["sustainable_rate_per_s"] == 5 and result["broke_at_rate_per_s"] == 12.5
    assert result["broke"].startswith("p95 ") and result["stopped_by"] == "bound"
    assert result["p95_ms"] < 300
    assert report["drill_rate_per_s"] == 2.5  # half the standby's 5/s
    assert report["corpus"] == {"name": "realistic", "seed": 3}
    # Every text the ramp sent was a different sentence: no cache could have answered.
    assert len(one_worker.texts) == len(set(one_worker.texts)) == 1 + 4 + 10 + 25
    printed = capsys.readouterr().out
    assert "| tts-one | standby | 5 |" in printed and "broke at" in printed
    assert "| tts-one | standby | 5 |" in (tmp_path / "capacity.md").read_text()


def test_auto_start_enters_the_default_ramp_below_half_the_one_at_a_time_rate(one_worker, tmp_path, capsys):
    # One request at a time takes ~0.1 s here: half of that rate is ~4-5/s, and the 0.5/s ramp x2
    # (0.5, 1, 2, 4, 8, 16) is entered at 4/s (2/s on a slower run); the ramp then breaks where a
    # ramp from 0.5/s breaks (16/s saturates the one worker, 8/s may already break p95).
    out = tmp_path / "capacity.json"
    code = bench.main(["--target", f"tts-one:standby:{one_worker.url}", "--start-rate", "auto", "--factor", "2",
                       "--max-rate", "40",
                       "--step-s", "2", "--max-p95-ms", "300", "--pause-s", "0.2", "--warmup", "3",
                       "--timeout", "5", "--seed", "4", "--json-out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    (result,) = report["instances"]
    assert report["bounds"]["start_rate"] == "auto"
    assert 100 <= result["warmup_median_ms"] < 160, result
    start = 4 if 500 / result["warmup_median_ms"] >= 4 else 2
    assert result["start_rate_per_s"] == start
    assert [s["rate_per_s"] for s in result["steps"]][:2] == [start, start * 2] and result["steps"][0]["held"]
    assert result["sustainable_rate_per_s"] < 10 and result["stopped_by"] == "bound"
    assert result["broke_at_rate_per_s"] == round(result["steps"][-2]["rate_per_s"] * 2, 2)
    assert f"highest rate at or below half the warm-up's one-at-a-time rate (tts-one {start:g}/s)" in (
        tmp_path / "capacity.md").read_text()
    assert f"ramp from {start:g}/s" in capsys.readouterr().err


def test_auto_start_stays_on_the_default_ramp_and_falls_back_without_an_answer():
    assert bench.auto_start_rate([record("timeout")] * 3, 20, 1.25) == (bench.AUTO_GRID_BASE, None)
    # 250 ms: half the one-at-a-time rate is 2/s; the 0.5/s x1.25 ramp has 1.91 below it.
    start, median = bench.auto_start_rate([record(latency_ms=ms) for ms in (900, 250, 200)], 20, 1.25)
    assert median == 250.0 and bench.rates(start, 1.25, 20, 3) == [1.91, 2.38, 2.98]
    assert bench.rates(start, 1.25, 20, 3) == bench.rates(0.5, 1.25, 20, 16)[6:9]
    # a half rate on the ramp is its first rate; below 0.5/s the ramp goes on down
    assert bench.auto_start_rate([record(latency_ms=250)], 20, 2) == (2.0, 250.0)
    assert bench.auto_start_rate([record(latency_ms=1500)], 20, 2) == (0.25, 1500.0)
    assert bench.auto_start_rate([record(latency_ms=5)] * 3, 20, 2) == (16, 5.0)  # at most --max-rate


def test_an_instance_that_never_holds_exits_1(tmp_path, capsys):
    with SwitchableServer() as server:
        server.mode = "error500"
        code = bench.main(["--target", f"bad:primary:{server.url}", "--start-rate", "2", "--step-s", "1",
                           "--warmup", "0", "--pause-s", "0", "--json-out", str(tmp_path / "c.json")])
    assert code == 1
    (result,) = json.loads((tmp_path / "c.json").read_text())["instances"]
    assert result["sustainable_rate_per_s"] is None and result["broke_at_rate_per_s"] == 2
    assert "2/2 failed (http_error 2)" in result["broke"]


def test_budget_bounds_the_run(one_worker, tmp_path):
    code = bench.main(["--target", f"tts-one:standby:{one_worker.url}", "--start-rate", "1", "--step-s", "1",
                       "--budget-s", "4", "--timeout", "1", "--warmup", "0", "--pause-s", "0.5",
                       "--max-p95-ms", "5000", "--json-out", str(tmp_path / "c.json")])
    (result,) = json.loads((tmp_path / "c.json").read_text())["instances"]
    assert result["stopped_by"] == "budget" and 1 <= len(result["steps"]) <= 2
    assert code == 0


@pytest.mark.parametrize("argv, message", [
    (["--target", "nourl"], "expected NAME:PROFILE:URL"),
    (["--target", "a:b:ftp://x"], "expected NAME:PROFILE:URL"),
    (["--target", "a:b:http://127.0.0.1:9/tts", "--factor", "1"], "--factor must be > 1"),
    (["--target", "a:b:http://127.0.0.1:9/tts", "--start-rate", "5", "--max-rate", "2"], "must not exceed"),
    (["--target", "a:b:http://127.0.0.1:9/tts", "--start-rate", "fast"], "expected auto or a rate > 0, got 'fast'"),
    (["--target", "a:b:http://127.0.0.1:9/tts", "--start-rate", "0"], "expected auto or a rate > 0"),
    (["--target", "a:b:http://127.0.0.1:9/tts", "--start-rate", "auto", "--warmup", "0"], "--start-rate auto needs --warmup >= 1"),
])
def test_bad_arguments_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        bench.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_ramp_follows_an_api_contract(one_worker, tmp_path):
    tts_probe = bench.import_probe()
    contract = tmp_path / "tts-api.json"
    contract.write_text(json.dumps(tts_probe.resolve_contract("reference")))
    base = one_worker.url.rsplit("/", 1)[0]
    code = bench.main(["--target", f"tts-one:standby:{base}", "--api-file", str(contract), "--start-rate", "2",
                       "--max-rate", "2", "--step-s", "1", "--warmup", "0", "--seed", "4",
                       "--json-out", str(tmp_path / "c.json")])
    assert code == 0
    (result,) = json.loads((tmp_path / "c.json").read_text())["instances"]
    assert result["sustainable_rate_per_s"] == 2 and result["stopped_by"] == "max_rate"
    assert sorted(one_worker.texts) == sorted(bench.Corpus(4).text(seq) for seq in range(2))


def test_bad_api_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "tts-api.json"
    bad.write_text(json.dumps({"port": 0}))
    with pytest.raises(SystemExit) as exited:
        bench.main(["--target", "a:b:http://127.0.0.1:9", "--api-file", str(bad)])
    assert exited.value.code == 2 and "--api-file" in capsys.readouterr().err


def test_p95_bound_relative_to_the_first_rate(one_worker, tmp_path):
    """A machine whose lone synthesis already takes longer than --max-p95-ms is not saturated at
    the lightest rate: with --max-p95-ratio the bound becomes that many times the first rate's
    p95 (queueing), and the ramp finds the same knee as on a fast machine."""
    argv = ["--target", f"tts-one:standby:{one_worker.url}", "--start-rate", "2", "--factor", "2.5",
            "--max-rate", "20", "--step-s", "2", "--max-p95-ms", "50", "--pause-s", "0.2",
            "--warmup", "1", "--timeout", "5", "--seed", "3"]
    assert bench.main(argv + ["--json-out", str(tmp_path / "abs.json")]) == 1  # 100 ms > 50 ms at once
    (absolute,) = json.loads((tmp_path / "abs.json").read_text())["instances"]
    assert absolute["sustainable_rate_per_s"] is None and absolute["broke"].startswith("p95 ")
    assert bench.main(argv + ["--max-p95-ratio", "3", "--json-out", str(tmp_path / "rel.json")]) == 0
    report = json.loads((tmp_path / "rel.json").read_text())
    (relative,) = report["instances"]
    assert relative["sustainable_rate_per_s"] == 5 and relative["broke_at_rate_per_s"] == 12.5
    assert 100 <= relative["max_p95_ms"] / 3 < 300 and report["bounds"]["max_p95_ratio"] == 3
    assert "or 3 x the first rate's p95 where more (tts-one: " in (tmp_path / "rel.md").read_text()
