"""Minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (stdlib only).

Chromium reads NUL-terminated JSON commands from fd 3 and writes NUL-terminated JSON replies and
events to fd 4, so no websocket library is needed.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--no-default-browser-check", "--mute-audio",
    "--autoplay-policy=no-user-gesture-required", "--remote-debugging-pipe",
]


class CDPError(RuntimeError):
    pass


class ChromiumPipe:
    def __init__(self, binary: str, user_data_dir: str, extra_flags: Optional[List[str]] = None,
                 log_path: Optional[str] = None) -> None:
        cmd_r, cmd_w = os.pipe()   # we write commands -> chromium reads fd 3
        res_r, res_w = os.pipe()   # chromium writes fd 4 -> we read
        # move the child's ends above 10 so dup2 onto 3/4 cannot clobber each other
        child_in = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
        os.close(cmd_r)
        os.close(res_w)

        def wire_fds():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", *(extra_flags or []), "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     preexec_fn=wire_fds, pass_fds=(3, 4, child_in, child_out),
                                     start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        self._w = os.fdopen(cmd_w, "wb", buffering=0)
        self._r = os.fdopen(res_r, "rb", buffering=0)
        self._next_id = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: Dict[int, Dict[str, Any]] = {}
        self.events: List[Dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._r.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._replies[-1] = {"closed": True}
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw.decode("utf-8"))
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def send(self, method: str, params: Optional[Dict[str, Any]] = None, session_id: Optional[str] = None,
             timeout: float = 30.0) -> Dict[str, Any]:
        with self._lock:
            self._next_id += 1
            mid = self._next_id
        msg: Dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        self._w.write(json.dumps(msg).encode("utf-8") + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                if -1 in self._replies:
                    raise CDPError(f"browser closed the pipe while waiting for {method}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"timeout waiting for {method}")
                self._cond.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def evaluate(self, session_id: str, expression: str, timeout: float = 30.0) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session_id, timeout)
        if "exceptionDetails" in res:
            raise CDPError(f"JS exception: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def open_page(self, url: str) -> str:
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (CDPError, OSError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for fh in (self._w, self._r):
            try:
                fh.close()
            except OSError:
                pass
        if self._log is not subprocess.DEVNULL:
            self._log.close()
