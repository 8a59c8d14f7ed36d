"""Fixtures for the reference TTS server tests (real `python -m tts_server` processes)."""

from __future__ import annotations

import pytest

from tts_srv_helpers import TTSServer, debian_tool_or_skip


@pytest.fixture(scope="session")
def espeak_bin():
    return debian_tool_or_skip("espeak-ng", "espeak-ng")


@pytest.fixture(scope="session")
def srv_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("tts-server")


@pytest.fixture(scope="session")
def primary(srv_tmp, espeak_bin):
    """Like the article's primary: WebUI on, audio cache on."""
    server = TTSServer(srv_tmp, "tts-primary-test", ENABLE_WEBUI="true", DISABLE_AUDIO_CACHE="false",
                       TTS_CONCURRENCY="2", TTS_QUEUE_MAX="16", TTS_FAULT_SLOW_SECONDS="2",
                       TTS_MAX_TEXT_CHARS="2000")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def standby(srv_tmp, espeak_bin):
    """Like the article's standby: ENABLE_WEBUI=false, DISABLE_AUDIO_CACHE=true."""
    server = TTSServer(srv_tmp, "tts-standby-test", ENABLE_WEBUI="false", DISABLE_AUDIO_CACHE="true")
    try:
        server.start()
        yield server
    finally:
        server.stop()
