#!/usr/bin/env python3
"""The live view in headless Chromium: installs puppeteer-core (pinned in
package-lock.json; `npm ci` downloads no browser) into BUILD_DIR and runs
live_view.mjs there against a real `troupe run --http`.

usage: test_live_view.py TROUPE_BIN SOURCE_DIR BUILD_DIR

Exits 77 (ctest: skipped) with the reason when node, npm or chromium is
missing, under the sanitizer builds (TROUPE_SANITIZED), or when this troupe
has no --http.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

SKIP = 77
CHROMIUM = "/usr/bin/chromium"


def skip(why):
    print(f"skip: {why}")
    sys.exit(SKIP)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    troupe = str(Path(sys.argv[1]).resolve())
    here = Path(sys.argv[2]).resolve() / "tests" / "browser"
    work = Path(sys.argv[3]).resolve()
    if os.environ.get("TROUPE_SANITIZED"):
        skip("not under the sanitizer builds (a browser run is slow there and "
             "adds nothing: the server's C++ is covered by the other suites)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        skip("node and npm are not installed (Node 18 or newer is needed)")
    if not os.access(CHROMIUM, os.X_OK):
        skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    work.mkdir(parents=True, exist_ok=True)
    # A troupe without the live view's server rejects the flag itself.
    probe = subprocess.run([troupe, "run", "--http", "127.0.0.1:0",
                            str(work / "no-such-graph.yaml")],
                           capture_output=True, text=True, timeout=30)
    if "'--http'" in probe.stderr:
        skip("this troupe has no `run --http` (the live view's server)")
    for f in ["package.json", "package-lock.json", "live_view.mjs",
              "live_view.yaml"]:
        shutil.copy2(here / f, work / f)
    stamp = work / "node_modules" / ".package-lock.json"
    lock = work / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        env = dict(os.environ, PUPPETEER_SKIP_DOWNLOAD="1")
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=work,
                           env=env, capture_output=True, text=True,
                           timeout=600)
        if p.returncode != 0:
            print(p.stdout + p.stderr)
            print("FAIL npm ci (puppeteer-core from package-lock.json)")
            return 1
    p = subprocess.run([node, "live_view.mjs", "--troupe", troupe,
                        "--graph", str(work / "live_view.yaml"),
                        "--out", str(work), "--chromium", CHROMIUM],
                       cwd=work, timeout=240)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
