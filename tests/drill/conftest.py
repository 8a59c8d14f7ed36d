"""The drill tools run from tools/ (PYTHONPATH=tools), as the drill playbook runs them."""

import sys

from tts_drill_testlib import TOOLS

sys.path.insert(0, str(TOOLS))
