#!/usr/bin/env python3
"""Print the first Debian mirror that serves a suite (default trixie), for debootstrap.

The candidates, in order: $PDEFLOW_DEBIAN_MIRRORS (space-separated), the mirrors configured in
/etc/apt (sources.list and *.list one-line entries, *.sources deb822 ``URIs:`` fields; comments and
security archives skipped), then deb.debian.org and ftp.debian.org.  A machine whose first source is
a dated snapshot mirror without the suite ("Failed getting release file" from debootstrap) gets the
next one that has it.  Standard library only (it runs before any venv exists).

    python3 docker/pick_mirror.py [--suite trixie] [--sources DIR]
"""
import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULTS = ["http://deb.debian.org/debian", "http://ftp.debian.org/debian"]


def configured(root: Path) -> list:
    files = [root / "sources.list"] + sorted((root / "sources.list.d").glob("*.list")) + sorted(
        (root / "sources.list.d").glob("*.sources"))
    out = []
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if f.suffix == ".sources":
                if line.lower().startswith("uris:"):
                    out += line.split(":", 1)[1].split()
            elif line.startswith("deb ") or line.startswith("deb-src "):
                words = [w for w in line.split()[1:] if not w.startswith("[")]
                words = [w for w in words if "]" not in w]
                if words:
                    out.append(words[0])
    return [u for u in out if u.startswith(("http://", "https://")) and "security" not in u]


def serves(mirror: str, suite: str, timeout: float) -> bool:
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="trixie")
    ap.add_argument("--sources", default="/etc/apt", help="apt configuration directory")
    ap.add_argument("--timeout", type=float, default=15.0)
    args = ap.parse_args(argv)
    candidates = os.environ.get("PDEFLOW_DEBIAN_MIRRORS", "").split() + configured(Path(args.sources)) + DEFAULTS
    seen = []
    for m in candidates:
        m = m.rstrip("/")
        if m in seen:
            continue
        seen.append(m)
        if serves(m, args.suite, args.timeout):
            print(m)
            return 0
        print(f"[dolfinx09] {m} does not serve {args.suite}; trying the next mirror", file=sys.stderr)
    print(f"[dolfinx09] no mirror serves Debian {args.suite} (tried: {', '.join(seen)}); set PDEFLOW_DEBIAN_MIRRORS",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
