"""docker/pick_mirror.py: `make test-dolfinx09` on a machine whose first apt source lacks trixie
takes the next mirror that serves it (a local HTTP server stands in for the mirrors: no network)."""
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "pick_mirror.py"


@pytest.fixture()
def mirrors(tmp_path):
    root = tmp_path / "www"
    (root / "snapshot" / "dists" / "bookworm").mkdir(parents=True)
    (root / "snapshot" / "dists" / "bookworm" / "Release").write_text("Suite: stable\n")
    (root / "debian" / "dists" / "trixie").mkdir(parents=True)
    (root / "debian" / "dists" / "trixie" / "Release").write_text("Suite: trixie\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _apt(tmp_path, first, second):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    # deb822, as Debian 12 images ship it: comments (a dated snapshot URL) and a security entry skipped
    (apt / "sources.list").write_text(f"# deb {second}/commented-out bookworm main\ndeb [arch=amd64] {first} bookworm main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        f"Types: deb\nURIs: {first}-security\nSuites: bookworm-security\n\n"
        f"Types: deb\n# {second}/commented-out\nURIs: {second}\nSuites: bookworm\n")
    return apt


def _pick(apt, env_mirrors=""):
    return subprocess.run([sys.executable, str(SCRIPT), "--sources", str(apt), "--timeout", "5"], capture_output=True,
                          text=True, timeout=60, env={"PDEFLOW_DEBIAN_MIRRORS": env_mirrors, "PATH": "/usr/bin:/bin"})


def test_the_first_source_without_trixie_is_skipped(tmp_path, mirrors):
    apt = _apt(tmp_path, f"{mirrors}/snapshot", f"{mirrors}/debian")
    proc = _pick(apt)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{mirrors}/debian"
    assert "does not serve trixie" in proc.stderr and "/snapshot" in proc.stderr


def test_an_explicit_mirror_comes_first_and_none_is_one_line(tmp_path, mirrors):
    apt = _apt(tmp_path, f"{mirrors}/snapshot", f"{mirrors}/nothing")
    assert _pick(apt, env_mirrors=f"{mirrors}/debian").stdout.strip() == f"{mirrors}/debian"
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--sources", str(apt), "--suite", "nosuch", "--timeout", "5"],
                          capture_output=True, text=True, timeout=120,
                          env={"PDEFLOW_DEBIAN_MIRRORS": f"{mirrors}/debian", "PATH": "/usr/bin:/bin",
                               "http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"})
    assert proc.returncode == 1 and "no mirror serves Debian nosuch" in proc.stderr.splitlines()[-1]
