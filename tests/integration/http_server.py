"""The real HTTP test server (tests/http/server.py, aiohttp) started for a
test on a free loopback port: test_http.py runs its cases against it and
test_observe.py scrapes http_fetch's figures from a run that uses it.
"""
import json
import re
import select
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request

from harness import SLOW, tail


def server_python():
    """Debian's python3 has python3-aiohttp (.ci/build installs it); a pyenv
    python3 first on PATH may not."""
    tried = []
    for py in ("/usr/bin/python3", shutil.which("python3")):
        if not py or py in tried:
            continue
        tried.append(py)
        if subprocess.run([py, "-c", "import aiohttp"],
                          capture_output=True).returncode == 0:
            return py
    sys.exit(f"test server: no python3 with aiohttp among {tried}: install "
             f"python3-aiohttp (apt-get install python3-aiohttp)")


class Server:
    """tests/http/server.py on a free loopback port. It exits when our end
    of its stdin closes, so a dead test leaves no server behind."""

    def __init__(self, source, logdir, tls=None):
        args = [server_python(), str(source / "tests/http/server.py"),
                "--exit-on-stdin-eof"]
        if tls:
            args += ["--tls", *map(str, tls)]
        self.log = open(logdir / ("tls.log" if tls else "server.log"), "w+")
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.log,
                                  text=True)
        ready, _, _ = select.select([self.p.stdout], [], [], 15)
        line = self.p.stdout.readline() if ready else ""
        m = re.match(r"PORT (\d+)", line)
        if not m:
            self.p.kill()
            self.log.seek(0)
            sys.exit(f"test server: did not start: {line!r} "
                     f"{tail(self.log.read())}")
        self.port = int(m[1])
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # /_stats and /_reset over plain HTTP only: the TLS server is only
        # asked through troupe, its stats are read without verification.
        self.ctx = ssl._create_unverified_context() if tls else None

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=10,
                                    context=self.ctx) as r:
            return r.read()

    def stats(self):
        return json.loads(self.get("/_stats"))

    def reset(self):
        self.get("/_reset")

    def wait_stats(self, cond, limit=3.0):
        """Polls /_stats until cond(stats) holds; returns the last stats."""
        deadline = time.monotonic() + limit * SLOW
        while True:
            s = self.stats()
            if cond(s) or time.monotonic() > deadline:
                return s
            time.sleep(0.02)

    def stop(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()
