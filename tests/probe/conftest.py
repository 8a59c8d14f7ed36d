"""Fixtures for the tts_probe tests: in-process HTTP and HTTPS servers on 127.0.0.1."""

import ssl
import sys

import pytest
from tts_probe_testlib import REPO, ProbeTestServer, self_signed_cert

# Tests import the probe as the on-host check does: as a plain module from module_utils/.
sys.path.insert(0, str(REPO / "module_utils"))


@pytest.fixture(scope="session")
def server():
    with ProbeTestServer() as test_server:
        yield test_server


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_server(tls_cert):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_cert)
    with ProbeTestServer(ssl_context=context) as test_server:
        yield test_server
