"""Ansible module: resolve and check the TTS API contract (logic in module_utils/tts_probe.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tts_api_contract
short_description: Resolve the TTS API contract from a preset and field-by-field overrides
description:
  - Merges the named preset (how a known TTS server is asked to speak and what it answers) with
    the overrides in O(api), checks the result and returns it as RV(contract), the dict that
    every health check, HAProxy check and load generator of the kit builds its request from.
  - A bad contract (unknown preset, no text placement, a body on GET, an auth token left as a
    placeholder, an unknown answer format) fails with a message naming the field.
  - Presets and checks live in C(module_utils/tts_probe.py), shared with the probe itself.
author:
  - tts-ha maintainers (!UNKNOWN)
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads nothing and changes nothing, so it runs in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  preset:
    description:
      - Name of the preset, one of V(reference), V(openai), V(coqui), V(piper_http), V(gpt_sovits),
        V(fish_speech) and V(cosyvoice).
    type: str
    default: reference
  api:
    description:
      - 'Overrides, field by field (nested mappings merge): C(port), C(method), C(path),
        C(text) (C(in): json, query, form, multipart or raw; C(field)), C(fields), C(headers),
        C(auth) (C(header), C(scheme), C(token)), C(answer) (C(status), C(content_type),
        C(format), C(pcm)), C(probe) (C(text), C(headers), C(lane)) and C(evidence)
        (C(metrics_path), C(metric)).'
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Coqui's server, from its preset, on another port
  tts_api_contract:
    preset: coqui
    api:
      port: 5003
  register: contract
"""

RETURN = r"""
contract:
  description: The resolved contract, every field present.
  returned: success
  type: dict
  sample: {"preset": "coqui", "port": 5002, "method": "GET", "path": "/api/tts",
           "text": {"in": "query", "field": "text"}}
curl:
  description: A curl command that synthesises a sentence, with C(BASE_URL) standing for the server's base URL.
  returned: success
  type: str
  sample: "curl -sS -X GET 'BASE_URL/api/tts?text=Hello+from+tts-ha' -o hello.wav"
haproxy_check:
  description: HAProxy C(http-check send) arguments and C(http-check expect) lines for the probe request.
  returned: success
  type: dict
  sample: {"send": "meth GET uri \"/api/tts?text=a\" ver HTTP/1.1 hdr Host tts-ha-router", "expect": ["status 200"]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.tts_probe import ContractError, curl_example, haproxy_check, resolve_contract

ARGUMENT_SPEC = {
    "preset": {"type": "str", "default": "reference"},
    "api": {"type": "dict", "default": {}},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        contract = resolve_contract(module.params["preset"], module.params["api"])
    except ContractError as exc:
        variable = "tts_api_preset" if exc.field == "preset" else f"tts_api_overrides.{exc.field}"
        module.fail_json(msg=f"invalid TTS API contract: {variable}: {exc.detail}")
    module.exit_json(changed=False, contract=contract, haproxy_check=haproxy_check(contract),
                     curl=curl_example(contract, "BASE_URL"))


if __name__ == "__main__":
    main()
