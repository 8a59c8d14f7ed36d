"""Ansible module: is the TTS service really speaking? (logic in module_utils/tts_probe.py)"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tts_synthesis_check
short_description: Check that a TTS endpoint really synthesises audio
description:
  - 'Sends a tiny synthesis request (by default C({"text": "a"})) to O(url) and demands real audio
    back, because an endpoint such as C(/health) answering C({"status": "ok"}) says nothing about
    whether the model can speak.'
  - "The response must have an expected status (O(status_code)), a Content-Type starting with
    O(content_type_prefix) and a body recognised as WAV, MP3, OGG or FLAC. WAV audio is also
    measured: at least O(min_duration) seconds long and an RMS level of at least O(min_rms_dbfs)."
  - Can keep retrying until the endpoint is healthy (O(wait_timeout)), for example while a model
    loads, and can demand several healthy checks in a row (O(consecutive_successes)), for example
    before failing back to a former primary.
  - The request is made from the target host; use C(delegate_to) to probe from elsewhere.
  - The checks are those of C(module_utils/tts_probe.py), shared with the on-host check
    C(bin/tts-synthesis-check) that Keepalived runs.
author:
  - tts-ha maintainers (!UNKNOWN)
notes:
  - Probing is read-only, so the module probes in check mode too and reports the real verdict.
    It never reports a change.
  - Environment proxy settings are ignored on purpose, the check has to reach the instance itself.
  - 'The request carries C(Cache-Control: no-cache) so that a server-side audio cache cannot answer
    for the model.'
  - The total run time is at most O(wait_timeout) plus one O(timeout).
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: The probe is read-only, so it also runs in check mode and reports the real verdict.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description:
      - Synthesis endpoint, an C(http://) or C(https://) URL with a host.
      - With O(api), the server's base URL (for example C(http://10.0.0.5:8000)); the contract
        adds the path.
    type: str
    required: true
  api:
    description:
      - 'The TTS API contract, as the C(tts_api) role resolves it (C(tts_api_contract)): method,
        path, where the text travels, extra fields, headers and auth, and what a good answer is
        (status, content type, format). The probe text is its C(probe.text) unless O(text) is
        set; its C(probe.headers) are sent.'
      - Mutually exclusive with O(method). Mutually exclusive with O(payload). Mutually exclusive
        with O(status_code). Mutually exclusive with O(content_type_prefix).
    type: dict
  method:
    description:
      - HTTP method of the synthesis request, V(POST) when not set.
      - Mutually exclusive with O(api).
    type: str
  payload:
    description:
      - 'Request body. A dict or list is sent as JSON with C(Content-Type: application/json); a
        string is sent as it is.'
      - 'Use it for APIs that need other fields, for example C({"input": "a", "voice": "alloy"}).'
      - Mutually exclusive with O(text). Mutually exclusive with O(api).
    type: raw
  text:
    description:
      - 'Text to synthesise. Without O(api) it is sent as C({"text": TEXT}) when O(payload) is
        not set (default V(a)); with O(api) it replaces the probe text of the contract.'
      - Mutually exclusive with O(payload).
    type: str
  headers:
    description:
      - Extra request headers, for example an API key. They replace the defaults of the same name.
    type: dict
  timeout:
    description:
      - Seconds allowed for one check as a whole, DNS lookup, connect, TLS handshake, request and
        every byte of the response included. Must be greater than 0.
    type: float
    default: 3.0
  validate_certs:
    description:
      - Verify the server's TLS certificate and host name.
    type: bool
    default: true
  ca_path:
    description:
      - CA certificate bundle (file) or hashed certificate directory used to verify the server.
    type: path
  client_cert:
    description:
      - Client certificate (PEM) for mutual TLS. It may also contain the key.
    type: path
  client_key:
    description:
      - Client private key (PEM) when it is not inside O(client_cert). Requires O(client_cert).
    type: path
  status_code:
    description:
      - HTTP status codes that count as success, V([200]) when not set.
      - Mutually exclusive with O(api).
    type: list
    elements: int
  content_type_prefix:
    description:
      - Required start of the response Content-Type (case-insensitive), V(audio/) when not set.
        An empty string skips this check.
      - Mutually exclusive with O(api).
    type: str
  min_duration:
    description:
      - Shortest acceptable WAV audio, in seconds. Not measured for MP3, OGG and FLAC.
    type: float
    default: 0.02
  min_rms_dbfs:
    description:
      - Quietest acceptable RMS level of WAV audio, in dBFS (a full-scale sine is -3 dBFS, digital
        silence is reported as -120). Rejects servers that return silence.
    type: float
    default: -60.0
  max_latency_ms:
    description:
      - Slowest acceptable check, in milliseconds, from connect to the last byte. No limit when
        not set.
    type: float
  instance_header:
    description:
      - Response header naming the instance that answered; its value is returned as RV(instance).
    type: str
    default: X-TTS-Instance
  follow_redirects:
    description:
      - Follow up to 5 redirects. 301, 302, 307 and 308 repeat the synthesis request at the new
        location, 303 fetches it with GET.
      - When false, a redirect is unhealthy and the reason names its C(Location).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to keep checking until the endpoint is healthy. V(0) makes a single check.
      - Roles waiting for a model to load use about V(180).
      - A definitive answer (404, 405, 501, 401/403, or a 400 naming a missing field) ends the
        wait at once with a message naming the contract field to fix.
    type: float
    default: 0.0
  wait_interval:
    description:
      - Seconds to wait between two checks when O(wait_timeout) is set. Must be greater than 0.
    type: float
    default: 2.0
  consecutive_successes:
    description:
      - Number of healthy checks in a row needed to succeed; any unhealthy check resets the count.
      - Values above V(1) need O(wait_timeout) long enough for that many checks.
    type: int
    default: 1
  report_only:
    description:
      - When true, an unhealthy endpoint is reported with RV(healthy=false) instead of failing
        the task.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Check that the TTS instance on this node speaks
  tts_synthesis_check:
    url: http://127.0.0.1:8000/tts

- name: Check a server through the kit's API contract (tts_api role)
  tts_synthesis_check:
    url: "http://{{ ansible_host }}:5002"
    api: "{{ tts_api_contract }}"
    wait_timeout: 300

- name: Wait up to 3 minutes for the model to load after a deployment
  tts_synthesis_check:
    url: "http://{{ ansible_host }}:8000/tts"
    wait_timeout: 180
    wait_interval: 2

- name: Failback gate, the former primary must answer 3 times in a row
  tts_synthesis_check:
    url: "http://{{ ansible_host }}:8000/tts"
    consecutive_successes: 3
    wait_timeout: 60
    max_latency_ms: 2000

- name: Probe the OpenAI-compatible endpoint through the VIP, reporting instead of failing
  tts_synthesis_check:
    url: https://tts.example.internal/v1/audio/speech
    payload:
      input: a
      voice: alloy
      response_format: wav
    headers:
      Authorization: "Bearer {{ tts_api_key }}"
    ca_path: /etc/ssl/certs/internal-ca.pem
    report_only: true
  register: speech

- name: Show which instance answered
  ansible.builtin.debug:
    msg: "{{ speech.instance }} healthy={{ speech.healthy }} ({{ speech.reason }})"
"""

RETURN = r"""
healthy:
  description: Overall verdict; with O(consecutive_successes), true only once enough checks in a row passed.
  returned: always
  type: bool
  sample: true
reason:
  description: 'V(ok), or what failed, with figures (several failures are joined by C(; )).'
  returned: always
  type: str
  sample: "audio is silent: rms -120.0 dBFS < min_rms_dbfs -60 dBFS"
url:
  description: The URL that was probed.
  returned: always
  type: str
  sample: http://127.0.0.1:8000/tts
status:
  description: HTTP status of the last check, null when no response arrived.
  returned: always
  type: int
  sample: 200
content_type:
  description: Content-Type of the last response.
  returned: always
  type: str
  sample: audio/wav
bytes:
  description: Size of the last response body.
  returned: always
  type: int
  sample: 13274
latency_ms:
  description: Total time of the last check, in milliseconds.
  returned: always
  type: float
  sample: 182.4
audio_format:
  description: Format recognised from the body, V(wav), V(mp3), V(ogg), V(flac) or null.
  returned: always
  type: str
  sample: wav
sample_rate:
  description: Sample rate of WAV audio, in Hz.
  returned: always
  type: int
  sample: 22050
channels:
  description: Channel count of WAV audio.
  returned: always
  type: int
  sample: 1
duration_s:
  description: Length of WAV audio, in seconds.
  returned: always
  type: float
  sample: 0.3018
rms_dbfs:
  description: RMS level of WAV audio, in dBFS.
  returned: always
  type: float
  sample: -18.42
instance:
  description: Value of the O(instance_header) response header, the instance that answered.
  returned: always
  type: str
  sample: tts-node-a
definitive:
  description:
    - The API contract field to fix when the last answer cannot improve by waiting (404, 405, 501,
      401/403, a 400 naming a missing field), else null.
  returned: always
  type: str
  sample: "path (the server has no such route)"
checks:
  description:
    - Each check of the last attempt that was evaluated, with its outcome.
    - Names are C(request), C(status), C(content_type), C(audio), C(duration), C(rms) and C(latency).
  returned: always
  type: dict
  sample: {"request": true, "status": true, "content_type": true, "audio": true, "duration": true, "rms": true}
attempts:
  description: Number of checks made.
  returned: always
  type: int
  sample: 4
elapsed_s:
  description: Seconds spent checking.
  returned: always
  type: float
  sample: 6.12
consecutive_ok:
  description: Healthy checks in a row at the end.
  returned: always
  type: int
  sample: 1
history:
  description: One short entry per check, the most recent 50 only.
  returned: always
  type: list
  elements: dict
  sample: [{"attempt": 1, "healthy": false, "status": 503, "latency_ms": 3.1, "instance": "tts-node-a",
            "reason": "status 503 not in expected [200]"}]
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.tts_probe import (ContractError, ProbeArgumentError, check_contract,
                                            contract_probe_arguments, probe)

ARGUMENT_SPEC = {
    "url": {"type": "str", "required": True},
    "api": {"type": "dict"},
    "method": {"type": "str"},
    "payload": {"type": "raw"},
    "text": {"type": "str"},
    "headers": {"type": "dict"},
    "timeout": {"type": "float", "default": 3.0},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path"},
    "status_code": {"type": "list", "elements": "int"},
    "content_type_prefix": {"type": "str"},
    "min_duration": {"type": "float", "default": 0.02},
    "min_rms_dbfs": {"type": "float", "default": -60.0},
    "max_latency_ms": {"type": "float"},
    "instance_header": {"type": "str", "default": "X-TTS-Instance"},
    "follow_redirects": {"type": "bool", "default": False},
    "wait_timeout": {"type": "float", "default": 0.0},
    "wait_interval": {"type": "float", "default": 2.0},
    "consecutive_successes": {"type": "int", "default": 1},
    "report_only": {"type": "bool", "default": False},
}
MUTUALLY_EXCLUSIVE = [("payload", "text"), ("api", "method"), ("api", "payload"), ("api", "status_code"),
                      ("api", "content_type_prefix")]
# Options of the module itself; every other option is a probe() argument.
MODULE_OPTIONS = ("text", "api", "wait_timeout", "wait_interval", "consecutive_successes", "report_only")
# Defaults of the request options when no API contract gives them.
PLAIN_DEFAULTS = {"method": "POST", "status_code": [200], "content_type_prefix": "audio/", "text": "a"}
# Options whose probe() argument has another name.
ARGUMENT_FOR_OPTION = {"status_code": "expected_status", "min_duration": "min_duration_s"}
OPTION_FOR_ARGUMENT = {argument: option for option, argument in ARGUMENT_FOR_OPTION.items()}
HISTORY_LIMIT = 50
HISTORY_KEYS = ("healthy", "status", "latency_ms", "instance", "reason")


def loop_option_error(params):
    """Check the options that only the retry loop uses; return a message or None."""
    if params["wait_timeout"] < 0:
        return f"invalid wait_timeout: must be >= 0, got {params['wait_timeout']:g}"
    if params["wait_interval"] <= 0:
        return f"invalid wait_interval: must be > 0, got {params['wait_interval']:g}"
    if params["consecutive_successes"] < 1:
        return f"invalid consecutive_successes: must be >= 1, got {params['consecutive_successes']}"
    if params["consecutive_successes"] > 1 and params["wait_timeout"] == 0:
        return ("invalid consecutive_successes: more than 1 check in a row needs wait_timeout > 0,"
                f" got consecutive_successes={params['consecutive_successes']} and wait_timeout=0")
    return None


def probe_arguments(params):
    """Module options -> probe() keyword arguments (raises ContractError for a bad api)."""
    if params["api"] is not None:
        contract = check_contract(params["api"])
        arguments = {ARGUMENT_FOR_OPTION.get(option, option): value for option, value in params.items()
                     if option not in MODULE_OPTIONS and value is not None}
        arguments.update(contract_probe_arguments(contract, params["url"], params["text"]))
        if params["headers"]:
            arguments["headers"].update(params["headers"])
        return arguments
    params = {**params, **{key: value for key, value in PLAIN_DEFAULTS.items() if params[key] is None}}
    arguments = {ARGUMENT_FOR_OPTION.get(option, option): value
                 for option, value in params.items() if option not in MODULE_OPTIONS}
    if arguments["payload"] is None:
        arguments["payload"] = {"text": params["text"]}
    return arguments


def run_checks(module, arguments):
    """Check until enough healthy checks in a row or wait_timeout runs out; return the result."""
    params = module.params
    needed = params["consecutive_successes"]
    started = time.monotonic()
    deadline = started + params["wait_timeout"]
    history = []
    attempts = 0
    consecutive = 0
    while True:
        attempts += 1
        try:
            result = probe(**arguments)
        except ProbeArgumentError as exc:
            module.fail_json(msg=f"invalid {OPTION_FOR_ARGUMENT.get(exc.argument, exc.argument)}: {exc.detail}")
        consecutive = consecutive + 1 if result["healthy"] else 0
        history.append({"attempt": attempts, **{key: result[key] for key in HISTORY_KEYS}})
        del history[:-HISTORY_LIMIT]
        # Sleep only if another check can still start before the deadline. A definitive answer
        # (wrong route, method or field) will not change while a model loads: stop at once.
        if (consecutive >= needed or result["definitive"]
                or time.monotonic() + params["wait_interval"] > deadline):
            break
        time.sleep(params["wait_interval"])

    if result["healthy"] and consecutive < needed:
        result["healthy"] = False
        result["reason"] = (f"only {consecutive} of {needed} consecutive healthy checks before"
                            f" wait_timeout ({params['wait_timeout']:g} s) ran out")
    result.update(attempts=attempts, elapsed_s=round(time.monotonic() - started, 3),
                  consecutive_ok=consecutive, history=history)
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    message = loop_option_error(module.params)
    if message:
        module.fail_json(msg=message)
    try:
        arguments = probe_arguments(module.params)
    except ContractError as exc:
        module.fail_json(msg=f"invalid api (the API contract, tts_api): {exc.field}: {exc.detail}")
    result = run_checks(module, arguments)
    if not result["healthy"] and not module.params["report_only"]:
        summary = f" ({result['attempts']} checks in {result['elapsed_s']:g} s)" if result["attempts"] > 1 else ""
        if result["definitive"]:
            summary += (f"; stopped at once: the answer will not change by waiting - fix the API"
                        f" contract's {result['definitive']} (tts_api_preset / tts_api_overrides)")
        module.fail_json(msg=f"tts synthesis check failed: {result['reason']}{summary}", changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
