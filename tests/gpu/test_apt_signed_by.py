"""roles/nvidia_gpu/files/apt_signed_by.py: the Signed-By of each (URI, suite) on a host.

nvidia_gpu gives its debian-nonfree source the same Signed-By as the host's own source for the
mirror; a mismatch (an empty value included) makes apt refuse every source.
"""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "roles/nvidia_gpu/files/apt_signed_by.py"


def run(root, *skip):
    out = subprocess.run([sys.executable, str(SCRIPT), *skip], capture_output=True, text=True,
                         timeout=30, check=True, env={"NVIDIA_GPU_APT_ROOT": str(root)})
    return json.loads(out.stdout)


def write(root, rel, text):
    path = root / "etc/apt" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_debian12_image_deb822(tmp_path):
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb\n# snapshot comment\nURIs: http://deb.debian.org/debian\n"
          "Suites: bookworm bookworm-updates\nComponents: main\n"
          "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
          "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
          "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    data = run(tmp_path)
    assert data["http://deb.debian.org/debian bookworm"] == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert data["http://deb.debian.org/debian bookworm-updates"] == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert "http://deb.debian.org/debian-security bookworm-security" in data


def test_one_line_sources_with_and_without_signed_by(tmp_path):
    write(tmp_path, "sources.list", "deb http://deb.debian.org/debian/ bookworm main\n"
                                    "# deb http://ignored/ bookworm main\n")
    write(tmp_path, "sources.list.d/nvidia-container-toolkit.list",
          "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg arch=amd64] "
          "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n")
    data = run(tmp_path)
    assert data["http://deb.debian.org/debian bookworm"] == ""  # trailing slash normalised
    assert data["https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /"] == \
        "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
    assert not any("ignored" in k for k in data)


def test_own_file_left_out_and_disabled_stanza_ignored(tmp_path):
    write(tmp_path, "sources.list.d/debian-nonfree.sources",
          "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: non-free\n"
          "Signed-By: /etc/apt/keyrings/debian-nonfree.asc\n")
    write(tmp_path, "sources.list.d/old.sources",
          "Enabled: no\nTypes: deb\nURIs: http://old/\nSuites: bookworm\nComponents: main\n")
    assert run(tmp_path, "debian-nonfree.sources") == {}


def test_embedded_key_is_kept_multiline(tmp_path):
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"
          "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n")
    value = run(tmp_path)["http://deb.debian.org/debian bookworm"]
    assert "\n" in value and "BEGIN PGP" in value  # the role refuses this case


def test_no_apt_dir(tmp_path):
    assert run(tmp_path / "nothing") == {}
