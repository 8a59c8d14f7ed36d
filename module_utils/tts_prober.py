#!/usr/bin/env python3
"""Resident prober: one process per node that judges whether this node speaks, many readers.

keepalived's vrrp_script forks a new check every whole second; this daemon stays resident and
probes at a sub-second tick with the kit's one probe library (tts_probe.py: the API contract,
probe(), the busy-but-speaking evidence). It publishes one verdict to:

- keepalived, through a track_file (``0`` healthy, ``1`` failed; weight 0 in the vrrp_instance
  makes a non-zero value FAULT at once, keepalived.conf(5) "Track files"; keepalived watches
  the file's directory with inotify, so the rename of a new file is read at once);
- every HAProxy, through the agent protocol on a TCP port (``up``/``down``/``drain`` lines), so
  the synthetic probe load does not grow with the number of routers;
- the transition log (one JSON line per verdict change, type PROBER, as keepalived-notify
  writes its VRRP lines) and a JSON state file with the last figures.

Each tick (``interval``, 0.25 s by default):

1. a cheap *ping*: the evidence counter (HAProxy stats CSV, or the server's Prometheus page,
   or ``GET /`` where it has neither). A refused or reset connection, or a connection closed
   without an answer (docker-proxy in front of a dead container), is a crash: the verdict fails
   at once. Its value feeds the busy-but-speaking rule (tts_probe.record_evidence).
2. a *synthesis* (tts_probe.probe with the contract's probe request) when one is due: every
   ``synthesis_interval``; every ``backoff_interval`` while real answers prove the instance
   (the counter grew within ``backoff_window``) and the last synthesis passed; at once when the
   ping did not answer in time, or while the verdict is not settled UP.

Hysteresis is in time: the verdict falls once failures have been observed for ``fall_s`` (the
first failure to the latest, no success between), and rises once successes have lasted
``rise_s``. A crash bypasses ``fall_s``. A stall is judged by the timeouts.

Standard library only (runs on bare hosts as a systemd service, see bin/tts-ha-prober).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

import tts_probe

__all__ = ["Prober", "Settings", "agent_answer", "classify_failure", "load_settings", "main",
           "mark_failed", "ping", "sd_notify"]

UP, DOWN, UNKNOWN = "UP", "DOWN", "UNKNOWN"
# Failures a busy server cannot explain and that waiting cannot change: the process is gone.
_CRASH_PREFIXES = ("connection refused", "network error", "response body truncated")

DEFAULTS = {
    "url": "http://127.0.0.1:8000",
    "api_file": "",
    "interval": 0.25,
    "timeout": 0.8,
    "ping_timeout": 0.3,
    "fall_s": 0.5,
    "rise_s": 1.0,
    "synthesis_interval": 1.0,
    "backoff_interval": 2.0,
    "backoff_window": 1.0,
    "busy_window": tts_probe.EVIDENCE_WINDOW_S,
    "evidence_url": "",
    "evidence_kind": "metrics",
    "evidence_metric": "",
    "ping_path": "",
    "router_stats_url": "",
    "router_backend": "tts",
    "track_file": "/run/tts-ha/prober/verdict",
    "state_file": "/run/tts-ha/prober/state.json",
    "evidence_state": "/run/tts-ha/prober/evidence.json",
    "transition_log": "",
    "host": socket.gethostname(),
    "agent_bind": "",
    "agent_port": 0,
    "watchdog": True,
    # After an unexpected death (or a re-exec for new code) a healthy verdict is kept this long
    # for the restarted prober to confirm; 0: a restarted prober starts from UNKNOWN (failed).
    "resume_s": 0.0,
}


class Settings:
    """The prober's settings: DEFAULTS overridden by a JSON config file and/or keywords."""

    def __init__(self, **values):
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(DEFAULTS))}")
        merged = {**DEFAULTS, **values}
        for name in ("interval", "timeout", "ping_timeout", "synthesis_interval", "backoff_interval"):
            if not isinstance(merged[name], (int, float)) or isinstance(merged[name], bool) or merged[name] <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {merged[name]!r}")
        for name in ("fall_s", "rise_s", "backoff_window", "busy_window", "resume_s"):
            if not isinstance(merged[name], (int, float)) or isinstance(merged[name], bool) or merged[name] < 0:
                raise ValueError(f"{name} must be seconds (>= 0), got {merged[name]!r}")
        if merged["evidence_kind"] not in ("haproxy", "metrics"):
            raise ValueError(f"evidence_kind must be haproxy or metrics, got {merged['evidence_kind']!r}")
        port = merged["agent_port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"agent_port must be a TCP port (0: no agent), got {port!r}")
        self.__dict__.update(merged)

    def as_dict(self):
        return {name: getattr(self, name) for name in DEFAULTS}


def load_settings(path=None, **overrides):
    values = {}
    if path:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of settings")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def classify_failure(result):
    """'crash' (refused, reset, closed without an answer: fail at once), 'busy' (a server that
    accepted and then queued or shed the probe, see tts_probe.is_busy_not_broken) or 'fail'."""
    if result.get("healthy"):
        return None
    reason = result.get("reason") or ""
    if reason.startswith(_CRASH_PREFIXES):
        return "crash"
    if tts_probe.is_busy_not_broken(result):
        return "busy"
    return "fail"


def ping(url, timeout, kind="any", metric=None):
    """One cheap GET: {'outcome': ok|crash|timeout|error, 'value', 'detail', 'ms'}.

    kind "haproxy"/"metrics" also reads the evidence counter from the page (tts_probe's
    read_counter rules); "any" accepts any HTTP answer (the process is there)."""
    started = time.monotonic()
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    outcome, value, detail, status, body = "ok", None, "", None, None
    try:
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        conn.request("GET", target, headers={"User-Agent": "tts-ha-prober", "Connection": "close"})
        response = conn.getresponse()
        status = response.status
        body = response.read(4 * 1024 * 1024).decode("utf-8", "replace")
        if kind in ("haproxy", "metrics") and status == 200:
            value = tts_probe.counter_from_text(kind, body, metric)
    except socket.timeout:
        outcome, detail = "timeout", f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        outcome, detail = "crash", "connection refused"
    except (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead) as exc:
        outcome, detail = "crash", f"connection lost: {exc.__class__.__name__}"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        outcome, detail = "error", f"{exc.__class__.__name__}: {exc}"
    finally:
        conn.close()
    return {"outcome": outcome, "value": value, "status": status, "detail": detail,
            "ms": round((time.monotonic() - started) * 1000.0, 1), "body": body}


def router_backend_up(csv_text, backend):
    """True when HAProxy's stats CSV shows the backend with at least one server UP."""
    lines = (csv_text or "").splitlines()
    if not lines or not lines[0].startswith("# "):
        return False
    header = lines[0][2:].split(",")
    try:
        col_px, col_sv, col_status = header.index("pxname"), header.index("svname"), header.index("status")
    except ValueError:
        return False
    for line in lines[1:]:
        cells = line.split(",")
        if len(cells) > col_status and cells[col_px] == backend and cells[col_sv] not in ("FRONTEND", "BACKEND"):
            if cells[col_status].startswith("UP"):
                return True
    return False


def agent_answer(verdict):
    """The HAProxy agent-check line for a verdict: "up" (ready, full weight) or "down"."""
    return "up ready\n" if verdict == UP else "down\n"


def sd_notify(message):
    """Send a datagram to systemd's NOTIFY_SOCKET (sd_notify(3)), stdlib only. False: no socket."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
        except OSError:
            return False
    return True


def _atomic_write(path, text, mode=0o644):
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    # A rename is one IN_MOVED_TO event: keepalived reads the new value whole.
    os.replace(tmp, path)


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _append_line(path, record):
    line = json.dumps(record, sort_keys=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    print(line, file=sys.stderr, flush=True)


def mark_failed(track_file, transition_log="", host=None, reason="prober stopped"):
    """Write a failing value into the track file (ExecStopPost: the prober died or stopped).

    keepalived treats a deleted track file as 0 (healthy), so the file is overwritten, never
    removed."""
    _atomic_write(track_file, "1\n")
    if transition_log:
        _append_line(transition_log, {"ts": time.time(), "host": host or socket.gethostname(),
                                      "type": "PROBER", "instance": "prober", "state": "STOPPED",
                                      "priority": None, "reason": reason})


def resume_path(track_file):
    """Where the stop hook (tts-ha-prober-mark-failed) and a re-exec leave the time from which a
    restarted prober may keep the last healthy verdict."""
    return os.path.join(os.path.dirname(track_file) or ".", "resume")


def _code_stamp():
    """What identifies the running code: a reload re-executes the prober when this changed."""
    stamp = []
    for path in (__file__, getattr(tts_probe, "__file__", None), sys.argv[0] if sys.argv else None):
        try:
            st = os.stat(path)
            stamp.append((path, st.st_mtime_ns, st.st_size))
        except (OSError, TypeError):
            stamp.append((path, None, None))
    return stamp


class Verdict:
    """Fall/rise hysteresis in time for one judged target; ``on_change(old, new, reason)``."""

    def __init__(self, name, fall_s, rise_s, clock, on_change):
        self.name = name
        self.fall_s = fall_s
        self.rise_s = rise_s
        self.clock = clock
        self.on_change = on_change
        self.state = UNKNOWN
        self.since = time.time()
        self.reason = "starting"
        self.fail_first = None  # clock time of the first failure of the current streak
        self.ok_first = None    # clock time of the first success of the current streak

    def observe(self, ok, reason, at=None):
        at = self.clock() if at is None else at
        self.reason = reason
        if ok:
            self.fail_first = None
            if self.ok_first is None:
                self.ok_first = at
            if self.state != UP and at - self.ok_first >= self.rise_s - 1e-6:
                self._set(UP, reason)
        else:
            self.ok_first = None
            if self.fail_first is None:
                self.fail_first = at
            if self.state != DOWN and at - self.fail_first >= self.fall_s - 1e-6:
                self._set(DOWN, reason)

    def fail_now(self, reason):
        """A crash: no hysteresis."""
        self.reason = reason
        self.ok_first = None
        if self.fail_first is None:
            self.fail_first = self.clock()
        if self.state != DOWN:
            self._set(DOWN, reason)

    def _set(self, state, reason):
        previous, self.state, self.since = self.state, state, time.time()
        self.on_change(self, previous, state, reason)


class Prober:
    """Judges the instance (synthesis + ping) and, in router mode, the local router (stats);
    ``tick()`` runs one round and publishes. The track file follows the router verdict when a
    router is judged, else the instance verdict; the agent port always answers the instance's."""

    def __init__(self, settings, clock=time.monotonic, wall=time.time):
        self.s = settings
        self.clock = clock
        self.wall = wall
        self.lock = threading.Lock()
        self.contract = None
        self.probe_args = None
        self._load_contract()
        self.instance = Verdict("instance", settings.fall_s, settings.rise_s, clock, self._changed)
        self.router = Verdict("router", settings.fall_s, settings.rise_s, clock, self._changed)
        self.last_synthesis = None  # clock time of the start of the last synthesis
        self.last_synthesis_ok = False
        self.last_result = None
        self.last_ping = None
        self.last_router_ping = None
        self.evidence_since = None  # seconds since the counter last grew, at the last sample
        self.last_value = None
        self.traffic_at = None      # wall time real traffic last grew the counter
        self.synthesised_since_ping = False
        self.counts = {"ticks": 0, "pings": 0, "syntheses": 0, "synthesis_failures": 0,
                       "busy_passes": 0, "crashes": 0, "backed_off": 0, "transitions": 0}
        self.started = wall()
        self.agent_server = None
        self.busy = False
        self.resumed_from = None  # wall time the kept verdict dates from, until confirmed
        self._resume()

    # --- settings ---------------------------------------------------------------------------
    def _load_contract(self):
        s = self.s
        if s.api_file:
            with open(s.api_file, encoding="utf-8") as handle:
                self.contract = tts_probe.check_contract(json.load(handle))
        else:
            self.contract = tts_probe.resolve_contract("reference")
        self.lane = bool(self.contract["probe"].get("lane"))
        self.probe_args = tts_probe.contract_probe_arguments(self.contract, s.url) if s.url else None
        # The ping: the evidence counter, else the contract's metrics page, else GET / (any answer).
        self.ping_url, self.ping_kind, self.metric = None, "any", None
        if s.url:
            base = urlsplit(s.url)
            if s.evidence_url:
                self.ping_url, self.ping_kind = s.evidence_url, s.evidence_kind
                self.metric = s.evidence_metric or self.contract["evidence"]["metric"] or None
            elif self.contract["evidence"]["metrics_path"]:
                self.ping_url = f"{base.scheme}://{base.netloc}{self.contract['evidence']['metrics_path']}"
                self.ping_kind, self.metric = "metrics", self.contract["evidence"]["metric"]
            else:
                self.ping_url = f"{base.scheme}://{base.netloc}{s.ping_path or '/'}"
        if hasattr(self, "instance"):
            for verdict in (self.instance, self.router):
                verdict.fall_s, verdict.rise_s = s.fall_s, s.rise_s

    # --- taking over from a previous prober ------------------------------------------------
    def _resume(self):
        """Keep the healthy verdict the previous prober published, if its stop hook (or a
        re-exec) allowed it less than ``resume_s`` ago and the track file still says 0: the
        first check of this prober confirms or fails it (``_settle_resume``)."""
        s = self.s
        if s.resume_s <= 0:
            return
        path = resume_path(s.track_file)
        try:
            with open(path, encoding="utf-8") as handle:
                first = float(handle.read().strip())
            with open(s.track_file, encoding="utf-8") as handle:
                published = handle.read().strip()
        except (OSError, ValueError):
            return
        age = self.wall() - first
        if published != "0" or not 0 <= age <= s.resume_s:
            _remove(path)
            return
        reason = f"resumed: healthy verdict of the prober that ended {age:.1f} s ago, kept until checked"
        self._keep((self.instance, self.router), first, reason)

    def _settle_resume(self):
        """After a tick: a kept verdict is confirmed by a success of this prober's own, ends if
        it fell, and fails once ``resume_s`` has passed without either."""
        if self.resumed_from is None:
            return
        verdict = self.published
        if verdict.state == UP and verdict.ok_first is None:
            if self.wall() - self.resumed_from <= self.s.resume_s:
                return
            verdict.fail_now(f"restarted prober could not confirm the kept verdict within {self.s.resume_s:g} s")
        elif verdict.state == UP:
            verdict.since = self.wall()
            self._changed(verdict, "RESUMED", UP, f"kept verdict confirmed by this prober's check,"
                          f" {verdict.since - self.resumed_from:.1f} s after the previous one ended")
        self.resumed_from = None
        _remove(resume_path(self.s.track_file))

    def reload(self, settings):
        """New settings in place (SIGHUP): the verdicts and their history stay. The agent
        listener follows a changed port or address (a pair switched to agent-check mode must
        answer its routers without a restart that would fail the node)."""
        old, was = self.s, self.published
        moved = (old.agent_port, old.agent_bind) != (settings.agent_port, settings.agent_bind)
        self.s = settings
        try:
            self._load_contract()
            if moved:
                self.stop_agent()
                self.start_agent()
        except (OSError, ValueError):
            # Refused as a whole (unreadable contract, port taken): back to the old settings.
            self.s = old
            self._load_contract()
            if moved and self.agent_server is None:
                self.start_agent()
            raise
        self._carry_over(was)

    def _carry_over(self, was):
        """A reload that switches what keepalived reads (router mode on or off) would publish a
        verdict nobody has judged yet (UNKNOWN: 1, FAULT, the VIP moves off a healthy holder).
        A healthy one is carried over instead, until the new target's first check confirms it
        (``_settle_resume``, bounded by ``resume_s``)."""
        now = self.published
        if now is was or was.state != UP or now.state == UP or self.s.resume_s <= 0:
            return
        self._keep((now,), self.wall(), f"carried over from the {was.name} verdict at a reload, kept until checked")

    def _keep(self, verdicts, since, reason):
        """Hold verdicts UP until a check of this prober settles them (``_settle_resume``)."""
        previous = self.published.state
        for verdict in verdicts:
            verdict.state, verdict.reason, verdict.since = UP, reason, self.wall()
            verdict.ok_first = verdict.fail_first = None
        self.resumed_from = since
        self._changed(self.published, previous, "RESUMED", reason)

    @property
    def published(self):
        """The verdict keepalived reads."""
        return self.router if self.s.router_stats_url else self.instance

    # --- one tick ---------------------------------------------------------------------------
    def tick(self):
        self.counts["ticks"] += 1
        if self.s.router_stats_url:
            self._router_tick()
        if self.probe_args is not None:
            self._instance_tick()
        self._settle_resume()
        self._publish()

    def _router_tick(self):
        s = self.s
        result = ping(s.router_stats_url, s.ping_timeout, "haproxy")
        self.counts["pings"] += 1
        self.last_router_ping = {k: v for k, v in result.items() if k != "body"}
        if result["outcome"] == "crash":
            self.counts["crashes"] += 1
            self.router.fail_now(f"crash: router stats {result['detail']}")
        elif result["outcome"] != "ok" or result["status"] != 200:
            self.router.observe(False, f"router stats: {result['detail'] or result['status']}")
        elif not router_backend_up(result["body"], s.router_backend):
            self.router.observe(False, f"router has no server UP in backend {s.router_backend}")
        else:
            self.router.observe(True, "router answers with a server UP")

    def _instance_tick(self):
        s = self.s
        result = ping(self.ping_url, s.ping_timeout, self.ping_kind, self.metric)
        self.counts["pings"] += 1
        self.last_ping = {k: v for k, v in result.items() if k != "body"}
        if result["outcome"] == "crash":
            self.counts["crashes"] += 1
            self.instance.fail_now(f"crash: {result['detail']} ({self.ping_url})")
            return
        ping_slow = result["outcome"] != "ok"
        if self.ping_kind != "any":
            self._record_evidence(result["value"])
        if self._synthesis_due(ping_slow):
            # A ping that got no answer in time opens the failure streak if the synthesis that
            # follows fails too (a stall is judged from its first sign, not from the second).
            self._synthesise(suspect_at=self.clock() if ping_slow else None)
        else:
            self.counts["backed_off"] += 1

    def _record_evidence(self, value):
        if value is None:
            return
        now = self.wall()
        since = tts_probe.record_evidence(self.s.evidence_state, value, now=now,
                                          window_s=max(self.s.busy_window, self.s.backoff_window))
        self.evidence_since = since
        # Real traffic, for the back-off: growth between two pings with no synthesis of ours in
        # between (the server counts our own probe's audio too).
        if self.last_value is not None and value > self.last_value and not self.synthesised_since_ping:
            self.traffic_at = now
        self.last_value = value
        self.synthesised_since_ping = False

    def _traffic_proves(self):
        return self.traffic_at is not None and self.wall() - self.traffic_at <= self.s.backoff_window

    def _synthesis_due(self, ping_slow):
        v = self.instance
        if (ping_slow or v.state != UP or v.fail_first is not None or self.last_synthesis is None
                or self.resumed_from is not None):  # a kept verdict waits for a check of its own
            return True
        every = self.s.synthesis_interval
        if self._traffic_proves() and self.last_synthesis_ok:
            every = max(every, self.s.backoff_interval)
        return self.clock() - self.last_synthesis >= every - 1e-3

    def _synthesise(self, suspect_at=None):
        s = self.s
        self.last_synthesis = self.clock()
        self.synthesised_since_ping = True
        self.counts["syntheses"] += 1
        try:
            result = tts_probe.probe(**self.probe_args, timeout=s.timeout)
        except tts_probe.ProbeArgumentError as exc:
            result = {"healthy": False, "reason": f"invalid probe argument: {exc}", "status": None}
        kind = classify_failure(result)
        if kind == "busy" and not self.lane:
            since = self.evidence_since
            if since is not None and since <= s.busy_window:
                result = dict(result, healthy=True, busy=True,
                              reason=f"busy but speaking: counter grew {since:.1f} s ago (probe: {result['reason']})")
                self.counts["busy_passes"] += 1
                kind = None
        self.last_result = {k: result.get(k) for k in ("healthy", "reason", "status", "latency_ms",
                                                        "duration_s", "rms_dbfs", "instance", "busy")}
        self.busy = bool(result.get("busy"))
        self.last_synthesis_ok = kind is None
        if kind is None:
            self.instance.observe(True, result["reason"])
        elif kind == "crash":
            self.counts["synthesis_failures"] += 1
            self.counts["crashes"] += 1
            self.instance.fail_now(f"crash: {result['reason']}")
        else:
            self.counts["synthesis_failures"] += 1
            if suspect_at is not None and self.instance.fail_first is None:
                self.instance.observe(False, f"ping: {self.last_ping['detail']}", at=suspect_at)
            self.instance.observe(False, result["reason"])

    # --- transitions ------------------------------------------------------------------------
    def _changed(self, verdict, previous, state, reason):
        self.counts["transitions"] += 1
        if not self.s.transition_log:
            return
        try:
            _append_line(self.s.transition_log, {
                "ts": verdict.since, "host": self.s.host, "type": "PROBER",
                "instance": verdict.name, "state": state, "previous": previous,
                "priority": None, "reason": reason,
                "published": verdict is self.published})
        except OSError as exc:
            print(f"tts-ha-prober: cannot write {self.s.transition_log}: {exc}", file=sys.stderr)

    # --- publishing -------------------------------------------------------------------------
    def track_value(self):
        return 0 if self.published.state == UP else 1

    def agent_line(self):
        with self.lock:
            return agent_answer(self.instance.state)

    def state(self):
        def verdict(v):
            return {"state": v.state, "since": v.since, "reason": v.reason}

        return {
            "verdict": self.published.state, "since": self.published.since,
            "reason": self.published.reason, "track_value": self.track_value(),
            "instance": verdict(self.instance),
            "router": verdict(self.router) if self.s.router_stats_url else None,
            "host": self.s.host, "url": self.s.url, "ping_url": self.ping_url, "lane": self.lane,
            "busy": self.busy,
            "evidence_grew_s_ago": None if self.evidence_since is None else round(self.evidence_since, 2),
            "last_synthesis": self.last_result, "last_ping": self.last_ping,
            "last_router_ping": self.last_router_ping,
            "counts": dict(self.counts), "started": self.started, "updated": self.wall(),
            "settings": {k: v for k, v in self.s.as_dict().items() if k != "host"},
        }

    def _publish(self):
        s = self.s
        try:
            _atomic_write(s.track_file, f"{self.track_value()}\n")
        except OSError as exc:
            print(f"tts-ha-prober: cannot write {s.track_file}: {exc}", file=sys.stderr)
        if s.state_file:
            try:
                _atomic_write(s.state_file, json.dumps(self.state(), sort_keys=True) + "\n")
            except OSError as exc:
                print(f"tts-ha-prober: cannot write {s.state_file}: {exc}", file=sys.stderr)

    # --- the agent port ---------------------------------------------------------------------
    def start_agent(self):
        """HAProxy agent-check: each connection gets one line (up/down) and is closed."""
        if not self.s.agent_port:
            return None
        listener = socket.create_server((self.s.agent_bind or "", self.s.agent_port))
        listener.settimeout(0.5)
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    conn, _peer = listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                try:
                    conn.settimeout(0.5)
                    conn.sendall(self.agent_line().encode())
                except OSError:
                    pass
                finally:
                    conn.close()

        thread = threading.Thread(target=serve, name="tts-ha-prober-agent", daemon=True)
        thread.start()
        self.agent_server = (listener, stop, thread)
        return listener

    def stop_agent(self):
        if self.agent_server is not None:
            listener, stop, thread = self.agent_server
            stop.set()
            listener.close()
            thread.join(2)
            self.agent_server = None


def run(settings, stop_event=None, max_ticks=None, settings_path=None):
    """The daemon loop: tick every interval, ping systemd's watchdog after each tick."""
    prober = Prober(settings)
    stop_event = stop_event or threading.Event()
    reload_requested = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())
    prober.start_agent()
    sd_notify("READY=1\nSTATUS=probing")
    # A re-exec (below) stretched systemd's watchdog for the start: back to the unit's own.
    if os.environ.get("WATCHDOG_USEC"):
        sd_notify(f"WATCHDOG_USEC={os.environ['WATCHDOG_USEC']}")
    code = _code_stamp()
    ticks = 0
    try:
        while not stop_event.is_set():
            started = time.monotonic()
            if reload_requested.is_set() and settings_path and _code_stamp() != code:
                # New code on disk (the role installed a new library): the same process runs it,
                # keeping the node's healthy verdict for the new image to confirm (resume_s).
                reexec(prober)
            if reload_requested.is_set() and settings_path:
                reload_requested.clear()
                try:
                    prober.reload(load_settings(settings_path))
                    print("tts-ha-prober: settings reloaded", file=sys.stderr, flush=True)
                except (OSError, ValueError) as exc:
                    print(f"tts-ha-prober: reload refused, keeping the old settings: {exc}", file=sys.stderr)
            try:
                prober.tick()
            except Exception as exc:  # noqa: BLE001 - a bug must fail the node, not freeze the verdict
                prober.published.fail_now(f"internal error: {exc.__class__.__name__}: {exc}")
                prober._publish()
            if prober.s.watchdog:
                sd_notify(f"WATCHDOG=1\nSTATUS={prober.published.state}: {prober.published.reason}"[:200])
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            stop_event.wait(max(0.0, prober.s.interval - (time.monotonic() - started)))
    finally:
        prober.stop_agent()
    return prober


def reexec(prober):
    """Replace this process with a fresh one of the same command (same PID for systemd)."""
    s = prober.s
    if s.resume_s > 0 and prober.published.state == UP:
        try:
            _atomic_write(resume_path(s.track_file), f"{time.time()}\n")
        except OSError as exc:
            print(f"tts-ha-prober: cannot write the resume mark: {exc}", file=sys.stderr)
    prober.stop_agent()
    sd_notify("RELOADING=1\nSTATUS=re-executing for new code\nWATCHDOG_USEC=10000000")
    print("tts-ha-prober: new code on disk, re-executing", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, *sys.argv])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tts-ha-prober", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="JSON settings file (SIGHUP re-reads it)")
    parser.add_argument("--url", help="base URL of what clients reach on this node")
    parser.add_argument("--api-file", help="API contract (JSON)")
    parser.add_argument("--track-file")
    parser.add_argument("--state-file")
    parser.add_argument("--transition-log")
    parser.add_argument("--agent-port", type=int)
    parser.add_argument("--interval", type=float)
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--mark-failed", action="store_true", help="write 1 into the track file"
                        " and log it (systemd ExecStopPost), then exit")
    parser.add_argument("--status", action="store_true", help="print the state file and exit")
    parser.add_argument("--max-ticks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, url=args.url, api_file=args.api_file, track_file=args.track_file,
                                 state_file=args.state_file, transition_log=args.transition_log,
                                 agent_port=args.agent_port, interval=args.interval, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        print(json.dumps({"ok": False, "error": f"invalid settings: {exc}"}), flush=True)
        return 2
    if args.mark_failed:
        result = os.environ.get("SERVICE_RESULT", "stopped")
        mark_failed(settings.track_file, settings.transition_log, settings.host,
                    reason=f"prober ended ({result}, exit {os.environ.get('EXIT_STATUS', '?')})")
        return 0
    if args.status:
        try:
            with open(settings.state_file, encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError) as exc:
            print(json.dumps({"ok": False, "error": f"no state: {exc}"}))
            return 1
        state["age_s"] = round(time.time() - state.get("updated", 0), 2)
        print(json.dumps(state, indent=2, sort_keys=True))
        return 0 if state.get("verdict") == UP else 1
    try:
        run(settings, max_ticks=args.max_ticks, settings_path=args.config)
    except (OSError, ValueError) as exc:
        print(f"tts-ha-prober: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
