"""Open-loop load generator for failover drills.

Launches one synthesis request every 1/rate seconds on a fixed schedule, whatever the previous
requests are doing, so an outage shows up as failed or slow requests instead of a paused client.
Each request is judged by the shared probe (module_utils/tts_probe.py): a fresh connection with
``Connection: close`` (stale keep-alive sockets can neither hide nor exaggerate a failover), one
deadline for the whole exchange, and "ok" only for HTTP 200 with real, non-silent audio.

One JSON line per request goes to --out as each completes; one summary JSON line goes to stdout at
exit. The run is bounded by --duration and --max-requests, and ends early on --stop-file, SIGTERM
or SIGINT; in-flight requests then finish or time out before the file is closed.

The recovery sampler (--samples-out): the load's own requests see a recovery only at the next one
the schedule sends (1/rate later: 1.3 s at 0.77/s) and each answer is a whole sentence, so an RTO
taken from them depends on the rate and the machine's speed. From the moment --arm-file appears
(the drill creates it just before the fault) the sampler sends the contract's short probe text as
client traffic (no probe headers, no audio cache) every --sample-interval seconds, logged like the
load; it stops once --fault-file has existed for SAMPLE_HOLD_S and its last SAMPLE_GOOD_RUN samples
were answered fast, or after --sample-window seconds.
Exit codes: 0 run completed (whatever the service did), 1 internal error, 2 bad arguments.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from tts_drill import OUTCOMES, import_probe, percentile
from tts_drill.corpus import Corpus

tts_probe = import_probe()

DEFAULT_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Please hold while we connect your call.",
    "Your order has been shipped and will arrive on Tuesday.",
    "Turn left at the next intersection.",
    "The meeting starts in five minutes.",
    "Battery level is at twenty percent.",
    "Welcome back, it is good to see you again.",
    "The train to Edinburgh departs from platform four.",
    "Remember to water the plants before you leave.",
    "Temperatures will drop below freezing tonight.",
    "Your password was changed successfully.",
    "Thank you for your patience.",
    "Door three is now open.",
    "Press one for sales or two for support.",
    "The library closes at eight o'clock this evening.",
    "A new software update is available.",
    "Please fasten your seat belt.",
    "It looks like rain this afternoon.",
    "Your coffee is ready.",
    "All systems are operating normally.",
)
MAX_IN_FLIGHT = 64
# Longest sleep between checks of the stop file and stop requests while waiting for a slot.
STOP_POLL_S = 0.1
REASON_LIMIT = 200
USER_AGENT = "tts-ha-drill-loadgen"
# Recovery sampler: concurrent samples at most (a hung server holds them until their timeout),
# the consecutive fast answers and the time after the fault that end it, and what "fast" means
# (tts_drill.report's stall bound).
SAMPLE_MAX_IN_FLIGHT = 32
SAMPLE_GOOD_RUN = 4
SAMPLE_HOLD_S = 3.0
SAMPLE_FAST_S = 1.0


def classify(result):
    """Outcome name for a probe() result (see tts_drill.OUTCOMES)."""
    if result["healthy"]:
        return "ok"
    checks = result["checks"]
    if not checks.get("request"):
        # No complete response: the probe words every deadline expiry "timed out after ...".
        return "timeout" if result["reason"].startswith("timed out") else "connection_error"
    if not checks.get("status"):
        return "http_error"
    return "invalid_audio"


class LoadGenerator:
    """One bounded run; run() blocks until it ends, stop() may be called from anywhere."""

    def __init__(self, url, out, *, rate=10.0, duration=60.0, max_requests=None, timeout=3.0,
                 texts=DEFAULT_TEXTS, stop_file=None, min_rms_dbfs=-60.0, headers=None,
                 max_in_flight=MAX_IN_FLIGHT, api=None, samples_out=None, arm_file=None,
                 fault_file=None, sample_interval=0.25, sample_window=30.0):
        self.url = url
        # The API contract (tts_probe.resolve_contract()); url is then the server's base URL.
        self.api = api
        self.out = out
        self.rate = rate
        self.duration = duration
        self.max_requests = max_requests
        self.timeout = timeout
        # A sequence used in rotation, or a callable seq -> text (e.g. a tts_drill.corpus.Corpus).
        self.texts = texts if callable(texts) else tuple(texts)
        self.stop_file = stop_file
        self.min_rms_dbfs = min_rms_dbfs
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.max_in_flight = max_in_flight
        self.error = None  # exception that ended the run early (bad argument or bug)
        self._stop_event = threading.Event()
        self._stopped_by = None
        self._lock = threading.Lock()
        self._outcomes = dict.fromkeys(OUTCOMES, 0)
        self._ok_latencies = []
        self.samples_out = samples_out
        self.arm_file = arm_file
        self.fault_file = fault_file
        self.sample_interval = sample_interval
        self.sample_window = sample_window
        self._sample_good = {}  # sample seq -> answered ok within SAMPLE_FAST_S
        self._sample_lock = threading.Lock()
        self.samples = 0

    def stop(self, why="stopped"):
        if self._stopped_by is None:
            self._stopped_by = why
        self._stop_event.set()

    def run(self):
        """Send requests until a bound or a stop request is reached; return the summary dict."""
        slots = threading.BoundedSemaphore(self.max_in_flight)
        started = time.monotonic()
        seq = 0
        sampler = None
        if self.samples_out:
            sampler = threading.Thread(target=self._sample, name="loadgen-sampler", daemon=True)
            sampler.start()
        with open(self.out, "w", encoding="utf-8") as sink, ThreadPoolExecutor(
                self.max_in_flight, thread_name_prefix="loadgen") as pool:
            while not self._should_stop(seq, started):
                wait = started + seq / self.rate - time.monotonic()
                if wait > 0:
                    self._stop_event.wait(min(wait, STOP_POLL_S))
                    continue
                if slots.acquire(blocking=False):
                    pool.submit(self._send, seq, self._text(seq), slots, sink)
                else:
                    # Queueing would turn the open loop into an unbounded backlog; the slot is
                    # recorded as missed instead.
                    now = time.time()
                    self._write(sink, self._record(seq, now, now, None, "client_saturated",
                                                   f"{self.max_in_flight} requests already in flight"))
                seq += 1
            # Leaving the block waits for in-flight requests: each ends within its timeout.
        if sampler is not None:
            sampler.join()
        return self._summary(time.monotonic() - started)

    def _sample(self):
        """The recovery sampler (module docstring); bounded by sample_window and the stop event."""
        try:
            open(self.samples_out, "w", encoding="utf-8").close()  # an empty log: never armed
            while not os.path.exists(self.arm_file):
                if self._stop_event.wait(STOP_POLL_S / 2):
                    return
            armed = time.monotonic()
            fault_seen = None
            slots = threading.BoundedSemaphore(SAMPLE_MAX_IN_FLIGHT)
            seq = 0
            with open(self.samples_out, "a", encoding="utf-8") as sink, ThreadPoolExecutor(
                    SAMPLE_MAX_IN_FLIGHT, thread_name_prefix="sampler") as pool:
                while not self._stop_event.is_set() and time.monotonic() - armed < self.sample_window:
                    if fault_seen is None and self.fault_file and os.path.exists(self.fault_file):
                        fault_seen = time.monotonic()
                    if fault_seen is not None and time.monotonic() - fault_seen >= SAMPLE_HOLD_S \
                            and self._recovered(seq):
                        break
                    wait = armed + seq * self.sample_interval - time.monotonic()
                    if wait > 0:
                        self._stop_event.wait(min(wait, STOP_POLL_S))
                        continue
                    if slots.acquire(blocking=False):
                        pool.submit(self._send_sample, seq, slots, sink)
                    else:
                        now = time.time()
                        self._write_sample(sink, self._record(seq, now, now, None, "client_saturated",
                                                              f"{SAMPLE_MAX_IN_FLIGHT} samples already in flight"))
                    seq += 1
            self.samples = seq
        except Exception as exc:  # noqa: BLE001 - as in _send: a bug ends the run loudly
            self.error = self.error or exc
            self.stop("error")

    def _recovered(self, seq):
        """The last SAMPLE_GOOD_RUN samples launched were all answered, ok and fast."""
        with self._sample_lock:
            return seq >= SAMPLE_GOOD_RUN and all(self._sample_good.get(n) for n in range(seq - SAMPLE_GOOD_RUN, seq))

    def _send_sample(self, seq, slots, sink):
        try:
            t_start = time.time()
            if self.api is None:
                arguments = {"url": self.url, "payload": {"text": DEFAULT_TEXTS[-1]}, "headers": {}}
            else:
                arguments = tts_probe.contract_probe_arguments(self.api, self.url, probe_request=False)
            arguments["headers"] = {**arguments["headers"], **self.headers, "Cache-Control": "no-cache"}
            result = tts_probe.probe(**arguments, timeout=self.timeout, min_rms_dbfs=self.min_rms_dbfs)
            t_end = time.time()
            record = self._record(seq, t_start, t_end, result, classify(result), result["reason"])
            with self._sample_lock:
                self._sample_good[seq] = record["ok"] and t_end - t_start <= SAMPLE_FAST_S
            self._write_sample(sink, record)
        except Exception as exc:  # noqa: BLE001 - a bad argument or a bug must end the run loudly
            self.error = self.error or exc
            self.stop("error")
        finally:
            slots.release()

    def _write_sample(self, sink, record):
        line = json.dumps(record) + "\n"
        with self._sample_lock:
            sink.write(line)
            sink.flush()

    def _text(self, seq):
        return self.texts(seq) if callable(self.texts) else self.texts[seq % len(self.texts)]

    def _should_stop(self, seq, started):
        if self._stop_event.is_set():
            return True
        if self.stop_file and os.path.exists(self.stop_file):
            self.stop("stop_file")
        elif self.max_requests is not None and seq >= self.max_requests:
            self.stop("max_requests")
        elif seq / self.rate >= self.duration or time.monotonic() - started >= self.duration:
            self.stop("duration")
        return self._stop_event.is_set()

    def _send(self, seq, text, slots, sink):
        try:
            t_start = time.time()
            if self.api is None:
                arguments = {"url": self.url, "payload": {"text": text}, "headers": self.headers}
            else:
                # Client traffic: the contract's request without its probe headers (no probe lane).
                arguments = tts_probe.contract_probe_arguments(self.api, self.url, text, probe_request=False)
                arguments["headers"] = {**arguments["headers"], **self.headers}
            result = tts_probe.probe(**arguments, timeout=self.timeout, min_rms_dbfs=self.min_rms_dbfs)
            self._write(sink, self._record(seq, t_start, time.time(), result, classify(result),
                                           result["reason"]))
        except Exception as exc:  # noqa: BLE001 - a bad argument or a bug must end the run loudly
            self.error = self.error or exc
            self.stop("error")
        finally:
            slots.release()

    @staticmethod
    def _record(seq, t_start, t_end, result, outcome, reason):
        result = result or {}
        return {
            "seq": seq, "t_start": t_start, "t_end": t_end,
            "latency_ms": result.get("latency_ms"), "status": result.get("status"),
            "ok": outcome == "ok", "outcome": outcome, "reason": reason[:REASON_LIMIT],
            "instance": result.get("instance"), "bytes": result.get("bytes", 0),
            "audio_duration_s": result.get("duration_s"),
        }

    def _write(self, sink, record):
        line = json.dumps(record) + "\n"
        with self._lock:
            sink.write(line)
            sink.flush()  # the drill reads the file while the run is going
            self._outcomes[record["outcome"]] += 1
            if record["ok"]:
                self._ok_latencies.append(record["latency_ms"])

    def _summary(self, elapsed):
        outcomes = self._outcomes
        scheduled = sum(outcomes.values())
        p50, p95 = (percentile(self._ok_latencies, q) for q in (0.5, 0.95))
        return {
            "url": self.url, "out": self.out, "stopped_by": self._stopped_by,
            "elapsed_s": round(elapsed, 3), "scheduled": scheduled,
            "sent": scheduled - outcomes["client_saturated"], "ok": outcomes["ok"],
            "failed": scheduled - outcomes["ok"],
            "failed_by_outcome": {name: n for name, n in outcomes.items() if name != "ok" and n},
            "p50_ms": None if p50 is None else round(p50, 1),
            "p95_ms": None if p95 is None else round(p95, 1),
            **({"samples": self.samples, "samples_out": self.samples_out} if self.samples_out else {}),
        }


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _header(text):
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m tts_drill.loadgen",
        description="Send TTS synthesis requests at a fixed rate (open loop) and log each one as a"
                    " JSON line. Exit 0 when the run completed, 1 internal error, 2 bad arguments.")
    parser.add_argument("--url", required=True, help='synthesis endpoint, POSTed {"text": ...};'
                        " with --api-file, the server's base URL")
    parser.add_argument("--api-file", help="API contract (JSON, tts_probe.resolve_contract()): how"
                        " the text is sent and what a good answer is")
    parser.add_argument("--rate", type=_positive(float), default=10.0,
                        help="requests launched per second (default 10)")
    parser.add_argument("--duration", type=_positive(float), default=60.0,
                        help="stop launching after this many seconds (default 60)")
    parser.add_argument("--max-requests", type=_positive(int),
                        help="stop after launching this many requests (default: no count cap)")
    parser.add_argument("--timeout", type=_positive(float), default=3.0,
                        help="seconds for each whole request (default 3)")
    parser.add_argument("--texts-file", help="texts to synthesise, one per line, used in rotation"
                                             " (blank lines and #-comments skipped)")
    parser.add_argument("--corpus", choices=("rotation", "realistic"), default="rotation",
                        help="rotation: --texts-file or the built-in texts in turn (default);"
                             " realistic: 4-25 word sentences, each unique (tts_drill.corpus)")
    parser.add_argument("--seed", type=int, help="seed of the realistic corpus (default: from the"
                                                 " clock; the summary records it)")
    parser.add_argument("--out", default="requests.jsonl",
                        help="request log, one JSON object per line (default requests.jsonl)")
    parser.add_argument("--stop-file", help="stop soon after this file appears")
    parser.add_argument("--min-rms-dbfs", type=float, default=-60.0,
                        help="quieter WAV audio counts as silent, not ok (default -60)")
    parser.add_argument("--header", dest="headers", type=_header, action="append", default=[],
                        metavar="NAME:VALUE", help="extra request header (repeatable)")
    parser.add_argument("--max-in-flight", type=_positive(int), default=MAX_IN_FLIGHT,
                        help="concurrent requests; a slot finding all busy is logged as"
                             f" client_saturated (default {MAX_IN_FLIGHT})")
    parser.add_argument("--samples-out", help="recovery sampler log (JSON lines, like --out); the"
                        " sampler runs only with this, --arm-file and --fault-file (module docstring)")
    parser.add_argument("--arm-file", help="the sampler starts when this file appears")
    parser.add_argument("--fault-file", help="the sampler may stop SAMPLE_HOLD_S after this file"
                                             " appears, once its last samples were answered fast")
    parser.add_argument("--sample-interval", type=_positive(float), default=0.25,
                        help="seconds between samples (default 0.25)")
    parser.add_argument("--sample-window", type=_positive(float), default=30.0,
                        help="the sampler stops this many seconds after arming at the latest (default 30)")
    return parser


def _read_texts(parser, path):
    try:
        with open(path, encoding="utf-8") as handle:
            texts = [line.strip() for line in handle]
    except (OSError, UnicodeDecodeError) as exc:
        parser.error(f"--texts-file: cannot read {path}: {exc}")
    texts = [text for text in texts if text and not text.startswith("#")]
    if not texts:
        parser.error(f"--texts-file: {path} holds no texts")
    return texts


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.corpus == "realistic" and args.texts_file:
        parser.error("--texts-file and --corpus realistic exclude each other")
    sampler_files = (args.samples_out, args.arm_file, args.fault_file)
    if any(sampler_files) and not all(sampler_files):
        parser.error("--samples-out, --arm-file and --fault-file go together (the recovery sampler)")
    seed = args.seed if args.seed is not None else time.time_ns() // 1_000_000 % 2**31
    texts = (Corpus(seed) if args.corpus == "realistic"
             else _read_texts(parser, args.texts_file) if args.texts_file else DEFAULT_TEXTS)
    api = None
    if args.api_file:
        try:
            with open(args.api_file, encoding="utf-8") as handle:
                api = tts_probe.check_contract(json.load(handle))
        except (OSError, ValueError) as exc:
            parser.error(f"--api-file: {args.api_file}: {exc}")
    generator = LoadGenerator(
        args.url, args.out, rate=args.rate, duration=args.duration, max_requests=args.max_requests,
        timeout=args.timeout, texts=texts, stop_file=args.stop_file, min_rms_dbfs=args.min_rms_dbfs,
        headers=dict(args.headers), max_in_flight=args.max_in_flight, api=api,
        samples_out=args.samples_out, arm_file=args.arm_file, fault_file=args.fault_file,
        sample_interval=args.sample_interval, sample_window=args.sample_window)

    def on_signal(signum, _frame):
        generator.stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        summary = generator.run()
    except OSError as exc:
        print(f"loadgen: cannot write --out {args.out}: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if args.corpus == "realistic":
        summary["corpus"] = {"name": "realistic", "seed": seed}
    print(json.dumps(summary), flush=True)
    if isinstance(generator.error, tts_probe.ProbeArgumentError):
        print(f"loadgen: invalid argument: {generator.error}", file=sys.stderr)
        return 2
    if generator.error is not None:
        traceback.print_exception(generator.error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
