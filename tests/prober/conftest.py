"""Fixtures for the resident prober tests: a switchable loopback TTS stub."""

import prober_testlib  # noqa: F401 - puts module_utils on sys.path
import pytest
from prober_testlib import StubTTS


@pytest.fixture
def stub():
    with StubTTS() as server:
        yield server
