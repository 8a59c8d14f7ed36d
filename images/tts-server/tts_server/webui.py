"""The small WebUI served at ``/`` when ENABLE_WEBUI=true (no external assets)."""

from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tts-ha speech &middot; __INSTANCE__</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; color: #1b1f23; }
  h1 { font-size: 1.3rem; margin-bottom: .2rem; }
  .sub { color: #57606a; font-size: .9rem; margin-top: 0; }
  textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; }
  .row { display: flex; gap: 1rem; align-items: center; margin: .8rem 0; flex-wrap: wrap; }
  button { font: inherit; padding: .45rem 1.2rem; cursor: pointer; }
  #status { color: #57606a; min-height: 1.2em; }
  #status.error { color: #b42318; }
  audio { width: 100%; margin-top: .5rem; }
</style>
</head>
<body>
<h1>Text to speech</h1>
<p class="sub">instance <b id="instance">__INSTANCE__</b> &middot; tts-server __VERSION__</p>
<form id="form" autocomplete="off">
  <label for="text">Text</label>
  <textarea id="text" name="text" rows="4" maxlength="__MAXLEN__" placeholder="Type something to say"></textarea>
  <div class="row">
    <label>Voice <select id="voice" name="voice"><option value="joe">joe</option></select></label>
    <label>Speed <input id="speed" name="speed" type="range" min="0.5" max="2" step="0.1" value="1">
      <output id="speedval">1.0</output></label>
    <button id="speak" type="submit">Speak</button>
  </div>
</form>
<div id="status" role="status"></div>
<audio id="player" controls preload="auto"></audio>
<script>
(function () {
  "use strict";
  var form = document.getElementById("form");
  var text = document.getElementById("text");
  var voice = document.getElementById("voice");
  var speed = document.getElementById("speed");
  var speedval = document.getElementById("speedval");
  var statusEl = document.getElementById("status");
  var player = document.getElementById("player");
  var button = document.getElementById("speak");
  var lastUrl = null;

  function setStatus(msg, isError) {
    statusEl.textContent = msg;
    statusEl.className = isError ? "error" : "";
  }
  speed.addEventListener("input", function () { speedval.textContent = Number(speed.value).toFixed(1); });

  fetch("voices").then(function (r) { return r.json(); }).then(function (data) {
    var list = (data.voices || []).filter(function (v) { return v.available; });
    if (!list.length) { return; }
    voice.innerHTML = "";
    list.forEach(function (v) {
      var opt = document.createElement("option");
      opt.value = v.id;
      opt.textContent = v.id + " (" + v.engine + ")";
      voice.appendChild(opt);
    });
    voice.value = data["default"] || list[0].id;
  }).catch(function () { /* keep the built-in default */ });

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var value = text.value;
    if (!value.trim()) { setStatus("Type some text first.", true); return; }
    button.disabled = true;
    setStatus("Synthesizing\\u2026", false);
    var t0 = performance.now();
    fetch("tts", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: value, voice: voice.value, speed: Number(speed.value) })
    }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (e) {
          throw new Error(e.error || ("HTTP " + r.status));
        });
      }
      return r.blob();
    }).then(function (blob) {
      if (lastUrl) { URL.revokeObjectURL(lastUrl); }
      lastUrl = URL.createObjectURL(blob);
      player.src = lastUrl;
      player.load();
      var p = player.play();
      if (p && p.catch) { p.catch(function () { /* autoplay may be blocked; controls remain */ }); }
      setStatus("Done in " + Math.round(performance.now() - t0) + " ms (" + blob.size + " bytes).", false);
    }).catch(function (err) {
      setStatus("Error: " + err.message, true);
    }).then(function () { button.disabled = false; });
  });
})();
</script>
</body>
</html>
"""


def render(instance: str, version: str, max_chars: int) -> bytes:
    page = (
        _PAGE.replace("__INSTANCE__", html.escape(instance))
        .replace("__VERSION__", html.escape(version))
        .replace("__MAXLEN__", str(int(max_chars)))
    )
    return page.encode("utf-8")
