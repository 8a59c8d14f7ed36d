"""Entry point: ``python -m tts_server``."""

import os
import sys

from .app import main

if __name__ == "__main__":
    code = main()
    # Leave without interpreter finalization: a request still inside onnxruntime after the drain
    # timeout (daemon threads) must not turn a graceful exit into an abort at teardown.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
