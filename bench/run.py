#!/usr/bin/env python3
"""Load benchmark of the `users` service against its peer, fastapi-users 15, on SQLite
and on PostgreSQL.

One command (see bench/README.md):

    python3 bench/run.py            # the full run (~55 minutes on 2 cores)
    python3 bench/run.py --quick    # a smoke run of the harness (~10 minutes)

It builds the release server and the two examples (the argon2 ceiling and the seeder),
measures the argon2id ceiling of the machine, starts each system under test on a free
loopback port, seeds users over HTTP, drives every scenario with wrk (warm-up, then a
fixed-duration measured run, at each connection count) while sampling the peak RSS of
the server's process tree, measures what PostgreSQL alone answers (pgbench -S) next to
/users/me on PostgreSQL, repeats /users/me and login on 1k and 1M seeded users, and
writes a Markdown report and the raw numbers as JSON. Instructions per request:
bench/instructions.py.

Only the standard library is used here; the peers run from a venv under bench/.venv,
created on demand from bench/requirements.txt. Temporary databases, mail and logs live
in a temporary directory that is removed at the end (--keep-temp keeps it).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import fnmatch
import glob
import hashlib
import hmac
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "wrk" / "bench.lua"
PEER_APP_DIR = BENCH / "fastapi_users_app"
VENV = BENCH / ".venv"
REQUIREMENTS = BENCH / "requirements.txt"

# The service's argon2 defaults (OWASP) and fastapi-users' (pwdlib / argon2-cffi defaults).
ARGON2_USERS = (19456, 2, 1)
ARGON2_FASTAPI_USERS = (65536, 3, 4)

SEED_PASSWORD = "bench seed passphrase 2c9f"  # >= 12 chars, not common, no email in it
REGISTER_PASSWORD = "bench register passphrase 7f3a"

SCENARIOS = {
    # name: (method, path, wrk mode)
    "healthz": ("GET", "/healthz", "static"),
    # GET /users/me without a token: 401 before any database work, the HTTP floor of the
    # route (with `pgbench`, the ceiling of /users/me on PostgreSQL: see Report.db_ceiling)
    "me_401": ("GET", "/users/me", "static"),
    # session tokens from POST /auth/jwt/login (their `sid` is checked on every request)
    "me": ("GET", "/users/me", "tokens"),
    # tokens minted as fastapi-users mints them (no `sid`): the same route without the
    # session check
    "me_nosession": ("GET", "/users/me", "tokens"),
    # API keys (`usr_…`, one per seeded user, made with POST /users/me/api-keys): the same
    # route, the key's hash checked by the same coalesced lookup as a session (users only)
    "me_apikey": ("GET", "/users/me", "tokens"),
    # refresh-token rotations, one chain per wrk connection (users only)
    "refresh": ("POST", "/auth/jwt/refresh", "refresh"),
    "login": ("POST", "/auth/jwt/login", "login"),
    "register": ("POST", "/auth/register", "register"),
    # failed logins, answered 400 LOGIN_BAD_CREDENTIALS: throughput under a flood of them
    # (lowest connection count only); their timing is compared by TIMING, interleaved
    "login_wrong": ("POST", "/auth/jwt/login", "login"),
    "login_unknown": ("POST", "/auth/jwt/login", "login"),
    # The OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md), users only. Its
    # clients, tokens and codes are made in Bench.oauth_setup. Client credentials: one
    # confidential client signing with EdDSA, one with RS256 (HTTP Basic, the same form
    # every request)
    "oauth_cc": ("POST", "/oauth/token", "form"),
    "oauth_cc_rs256": ("POST", "/oauth/token", "form"),
    # introspection (RFC 7662) of the EdDSA client's client-credentials tokens, by that client
    "oauth_introspect": ("POST", "/oauth/introspect", "form"),
    # userinfo with a person's access token from the code flow (one per seeded user)
    "oauth_userinfo": ("GET", "/oauth/userinfo", "tokens"),
    # the code exchange (scope openid: an access token and an ID token, EdDSA), each code
    # used once: minted just before each wrk run by a wrk run of /oauth/authorize
    "oauth_code": ("POST", "/oauth/token", "once"),
    # the refresh of a person's grant (grant_type=refresh_token: a rotation, a new access
    # token and ID token, EdDSA), one chain per wrk connection, each grant started by the
    # code flow with scope `openid offline_access` just before each wrk run
    "oauth_refresh": ("POST", "/oauth/token", "oauth_refresh"),
    # the whole flow of a signed-in person whose consent is remembered (a client without
    # skip_consent, allowed once on the consent page): GET /oauth/authorize with the
    # browser's cookie → 302 with a code → POST /oauth/token, each connection in turn
    "oauth_flow": ("GET", "/oauth/authorize", "flow"),
    # the same flow as it was measured until 2026-12-07: every connection the same
    # person with one cookie (their flows meet on that person's rows)
    "oauth_flow_1": ("GET", "/oauth/authorize", "flow"),
}
SCENARIO_LABEL = {
    "healthz": "GET /healthz",
    "me_401": "GET /users/me, no token (401)",
    "me": "GET /users/me",
    "me_nosession": "GET /users/me, token without a session",
    "me_apikey": "GET /users/me, API key",
    "refresh": "POST /auth/jwt/refresh (rotation)",
    "login": "POST /auth/jwt/login",
    "register": "POST /auth/register",
    "login_wrong": "POST /auth/jwt/login, registered email, wrong password",
    "login_unknown": "POST /auth/jwt/login, unregistered email",
    "oauth_cc": "POST /oauth/token, client credentials (EdDSA)",
    "oauth_cc_rs256": "POST /oauth/token, client credentials (RS256)",
    "oauth_introspect": "POST /oauth/introspect",
    "oauth_userinfo": "GET /oauth/userinfo",
    "oauth_code": "POST /oauth/token, code exchange (EdDSA)",
    "oauth_refresh": "POST /oauth/token, refresh of a grant (EdDSA)",
    "oauth_flow": "whole flow: GET /oauth/authorize (remembered consent) → POST /oauth/token",
    "oauth_flow_1": "whole flow, every connection one person with one cookie (the shape before)",
}
MAIN_SCENARIOS = ["healthz", "me", "login", "register"]
# users only: the floor of /users/me, /users/me without the session check, rotations
USERS_SCENARIOS = ["healthz", "me_401", "me", "me_nosession", "me_apikey", "refresh", "login",
                   "register"]
# the main table's rows, in this order
TABLE_SCENARIOS = USERS_SCENARIOS
# the provider's paths (users only; their own table, Report.provider_table)
OAUTH_SCENARIOS = ["oauth_cc", "oauth_cc_rs256", "oauth_introspect", "oauth_userinfo",
                   "oauth_code", "oauth_refresh", "oauth_flow", "oauth_flow_1"]
# scenarios whose every answer should be this status (anything else counts as an error)
EXPECTED_STATUS = {"login_wrong": "400", "login_unknown": "400", "me_401": "401",
                   "refresh": "200", **{s: "200" for s in OAUTH_SCENARIOS}}
# scenarios whose answers may be any of these (the flow's 302s and 200s); the rate
# reported (`ok_rps`) is of EXPECTED_STATUS's alone: for the flow, the flows completed
ACCEPTED_STATUSES = {"oauth_flow": ("302", "200"), "oauth_flow_1": ("302", "200")}
PROBE_SCENARIOS = ["login_wrong", "login_unknown"]
# Not wrk: failed logins with registered and unregistered emails interleaved in random
# order, one request at a time per client thread, each timed (see Bench.timing_probe).
TIMING = "timing"
UNKNOWN_EMAILS = 20_000
WRONG_PASSWORD = "not the bench passphrase 91d4"

# Systems under test. kind: users | peer; backend: sqlite | postgres.
SYSTEMS = {
    "users-sqlite": dict(kind="users", backend="sqlite", argon2=ARGON2_USERS,
                         scenarios=USERS_SCENARIOS + OAUTH_SCENARIOS + PROBE_SCENARIOS
                         + [TIMING]),
    "users-postgres": dict(kind="users", backend="postgres", argon2=ARGON2_USERS,
                           scenarios=USERS_SCENARIOS + OAUTH_SCENARIOS + PROBE_SCENARIOS
                           + [TIMING]),
    "fastapi-users": dict(kind="peer", backend="sqlite", argon2=ARGON2_FASTAPI_USERS,
                          scenarios=MAIN_SCENARIOS + PROBE_SCENARIOS + [TIMING]),
    # the same app on a fresh PostgreSQL database, through asyncpg
    "fastapi-users-postgres": dict(kind="peer", backend="postgres", argon2=ARGON2_FASTAPI_USERS,
                                   scenarios=MAIN_SCENARIOS + PROBE_SCENARIOS + [TIMING]),
    "users-sqlite-fapi-argon2": dict(kind="users", backend="sqlite", argon2=ARGON2_FASTAPI_USERS,
                                     scenarios=["login", "register"]),
    "users-postgres-fapi-argon2": dict(kind="users", backend="postgres",
                                       argon2=ARGON2_FASTAPI_USERS,
                                       scenarios=["login", "register"]),
}
# The peer each users system is compared with: the one on its backend (runs written before
# fastapi-users-postgres, whose meta has no "peers", compared every system with
# fastapi-users: Report.peer_of)
PEERS = {"sqlite": "fastapi-users", "postgres": "fastapi-users-postgres"}
# Baseline twins (--baseline REV): configured exactly like their system but running the
# users-server built from REV. Each follows its system here (and so in the report); the two
# are measured interleaved, cell by cell (see Bench.system).
BASELINE = "@base"
# Traces twins (--otel-pair): the same binary as their system, with traces on (exported to
# the harness's sink, the default sampler); measured interleaved with it like a baseline
# twin, and reported as on ÷ off (Report.traces_table).
OTEL = "@otel"


def with_baseline_twins(systems: dict, twinned) -> dict:
    out = {}
    for name, spec in systems.items():
        out[name] = spec
        if name in twinned:
            out[name + BASELINE] = {**spec, "baseline_of": name}
            out[name + OTEL] = {**spec, "otel_of": name}
    return out


SYSTEMS = with_baseline_twins(SYSTEMS, ("users-sqlite", "users-postgres"))
SCALING = {"scaling-sqlite": "sqlite", "scaling-postgres": "postgres"}
# pgbench -S on a scratch database of the same PostgreSQL: measured with the first
# PostgreSQL users system that runs `me`, or alone with --only pgbench
PGBENCH = "pgbench"
# What a refresh-token rotation asks of PostgreSQL, as a pgbench script: read one row
# by primary key, then update it in its own transaction (a commit, so a WAL flush with
# the server's synchronous_commit), both prepared. The service's ceiling for rotations.
PGBENCH_ROTATION = """\\set aid random(1, 100000 * :scale)
SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
"""
ALL_NAMES = ["ceiling", PGBENCH, *SYSTEMS, *SCALING]

# DATABASE_MAX_CONNECTIONS the harness gives the service (its default, set explicitly so
# that pgbench runs with as many clients as the service has connections); --db-pool
DB_POOL = 10
# access tokens minted by the harness (me_nosession) live as long as fastapi-users' and
# the service's default JWT_LIFETIME_SECONDS; they are minted afresh for every wrk run
MINTED_TOKEN_LIFETIME = 3600
AUTH_AUDIENCE = "fastapi-users:auth"

# Variables the service reads: dropped from the inherited environment so that nothing
# from the caller's shell leaks into a run (WORKERS stays unset: one worker per core).
SERVICE_VARS = [
    "DATABASE_URL", "DATABASE_MAX_CONNECTIONS", "DATABASE_TIMEOUT_SECONDS", "BIND_ADDR",
    "PUBLIC_URL", "JWT_SECRET", "JWT_LIFETIME_SECONDS", "PASSWORD_MIN_LENGTH",
    "ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS", "ARGON2_PARALLELISM", "APP_NAME", "SMTP_URL",
    "MAIL_DIR", "MAIL_FROM", "RESET_PASSWORD_URL", "VERIFY_URL", "WORKERS",
    "CORS_ALLOWED_ORIGINS", "RUST_LOG", "LOG_FORMAT", "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET", "GOOGLE_ISSUER_URL", "LOGIN_MAX_FAILURES",
    "RATE_LIMIT_PER_IP_PER_MINUTE", "TRUSTED_PROXIES", "OAUTH_SUCCESS_REDIRECT_URL",
    "SHUTDOWN_DRAIN_SECONDS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OAUTH_CODE_LIFETIME_SECONDS",
    "OAUTH_ACCESS_TOKEN_LIFETIME_SECONDS", "OAUTH_OPEN_REGISTRATION",
]
# The provider's scenarios: the registered redirect URI of the code client (never
# followed: the harness reads the code off the 302's Location) and its PKCE verifier (one
# for every code: each code is still single-use and bound to its own exchange)
OAUTH_REDIRECT = "http://127.0.0.1:9/callback"
OAUTH_VERIFIER = "bench-pkce-verifier-" + "v" * 40

# --otel: where every users server exports its traces; --otel-pair: where the @otel twins
# do. A loopback sink of this harness (bench/otlp_sink.py) that takes every OTLP/HTTP
# request and answers 200, as a collector would; None: off.
OTEL_ENDPOINT: str | None = None
OTEL_SINK: "OtlpSink | None" = None
# --otel-pair: only the @otel twins export
OTEL_PAIR = False


class OtlpSink:
    """The loopback OTLP/HTTP receiver (bench/otlp_sink.py), a process of its own: it
    discards the bodies (no decoding: only the service's cost of tracing is measured), and
    its CPU time is read beside the server's (Bench.measure)."""

    def __init__(self, tmp_dir: Path):
        port_file = tmp_dir / f"otlp-sink-{secrets.token_hex(3)}.port"
        self.proc = subprocess.Popen([sys.executable, str(BENCH / "otlp_sink.py"),
                                      str(port_file)], start_new_session=True)
        deadline = time.monotonic() + 10
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BenchError("the OTLP sink did not start")
            time.sleep(0.05)
        self.endpoint = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def stats(self) -> dict:
        """Export requests and bytes received so far, and the sink's CPU seconds."""
        try:
            _, body = http("GET", self.endpoint + "/stats", timeout=10)
            counts = json.loads(body)
        except (OSError, ValueError, urllib.error.URLError):
            counts = {"requests": 0, "bytes": 0}
        counts["cpu_s"] = tree_cpu_seconds(self.proc.pid)
        return counts

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


class CellError(BenchError):
    """A cell that cannot run (its data could not be made: say, a --baseline revision
    without refresh tokens): skipped and reported, the system's other cells go on."""


# ----------------------------------------------------------------------------------------
# machine, tools, build
# ----------------------------------------------------------------------------------------

def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0)
    return {
        "nproc": os.cpu_count() or 1,
        "cpu_model": cpu,
        "mem_total_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def run_cmd(cmd, *, env=None, cwd=None, timeout=None, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, env=env, cwd=cwd, timeout=timeout, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def tool_version(cmd) -> str:
    try:
        p = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        return p.stdout.strip().splitlines()[0] if p.stdout.strip() else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: installing Debian's wrk with apt-get")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        wrk = shutil.which("wrk")
        if wrk:
            return wrk
    raise BenchError("wrk is required: apt-get install -y wrk")


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    want = [l.strip() for l in REQUIREMENTS.read_text().splitlines()
            if l.strip() and not l.startswith("#")]
    stamp = VENV / ".bench-requirements"
    if py.exists() and stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text():
        return py
    log(f"creating the peer's venv in {VENV.relative_to(ROOT)} ({', '.join(want)})")
    if not py.exists():
        run_cmd([sys.executable, "-m", "venv", str(VENV)])
    run_cmd([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS)], timeout=1800)
    stamp.write_text(REQUIREMENTS.read_text())
    return py


def peer_versions(py: Path) -> dict:
    code = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
            "['fastapi-users','fastapi','uvicorn','uvloop','httptools','SQLAlchemy','aiosqlite',"
            "'asyncpg','pwdlib','argon2-cffi','PyJWT','pydantic']}))")
    p = run_cmd([str(py), "-c", code], check=False)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {}


def cargo_target_dir() -> Path:
    p = run_cmd(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT)
    return Path(json.loads(p.stdout)["target_directory"])


def build(skip: bool) -> dict:
    target = cargo_target_dir()
    rel = target / "release"
    bins = {
        "server": rel / "users-server",
        "ceiling": rel / "examples" / "argon2_ceiling",
        "seed": rel / "examples" / "seed_users",
        "signing": rel / "examples" / "signing_speed",
    }
    if not skip:
        log(f"building the release server and examples (target dir {target})")
        t0 = time.time()
        # The server alone first: an invocation that also builds examples unifies the
        # dev-dependencies' features into it, and the benchmark measures it as shipped.
        for cmd in (
            ["cargo", "build", "--release", "-p", "users-server", "--bin", "users-server"],
            ["cargo", "build", "--release", "-p", "users-server", "--example", "argon2_ceiling"],
            ["cargo", "build", "--release", "-p", "users-db", "--example", "seed_users"],
            ["cargo", "build", "--release", "-p", "users-core", "--example", "signing_speed"],
        ):
            p = subprocess.run(cmd, cwd=ROOT)
            if p.returncode != 0:
                raise BenchError(f"{' '.join(cmd)} failed")
        log(f"build done in {time.time() - t0:.0f} s")
    for name, path in bins.items():
        if not path.exists():
            raise BenchError(f"{path} is missing (run without --no-build)")
    return bins


def resolve_baseline(rev: str) -> dict:
    """The commit of git revision `rev` (resolved once, at the start: HEAD may move while
    the run builds) and where its users-server is built: <target>/bench-baseline/<commit>."""
    p = run_cmd(["git", "-C", str(ROOT), "rev-parse", "--verify", "--end-of-options",
                 f"{rev}^{{commit}}"], check=False)
    if p.returncode != 0:
        raise BenchError(f"--baseline {rev!r} is not a commit: {p.stderr.strip()}")
    commit = p.stdout.strip()
    target = cargo_target_dir() / "bench-baseline" / commit[:12]
    return {"rev": rev, "commit": commit,
            "subject": tool_version(["git", "-C", str(ROOT), "log", "-1", "--format=%s", commit]),
            "target_dir": str(target), "binary": str(target / "release" / "users-server"),
            "build_s": 0.0, "reused": True}


def publishable(meta: dict) -> None:
    """Makes the built commits' paths in `meta` (baseline, current) relative to the
    repository, or to the cargo target directory when that is elsewhere, so that a
    committed report names no path of the machine it ran on."""
    target = cargo_target_dir()
    for key in ("baseline", "current"):
        info = meta.get(key)
        if not info:
            continue
        for field in ("target_dir", "binary"):
            p = Path(info[field])
            if p.is_relative_to(ROOT):
                info[field] = str(p.relative_to(ROOT))
            elif p.is_relative_to(target):
                info[field] = str(Path("$CARGO_TARGET_DIR") / p.relative_to(target))


def build_baseline(info: dict, tmp: Path, skip: bool) -> dict:
    """The release users-server of the baseline commit (resolve_baseline), for the @base
    systems. Checked out in a temporary git worktree (the repository's working tree and
    index are not touched; the worktree is removed after the build) and built into its own
    target directory, which is kept: a commit's tree never changes, so a later run with the
    same commit reuses its binary without building."""
    rev, commit = info["rev"], info["commit"]
    target, binary = Path(info["target_dir"]), Path(info["binary"])
    if binary.exists():
        log(f"baseline {rev} = {commit[:12]}: reusing {binary}")
        return info
    if skip:
        raise BenchError(f"{binary} is missing (run without --no-build)")
    src = tmp / f"baseline-{commit[:12]}"
    log(f"building the baseline {rev} = {commit[:12]} ({info['subject'][:60]}) in a worktree "
        f"at {src}, target dir {target} (a cold target dir: several minutes)")
    t0 = time.time()
    run_cmd(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(src), commit])
    try:
        cmd = ["cargo", "build", "--release", "-p", "users-server", "--bin", "users-server"]
        p = subprocess.run(cmd, cwd=src, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
        if p.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} of the baseline {commit[:12]} failed")
    finally:
        run_cmd(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(src)], check=False)
    if not binary.exists():
        raise BenchError(f"{binary} is missing after the baseline build")
    info.update(build_s=round(time.time() - t0, 1), reused=False)
    log(f"baseline build done in {info['build_s']:.0f} s")
    return info


# ----------------------------------------------------------------------------------------
# processes
# ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_pids(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                try:
                    kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                except OSError:
                    continue
                todo.extend(int(k) for k in kids)
        except OSError:
            pass
    return out


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process tree, in seconds."""
    ticks = 0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict:
    """utime + stime of each thread of a process, summed by thread name (the workers of
    one pool share theirs), in seconds."""
    out: dict = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{t}/stat").read_text()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    tck = os.sysconf("SC_CLK_TCK")
    return {k: v / tck for k, v in out.items()}


def spans_dropped(log_path: Path) -> int:
    """Spans a traced server logged as dropped (its export queue was full), so far."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(int(m) for m in re.findall(r"spans were dropped.*?dropped=(\d+)", text))


class RssSampler:
    """Samples the summed VmRSS of a process tree every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            total = sum(status_kib(p, "VmRSS") for p in tree_pids(self.pid))
            self.samples.append((time.monotonic(), total))
            self._stop.wait(self.interval)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> int:
        vals = [kib for t, kib in self.samples if since <= t <= until]
        return max(vals) if vals else 0

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)


class Server:
    """A system under test: started in its own process group, stopped by its pid."""

    def __init__(self, name: str, cmd: list, env: dict, port: int, logdir: Path, cwd: Path):
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = logdir / f"{name}-{port}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.sampler = RssSampler(self.proc.pid)
        self.started = time.monotonic()

    def wait_ready(self, timeout: float = 90.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} at start:\n"
                                 f"{self.log_tail()}")
            try:
                status, _ = http("GET", self.base + "/healthz", timeout=2)
                if status == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not answer /healthz within {timeout:.0f} s:\n"
                         f"{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_idle(self, max_wait: float = 300.0, below: float = 0.05) -> float:
        """Waits until the server's process tree uses under `below` of a core (over two
        0.5 s windows in a row): requests abandoned by the previous wrk run (a client
        closing its connection does not stop a hash in progress, nor, in uvicorn, a queued
        request) must not eat into the next measurement. Returns the seconds waited."""
        t0 = time.monotonic()
        quiet = 0
        last = tree_cpu_seconds(self.proc.pid)
        while time.monotonic() - t0 < max_wait and self.proc.poll() is None:
            time.sleep(0.5)
            now = tree_cpu_seconds(self.proc.pid)
            quiet = quiet + 1 if (now - last) / 0.5 < below else 0
            last = now
            if quiet >= 2:
                break
        return time.monotonic() - t0

    def threads(self) -> int:
        return sum(status_kib(p, "Threads") for p in tree_pids(self.proc.pid))

    def hwm_kib(self) -> int:
        return sum(status_kib(p, "VmHWM") for p in tree_pids(self.proc.pid))

    def stop(self) -> dict:
        hwm = self.hwm_kib()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.sampler.stop()
        self._log.close()
        return {"exit_code": self.proc.returncode, "vmhwm_kib_at_stop": hwm,
                "peak_rss_kib": self.sampler.peak(), "log_findings": log_findings(self.log_path)}


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_findings(path: Path, limit: int = 8) -> dict:
    """Warnings and errors a server logged (at RUST_LOG=warn / uvicorn's warning level)."""
    try:
        lines = ANSI.sub("", path.read_text(errors="replace")).splitlines()
    except OSError:
        return {"lines": 0, "examples": []}
    hits = [l.strip() for l in lines
            if re.search(r"\b(WARN|WARNING|ERROR|Traceback|Exception|panicked)\b", l)
            or re.match(r"^[\w.]+(Error|Exception): ", l)]
    # exception lines ("sqlite3.OperationalError: database is locked") say the most
    exceptions = [h for h in hits if re.match(r"^[\w.]+(Error|Exception): ", h)]
    seen, examples = set(), []
    for h in exceptions + [h for h in hits if h not in exceptions]:
        key = re.sub(r"^\S+\s+", "", h)  # drop the timestamp
        key = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<uuid>", key)
        if key not in seen:
            seen.add(key)
            examples.append(h[:300])
        if len(examples) >= limit:
            break
    counts = {}
    for h in exceptions:
        counts[h[:200]] = counts.get(h[:200], 0) + 1
    return {"lines": len(hits), "examples": examples, "exception_counts": counts}


# ----------------------------------------------------------------------------------------
# HTTP helpers (seeding)
# ----------------------------------------------------------------------------------------

def http(method, url, *, data=None, headers=None, timeout=120):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def register(base, email, password):
    body = json.dumps({"email": email, "password": password}).encode()
    return http("POST", base + "/auth/register", data=body,
                headers={"content-type": "application/json"})


def login_grant(base, email, password, scope=None) -> dict:
    """POST /auth/jwt/login; with scope "offline_access" the answer has a refresh_token."""
    form = {"username": email, "password": password}
    if scope:
        form["scope"] = scope
    body = urllib.parse.urlencode(form).encode()
    status, raw = http("POST", base + "/auth/jwt/login", data=body,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    if status != 200:
        raise BenchError(f"login of {email} answered {status}: {raw[:300]!r}")
    return json.loads(raw)


def login(base, email, password):
    return login_grant(base, email, password)["access_token"]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint_access_token(secret: str, user_id: str, lifetime: int = MINTED_TOKEN_LIFETIME) -> str:
    """An access token as fastapi-users' JWTStrategy mints it: HS256 over
    {"sub", "aud": ["fastapi-users:auth"], "exp"}, no `sid` (so no session behind it)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": user_id, "aud": [AUTH_AUDIENCE], "exp": int(time.time()) + lifetime}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def asyncpg_url(libpq_url: str, sslmode: str) -> str:
    """The SQLAlchemy URL of a database for asyncpg: `postgres://u@h:p/db?sslmode=m` →
    `postgresql+asyncpg://u@h:p/db?ssl=m` (asyncpg takes libpq's modes as `ssl`)."""
    u = urllib.parse.urlsplit(libpq_url)
    return urllib.parse.urlunsplit(("postgresql+asyncpg", u.netloc, u.path,
                                    urllib.parse.urlencode({"ssl": sslmode}), ""))


def jwt_claim_names(token: str) -> list[str]:
    """The claim names of a JWT's payload (not verified): shows whether it has a `sid`."""
    try:
        part = token.split(".")[1]
        return sorted(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
    except (IndexError, ValueError):
        return []


def service_env(database_url: str, port: int, jwt_secret: str, mail_dir: Path, argon2,
                pool: int = DB_POOL, traces: bool = False) -> dict:
    """The environment a users-server under test runs with: the caller's environment minus
    every variable the service reads, plus these (bench/README.md explains each)."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update({
        "DATABASE_URL": database_url,
        "DATABASE_MAX_CONNECTIONS": str(pool),
        "BIND_ADDR": f"127.0.0.1:{port}",
        "JWT_SECRET": jwt_secret,
        "RUST_LOG": "warn",
        "MAIL_DIR": str(mail_dir),
        "ARGON2_MEMORY_KIB": str(argon2[0]),
        "ARGON2_ITERATIONS": str(argon2[1]),
        "ARGON2_PARALLELISM": str(argon2[2]),
        # The per-IP limit (60/min by default) would answer 429 to a load generator on
        # one address; fastapi-users has none. Off, so both do the same work.
        "RATE_LIMIT_PER_IP_PER_MINUTE": "0",
        # The per-account lockout stays on, at its highest setting: the wrong-password
        # scenario fails each seeded account about 30 times, under the 100 that lock.
        "LOGIN_MAX_FAILURES": "100",
        # One process and no load balancer: nothing to drain, stop at SIGTERM.
        "SHUTDOWN_DRAIN_SECONDS": "0",
        # The provider's scenarios: codes minted before a wrk run must outlive it (the
        # longest the service allows), and the tokens dealt at seeding the whole system's
        # cells (60 s and 900 s by default)
        "OAUTH_CODE_LIFETIME_SECONDS": "600",
        "OAUTH_ACCESS_TOKEN_LIFETIME_SECONDS": "86400",
    })
    if OTEL_ENDPOINT and (traces or not OTEL_PAIR):
        # traces on, with OpenTelemetry's default sampler (every trace)
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = OTEL_ENDPOINT
    return env


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


NO_REDIRECT = urllib.request.build_opener(_NoRedirect)


def http_headers(method, url, *, data=None, headers=None, timeout=120):
    """As http(), redirects not followed: (status, headers, body)."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with NO_REDIRECT.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def basic_auth(client: dict) -> str:
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def jwt_header(token: str) -> dict:
    try:
        part = token.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}


def oauth_token(base, client: dict, form: dict) -> dict:
    body = urllib.parse.urlencode(form).encode()
    status, raw = http("POST", base + "/oauth/token", data=body,
                       headers={"content-type": "application/x-www-form-urlencoded",
                                "authorization": basic_auth(client)})
    if status != 200:
        raise BenchError(f"POST /oauth/token ({form.get('grant_type')}) answered {status}: "
                         f"{raw[:300]!r}")
    return json.loads(raw)


def browser_cookie(base, email, password) -> str:
    """POST /auth/cookie/login: the `name=value` of the session cookie it sets."""
    body = urllib.parse.urlencode({"username": email, "password": password}).encode()
    status, headers, raw = http_headers(
        "POST", base + "/auth/cookie/login", data=body,
        headers={"content-type": "application/x-www-form-urlencoded"})
    cookie = (headers.get("set-cookie") or "").split(";")[0]
    if status != 204 or "=" not in cookie:
        raise BenchError(f"cookie login of {email} answered {status}: {raw[:300]!r}")
    return cookie


def authorize_path(client: dict, scope: str = "openid") -> str:
    """GET /oauth/authorize for a code (scope openid, PKCE S256 of OAUTH_VERIFIER)."""
    challenge = b64url(hashlib.sha256(OAUTH_VERIFIER.encode()).digest())
    return "/oauth/authorize?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client["client_id"],
        "redirect_uri": OAUTH_REDIRECT, "scope": scope, "state": "bench",
        "code_challenge": challenge, "code_challenge_method": "S256"})


def code_exchange_form(code: str) -> str:
    return urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": OAUTH_REDIRECT,
                                   "code_verifier": OAUTH_VERIFIER})


def code_of(location: str):
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code")
    return code[0] if code else None


def remember_consent(base, client: dict, cookie: str, scope: str) -> None:
    """Allows `client` `scope` once, as a person does on the consent page (GET
    /oauth/authorize → 302 to the page → its form posted with `decision=allow`): the
    consent is remembered, and later requests of the person go straight to a code."""
    status, headers, raw = http_headers("GET", base + authorize_path(client, scope),
                                        headers={"cookie": cookie})
    loc = headers.get("location") or ""
    request = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query).get("request")
    if status != 302 or "/oauth/consent" not in loc or not request:
        raise BenchError(f"/oauth/authorize before consent answered {status} to {loc!r}")
    status, page = http("GET", base + "/oauth/consent?" + urllib.parse.urlencode(
        {"request": request[0]}), headers={"cookie": cookie})
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page)
    if status != 200 or not csrf:
        raise BenchError(f"the consent page answered {status} without a csrf field")
    body = urllib.parse.urlencode({"request": request[0], "csrf": csrf.group(1).decode(),
                                   "decision": "allow"}).encode()
    status, headers, raw = http_headers(
        "POST", base + "/oauth/consent", data=body,
        headers={"cookie": cookie, "content-type": "application/x-www-form-urlencoded"})
    if status != 302 or not code_of(headers.get("location") or ""):
        raise BenchError(f"allowing on the consent page answered {status}: {raw[:300]!r}")
    # now remembered: the next request goes straight to a code
    status, headers, raw = http_headers("GET", base + authorize_path(client, scope),
                                        headers={"cookie": cookie})
    if status != 302 or not code_of(headers.get("location") or ""):
        raise BenchError(f"the consent was not remembered: {status} to "
                         f"{headers.get('location')!r}")


def grant_tokens(base, client: dict, cookie: str, scope: str) -> dict:
    """The token answer of one code flow of the person of `cookie` (consent given)."""
    status, headers, raw = http_headers("GET", base + authorize_path(client, scope),
                                        headers={"cookie": cookie})
    code = code_of(headers.get("location") or "")
    if status != 302 or not code:
        raise BenchError(f"/oauth/authorize answered {status} to "
                         f"{headers.get('location')!r}: {raw[:300]!r}")
    status, raw = http("POST", base + "/oauth/token", data=code_exchange_form(code).encode(),
                       headers={"content-type": "application/x-www-form-urlencoded",
                                "authorization": basic_auth(client)})
    if status != 200:
        raise BenchError(f"code exchange answered {status}: {raw[:300]!r}")
    return json.loads(raw)


def person_token(base, client: dict, email, password) -> str:
    """A person's access token from the code flow: cookie sign-in, /oauth/authorize (the
    client skips consent), the code exchanged at /oauth/token."""
    cookie = browser_cookie(base, email, password)
    status, headers, raw = http_headers("GET", base + authorize_path(client),
                                        headers={"cookie": cookie})
    loc = headers.get("location") or ""
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query).get("code")
    if status not in (302, 303) or not code:
        raise BenchError(f"/oauth/authorize answered {status} to {loc!r}: {raw[:300]!r}")
    body = code_exchange_form(code[0]).encode()
    status, raw = http("POST", base + "/oauth/token", data=body,
                       headers={"content-type": "application/x-www-form-urlencoded",
                                "authorization": basic_auth(client)})
    if status != 200:
        raise BenchError(f"code exchange answered {status}: {raw[:300]!r}")
    return json.loads(raw)["access_token"]


def find_pgbench() -> str | None:
    """pgbench: on PATH, else in `pg_config --bindir`, else in a Debian-style
    /usr/lib/postgresql/<version>/bin (the newest), where the server packages put it."""
    found = shutil.which("pgbench")
    if found:
        return found
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = tool_version([pg_config, "--bindir"])
        if bindir and Path(bindir, "pgbench").exists():
            return str(Path(bindir, "pgbench"))

    def version(path):
        m = re.search(r"/postgresql/(\d+)", path)
        return int(m.group(1)) if m else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), key=version)
    return found[-1] if found else None


def seed_over_http(base, n, run_id, password=SEED_PASSWORD, workers=8):
    """Registers n users and logs each in: returns [(email, password, token, user id)]."""
    emails = [f"bench-seed-{run_id}-{i}@example.com" for i in range(n)]

    def one(email):
        status, raw = register(base, email, password)
        if status != 201:
            raise BenchError(f"register of {email} answered {status}: {raw[:300]!r}")
        return email, password, login(base, email, password), json.loads(raw).get("id")

    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(one, emails))


def make_api_keys(base, tokens, workers=8) -> list[str]:
    """One API key per session token (POST /users/me/api-keys; the sessions are fresh, so
    no password is needed): the keys, in the order of `tokens`."""
    def one(i_token):
        i, token = i_token
        body = json.dumps({"name": f"bench-{i}"}).encode()
        status, raw = http("POST", base + "/users/me/api-keys", data=body,
                           headers={"content-type": "application/json",
                                    "authorization": f"Bearer {token}"})
        if status != 201:
            raise BenchError(f"POST /users/me/api-keys answered {status}: {raw[:300]!r}")
        return json.loads(raw)["key"]

    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(one, enumerate(tokens)))


def scrape_status_counts(base) -> dict:
    """users only: users_http_requests_total by (route, status) from /metrics."""
    try:
        status, raw = http("GET", base + "/metrics", timeout=10)
    except (OSError, urllib.error.URLError):
        return {}
    if status != 200:
        return {}
    out = {}
    for line in raw.decode(errors="replace").splitlines():
        if not line.startswith("users_http_requests_total{"):
            continue
        labels, _, value = line.rpartition(" ")
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        key = f"{lab.get('method', '?')} {lab.get('route', '?')} {lab.get('status', '?')}"
        try:
            out[key] = out.get(key, 0) + float(value)
        except ValueError:
            pass
    return out


def scrape_refresh_counts(base) -> dict:
    """users only: users_refreshes_total by result (rotated, converged, reused, invalid).
    `converged` is a spent token presented again within REFRESH_REUSE_INTERVAL_SECONDS:
    answered 200, but a sign that two requests shared a chain."""
    try:
        status, raw = http("GET", base + "/metrics", timeout=10)
    except (OSError, urllib.error.URLError):
        return {}
    if status != 200:
        return {}
    out = {}
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith("users_refreshes_total{"):
            labels, _, value = line.rpartition(" ")
            result = dict(re.findall(r'(\w+)="([^"]*)"', labels)).get("result", "?")
            try:
                out[result] = out.get(result, 0) + float(value)
            except ValueError:
                pass
    return out


# ----------------------------------------------------------------------------------------
# wrk
# ----------------------------------------------------------------------------------------

class Wrk:
    def __init__(self, binary: str, threads: int, tmp: Path, quick: bool):
        self.binary, self.threads, self.tmp, self.quick = binary, threads, tmp, quick
        self.count = 0

    def run(self, base, scenario, conns, seconds, data_file=None, track=False,
            spec=None) -> dict:
        method, path, mode = spec or SCENARIOS[scenario]
        self.count += 1
        threads = min(self.threads, conns)
        env = {
            **os.environ,
            "BENCH_MODE": mode,
            "BENCH_DATA": str(data_file or ""),
            "BENCH_PREFIX": f"{secrets.token_hex(4)}{self.count}",
            "BENCH_PASSWORD": REGISTER_PASSWORD,
            "BENCH_TRACK": "1" if track else "0",
            "BENCH_THREADS": str(threads),
            "BENCH_VERIFIER": OAUTH_VERIFIER,
            "BENCH_REDIRECT": OAUTH_REDIRECT,
        }
        cmd = [self.binary, "-t", str(threads), "-c", str(conns),
               "-d", f"{seconds}s", "--timeout", "60s", "--latency", "-s", str(LUA),
               base + path]
        p = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=seconds + 120)
        line = next((l for l in p.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
        if p.returncode != 0 or line is None:
            raise BenchError(f"wrk failed ({p.returncode}): {p.stderr[-2000:]}\n{p.stdout[-2000:]}")
        res = json.loads(line[len("BENCH_JSON "):])
        if res.get("once_active_us"):
            # mode once: every thread spent its lines and stopped before wrk's duration
            # ended; the rates are over the span they were sending
            res["wrk_duration_us"], res["duration_us"] = res["duration_us"], res["once_active_us"]
        dur = res["duration_us"] / 1e6
        res["rps"] = res["requests"] / dur if dur > 0 else 0.0
        e = res["errors"]
        res["non_2xx"] = e["status"]
        res["socket_errors"] = e["connect"] + e["read"] + e["write"] + e["timeout"]
        res["ok_rps"] = (res["requests"] - e["status"]) / dur if dur > 0 else 0.0
        return res


# ----------------------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------------------

def add_counts(dicts) -> dict:
    out = {}
    for d in dicts:
        for k, v in (d or {}).items():
            out[k] = out.get(k, 0) + v
    return out


def merge_rounds(rows: list[dict]) -> dict:
    """One cell from its rounds (the same system, scenario and connections measured several
    times, interleaved with its baseline twin): req/s and each latency percentile are the
    median of the rounds (min and max their extremes), the peak RSS the highest; requests,
    errors and statuses are summed (an error in any round counts). `rounds` keeps each
    round's own numbers, in the order measured. A single round is returned as it is."""
    if len(rows) == 1:
        return rows[0]
    med = statistics.median
    cell = {k: v for k, v in rows[0].items() if k not in ("round", "seq", "started_at")}
    cell["rps"] = med(r["rps"] for r in rows)
    cell["ok_rps"] = med(r["ok_rps"] for r in rows)
    cell["latency_us"] = {
        q: (min if q == "min" else max if q == "max" else med)(r["latency_us"][q] for r in rows)
        for q in rows[0]["latency_us"]}
    for k in ("requests", "bytes", "duration_us", "non_2xx", "socket_errors"):
        cell[k] = sum(r[k] for r in rows)
    for k in ("errors", "statuses", "server_status_counts", "chains", "server_refreshes"):
        if any(k in r for r in rows):
            cell[k] = add_counts(r.get(k) for r in rows)
    cell["samples"] = {k: v for r in reversed(rows) for k, v in r.get("samples", {}).items()}
    cell["peak_rss_kib"] = max(r["peak_rss_kib"] for r in rows)
    cell["server_cpu_s"] = sum(r.get("server_cpu_s") or 0 for r in rows)
    cell["server_cpu_us_per_request"] = (round(1e6 * cell["server_cpu_s"] / cell["requests"], 1)
                                         if cell["requests"] else None)
    cell["server_threads_after"] = rows[-1]["server_threads_after"]
    cell["drain_s"] = [d for r in rows for d in r["drain_s"]]
    # traces (--otel, --otel-pair): summed over the rounds
    for k in ("server_thread_cpu_s", "otlp_sink"):
        if any(k in r for r in rows):
            cell[k] = {n: round(v, 2) for n, v in add_counts(r.get(k) for r in rows).items()}
    if any("spans_dropped" in r for r in rows):
        cell["spans_dropped"] = sum(r.get("spans_dropped", 0) for r in rows)
    diag = next((r["diagnostic"] for r in rows if r.get("diagnostic")), None)
    if diag:
        cell["diagnostic"] = diag
    cell["rounds"] = [{
        "round": r.get("round"), "seq": r.get("seq"), "started_at": r.get("started_at"),
        "rps": r["rps"], "ok_rps": r["ok_rps"], "p50_us": r["latency_us"]["p50"],
        "p99_us": r["latency_us"]["p99"], "non_2xx": r["non_2xx"],
        "socket_errors": r["socket_errors"], "peak_rss_kib": r["peak_rss_kib"],
        "server_cpu_us_per_request": r.get("server_cpu_us_per_request"),
        **{k: r[k] for k in ("server_thread_cpu_s", "otlp_sink", "spans_dropped") if k in r},
    } for r in rows]
    return cell


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 10)
        self.duration = args.duration if args.duration is not None else (3 if args.quick else 30)
        self.scale = args.scale_users or (10_000 if args.quick else 1_000_000)
        self.base_users = 1_000
        self.n_tokens = 16 if args.quick else 64
        self.db_pool = args.db_pool
        self.ceiling_seconds = 3 if args.quick else 10
        self.conns = [int(c) for c in args.connections.split(",") if c.strip()]
        self.nproc = os.cpu_count() or 1
        self.only = [s.strip() for s in args.only.split(",")] if args.only else None
        self.scen_filter = ([s.strip() for s in args.scenarios.split(",")]
                            if args.scenarios else None)
        # measured runs per cell of each system, interleaved with its baseline twin's
        self.rounds = args.rounds or (2 if args.baseline or args.otel_pair else 1)
        self.seq = 0  # measured runs so far, in order (each round records its own)
        self.jwt_secret = secrets.token_hex(32)
        self.tmp = Path(tempfile.mkdtemp(prefix="users-bench-"))
        self.pg_admin = args.postgres_url.rstrip("/")
        self.pg_dbs: list[str] = []
        self.results = {
            "meta": {}, "ceilings": {}, "runs": [], "scaling": [], "timing": [], "systems": {},
            "skipped": [], "targets": [],
        }
        self.want_pgbench = False  # decided in run()

    # -- selection ---------------------------------------------------------------------

    def selected(self, name: str) -> bool:
        if SYSTEMS.get(name, {}).get("baseline_of") and not self.args.baseline:
            return False
        twin_of = SYSTEMS.get(name, {}).get("otel_of")
        if twin_of:
            # measured with its system: selected with it
            return bool(self.args.otel_pair) and self.selected(twin_of)
        if self.only is None:
            return True
        return any(fnmatch.fnmatch(name, pat) for pat in self.only)

    def scenarios_of(self, system: str) -> list[str]:
        sc = SYSTEMS[system]["scenarios"]
        if self.scen_filter is None:
            return list(sc)
        want = set(self.scen_filter)
        if "me" in want or "refresh" in want:
            # /users/me's HTTP floor comes with them, as the argon2 ceilings come with every
            # run: the report sets /users/me and refresh against it (Report.db_ceiling,
            # Report.refresh_table)
            want.add("me_401")
        return [s for s in sc if s in want]

    # -- postgres ------------------------------------------------------------------------

    def pg_available(self) -> bool:
        if not shutil.which("psql"):
            return False
        p = run_cmd(["psql", self.pg_admin + "/postgres", "-qAtc", "select 1"], check=False,
                    timeout=20)
        return p.returncode == 0

    def pg_create(self, tag: str) -> str:
        name = f"users_bench_{tag}_{secrets.token_hex(4)}"
        run_cmd(["psql", self.pg_admin + "/postgres", "-v", "ON_ERROR_STOP=1", "-qc",
                 f'CREATE DATABASE "{name}"'], timeout=60)
        self.pg_dbs.append(name)
        return f"{self.pg_admin}/{name}?sslmode={self.args.pg_sslmode}"

    def pg_drop(self, name: str):
        run_cmd(["psql", self.pg_admin + "/postgres", "-qc",
                 f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False, timeout=60)
        if name in self.pg_dbs:
            self.pg_dbs.remove(name)

    def pg_drop_all(self):
        for name in self.pg_dbs:
            run_cmd(["psql", self.pg_admin + "/postgres", "-qc",
                     f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False, timeout=60)
        self.pg_dbs.clear()

    def db_url(self, backend: str, tag: str) -> str:
        tag = re.sub(r"[^A-Za-z0-9_-]", "_", tag)  # "users-sqlite@base": no "@" in a URL
        if backend == "sqlite":
            d = self.tmp / f"{tag}-{secrets.token_hex(3)}"
            d.mkdir()
            return f"sqlite://{d / 'users.db'}"
        return self.pg_create(tag)

    # -- servers -------------------------------------------------------------------------

    def server_binary(self, name: str) -> Path:
        """The users-server a system runs: the baseline's for a @base twin."""
        if SYSTEMS.get(name, {}).get("baseline_of"):
            return Path(self.results["meta"]["baseline"]["binary"])
        current = self.results["meta"].get("current")
        if current:
            return Path(current["binary"])
        return self.bins["server"]

    def start_users(self, name: str, database_url: str, argon2) -> Server:
        port = free_port()
        mail = self.tmp / f"mail-{name}-{port}"
        env = service_env(database_url, port, self.jwt_secret, mail, argon2, self.db_pool,
                          traces=bool(SYSTEMS.get(name, {}).get("otel_of")))
        srv = Server(name, [str(self.server_binary(name))], env, port, self.tmp, self.tmp)
        srv.env = env  # for the CLI on the same database (Bench.oauth_setup)
        try:
            srv.wait_ready()
        except BenchError:
            srv.stop()
            raise
        return srv

    def peer_pool(self) -> dict:
        """The PostgreSQL peer's SQLAlchemy pool per uvicorn worker: the users server's
        connections (--db-pool) shared out over the workers, no overflow, so that both hold
        at most as many PostgreSQL connections (10 on 2 cores: 5 a worker)."""
        return {"workers": self.nproc, "pool_size": max(1, -(-self.db_pool // self.nproc)),
                "max_overflow": 0}

    def start_peer(self, name: str) -> Server:
        py = self.peer_py
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
        env.update({"JWT_SECRET": self.jwt_secret, "PYTHONDONTWRITEBYTECODE": "1"})
        pool = None
        if SYSTEMS[name]["backend"] == "postgres":
            pool = self.peer_pool()
            env.update({
                "DATABASE_URL": asyncpg_url(self.pg_create(name.replace("-", "_")),
                                            self.args.pg_sslmode),
                "DATABASE_POOL_SIZE": str(pool["pool_size"]),
                "DATABASE_MAX_OVERFLOW": str(pool["max_overflow"]),
            })
        else:
            db = self.tmp / f"fastapi-users-{secrets.token_hex(3)}.db"
            env["DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
        run_cmd([str(py), str(PEER_APP_DIR / "app.py"), "--create-tables"], env=env,
                cwd=self.tmp, timeout=120)
        cmd = [str(VENV / "bin" / "uvicorn"), "app:app", "--app-dir", str(PEER_APP_DIR),
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.nproc),
               "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--log-level", "warning"]
        srv = Server(name, cmd, env, port, self.tmp, self.tmp)
        srv.db_pool = pool  # for the report (Bench.start_system)
        try:
            srv.wait_ready()
        except BenchError:
            srv.stop()
            raise
        # --workers N: make sure every worker is up (each answers on the shared socket)
        time.sleep(1.0)
        return srv

    # -- one measured cell ---------------------------------------------------------------

    def measure(self, srv: Server, system: str, scenario: str, conns: int, data_file,
                kind: str, extra: dict | None = None, round_no: int | None = None) -> dict:
        """One measured run. With `round_no` (one of several rounds of a cell, see
        Bench.system) the row also records the round, its place in the run's order of
        measured runs (`seq`) and when it started."""
        label = f"{system} {scenario} c={conns}"
        if round_no:
            label += f" round {round_no}/{self.rounds}"
        # `data_file` may be a callable making fresh data for each wrk run (see
        # Bench.seed_system): refresh chains are spent by the run that uses them
        data = data_file(conns) if callable(data_file) else data_file
        drain = [srv.wait_idle()]
        log(f"{label}: warm-up {self.warmup} s")
        if self.warmup > 0:
            self.wrk.run(srv.base, scenario, conns, self.warmup, data)
            if callable(data_file):
                data = data_file(conns)
            drain.append(srv.wait_idle())
        before = scrape_status_counts(srv.base) if kind == "users" else {}
        chain = kind == "users" and SCENARIOS[scenario][2] == "refresh"
        refreshes_before = scrape_refresh_counts(srv.base) if chain else {}
        expected = EXPECTED_STATUS.get(scenario)
        self.seq += 1
        started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        traced = kind == "users" and OTEL_SINK is not None and (
            not OTEL_PAIR or bool(SYSTEMS.get(system, {}).get("otel_of")))
        sink0 = OTEL_SINK.stats() if traced else None
        dropped0 = spans_dropped(srv.log_path) if traced else 0
        threads0 = thread_cpu_seconds(srv.proc.pid)
        t0, cpu0 = time.monotonic(), tree_cpu_seconds(srv.proc.pid)
        res = self.wrk.run(srv.base, scenario, conns, self.duration, data,
                           track=expected is not None)
        t1, cpu1 = time.monotonic(), tree_cpu_seconds(srv.proc.pid)
        threads1 = thread_cpu_seconds(srv.proc.pid)
        # the server's threads' CPU during the run, by name (actix's workers, the blocking
        # pool, the exporter's `otlp-export`, ...)
        res["server_thread_cpu_s"] = {
            k: round(v - threads0.get(k, 0), 2) for k, v in sorted(threads1.items())
            if v - threads0.get(k, 0) >= 0.01}
        # the server's own CPU time (user + system) per request: what a request costs it,
        # steadier than req/s when the machine's speed drifts
        res["server_cpu_s"] = round(cpu1 - cpu0, 2)
        res["server_cpu_us_per_request"] = (
            round(1e6 * (cpu1 - cpu0) / res["requests"], 1) if res["requests"] else None)
        if expected is not None:
            # every answer should be `expected` (or one of ACCEPTED_STATUSES): count the
            # others as the errors
            accepted = ACCEPTED_STATUSES.get(scenario, (expected,))
            got = sum(int(res["statuses"].get(s, 0)) for s in accepted)
            dur = res["duration_us"] / 1e6
            res["expected_status"] = expected
            res["non_2xx"] = res["requests"] - got
            done = int(res["statuses"].get(expected, 0))
            res["ok_rps"] = done / dur if dur > 0 else 0.0
        after = scrape_status_counts(srv.base) if kind == "users" else {}
        if chain:
            # what the server made of them: every one should be `rotated`
            refreshes_after = scrape_refresh_counts(srv.base)
            res["server_refreshes"] = {
                k: int(v - refreshes_before.get(k, 0)) for k, v in refreshes_after.items()}
        res["peak_rss_kib"] = srv.sampler.peak(t0, t1)
        res["server_threads_after"] = srv.threads()
        if traced:
            # what reached the sink during the measured run and the sink's CPU time (it
            # shares the machine's cores with the server and wrk)
            sink1 = OTEL_SINK.stats()
            res["otlp_sink"] = {
                "export_requests": sink1["requests"] - sink0["requests"],
                "bytes": sink1["bytes"] - sink0["bytes"],
                "cpu_s": round(sink1["cpu_s"] - sink0["cpu_s"], 2),
            }
        drain.append(srv.wait_idle())
        if traced:
            # logged at the next export after the queue overflowed: read after the drain
            res["spans_dropped"] = spans_dropped(srv.log_path) - dropped0
        res["drain_s"] = [round(d, 1) for d in drain]
        if max(drain) > 2:
            log(f"{label}: the server kept working {max(drain):.1f} s after wrk stopped "
                f"(abandoned requests)")
        res["server_status_counts"] = {k: int(after[k] - before.get(k, 0)) for k in after
                                       if after[k] - before.get(k, 0) > 0
                                       and "/metrics" not in k}
        if (res["non_2xx"] or res["socket_errors"]) and expected is None:
            log(f"{label}: {res['non_2xx']} non-2xx, {res['socket_errors']} socket errors: "
                f"a 3 s diagnostic re-run records statuses and sample bodies")
            if callable(data_file):
                data = data_file(conns)
            diag = self.wrk.run(srv.base, scenario, conns, 3, data, track=True)
            srv.wait_idle()
            res["diagnostic"] = {k: diag[k] for k in ("requests", "statuses", "samples",
                                                       "errors")}
        row = {"system": system, "scenario": scenario, "connections": conns,
               "warmup_s": self.warmup, "duration_s": self.duration, **(extra or {}), **res}
        if round_no:
            row.update(round=round_no, seq=self.seq, started_at=started_at)
        chains = ""
        if SCENARIOS[scenario][2] in ("refresh", "oauth_refresh"):
            c = res.get("chains") or {}
            chains = (f", {res['ok_rps']:.1f} rotations/s; chains: {c.get('tokens', 0)} tokens, "
                      f"{c.get('starved', 0)} requests without one, {c.get('unparsed', 0)} "
                      f"200s without a refresh_token; server: {res.get('server_refreshes')}")
        bad = "non-200" if expected == "200" else (f"not {expected}" if expected else "non-2xx")
        log(f"{label}: {res['rps']:.1f} req/s, p50 {res['latency_us']['p50'] / 1000:.2f} ms, "
            f"p99 {res['latency_us']['p99'] / 1000:.2f} ms, {bad} {res['non_2xx']}, "
            f"socket errors {res['socket_errors']}, peak RSS {res['peak_rss_kib'] / 1024:.1f} MiB, "
            f"server CPU {res['server_cpu_us_per_request']} µs/request{chains}")
        return row

    def timing_probe(self, srv: Server, system: str, registered: list, run_id: str) -> dict:
        """Failed logins as an attacker probing for accounts would send them: pairs of
        (registered email + wrong password, never-seen email), each pair in random order,
        one request at a time on each of `cores` keep-alive connections, every request
        timed. Interleaving cancels drifts of the machine's speed, which separate wrk runs
        minutes apart do not; with no more requests in flight than cores, nothing queues."""
        pairs = 25 if self.quick else 200
        workers = self.nproc
        srv.wait_idle()
        log(f"{system} timing: {pairs} interleaved pairs on each of {workers} connections")
        host, port = "127.0.0.1", srv.port

        def client(w: int):
            rng = random.Random(f"{run_id}-{w}")
            conn = HTTPConnection(host, port, timeout=120)
            out = {"registered": [], "unregistered": [], "statuses": {}}
            for i in range(pairs):
                kinds = ["registered", "unregistered"]
                rng.shuffle(kinds)
                for kind in kinds:
                    email = (rng.choice(registered) if kind == "registered"
                             else f"bench-probe-{run_id}-{w}-{i}@example.com")
                    pw = WRONG_PASSWORD if kind == "registered" else SEED_PASSWORD
                    body = urllib.parse.urlencode({"username": email, "password": pw})
                    t0 = time.perf_counter()
                    conn.request("POST", "/auth/jwt/login", body=body, headers={
                        "content-type": "application/x-www-form-urlencoded"})
                    resp = conn.getresponse()
                    resp.read()
                    out[kind].append((time.perf_counter() - t0) * 1e6)
                    out["statuses"][str(resp.status)] = out["statuses"].get(str(resp.status), 0) + 1
            conn.close()
            return out

        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            parts = list(ex.map(client, range(workers)))
        reg = sorted(x for p in parts for x in p["registered"])
        unr = sorted(x for p in parts for x in p["unregistered"])
        statuses = {}
        for p in parts:
            for k, v in p["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v

        def q(xs, f):
            return xs[min(len(xs) - 1, int(f * len(xs)))]

        # 95% bootstrap interval of the difference of medians (unregistered - registered)
        rng = random.Random(run_id)
        diffs = sorted(
            q(sorted(rng.choices(unr, k=len(unr))), 0.5) - q(sorted(rng.choices(reg, k=len(reg))), 0.5)
            for _ in range(1000))
        row = {
            "system": system, "pairs_per_connection": pairs, "connections": workers,
            "registered_us": {"n": len(reg), "p10": q(reg, 0.1), "p50": q(reg, 0.5),
                              "p90": q(reg, 0.9), "mean": sum(reg) / len(reg)},
            "unregistered_us": {"n": len(unr), "p10": q(unr, 0.1), "p50": q(unr, 0.5),
                                "p90": q(unr, 0.9), "mean": sum(unr) / len(unr)},
            "p50_ratio": q(unr, 0.5) / max(q(reg, 0.5), 1),
            "p50_diff_us_ci95": [q(diffs, 0.025), q(diffs, 0.975)],
            "statuses": statuses,
        }
        log(f"{system} timing: registered p50 {row['registered_us']['p50'] / 1000:.2f} ms, "
            f"unregistered p50 {row['unregistered_us']['p50'] / 1000:.2f} ms "
            f"({row['p50_ratio']:.3f}×), statuses {statuses}")
        return row

    def write_lines(self, name: str, lines) -> Path:
        path = self.tmp / name
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- phases --------------------------------------------------------------------------

    def ceilings(self, key: str = "ceilings"):
        for label, params in (("users", ARGON2_USERS), ("fastapi-users", ARGON2_FASTAPI_USERS)):
            m, t, p = params
            log(f"argon2id ceiling m={m} t={t} p={p}, {self.nproc} threads, "
                f"{self.ceiling_seconds} s")
            out = run_cmd([str(self.bins["ceiling"]), "--memory-kib", str(m), "--iterations",
                           str(t), "--parallelism", str(p), "--seconds",
                           str(self.ceiling_seconds), "--threads", str(self.nproc)],
                          timeout=self.ceiling_seconds + 300)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            self.results.setdefault(key, {})[f"argon2_{m}_{t}_{p}"] = res
            log(f"  {res['hashes_per_sec']:.1f} hashes/s "
                f"({res['ms_per_hash_per_thread']:.1f} ms a hash a thread)")
        self.signing_ceiling(key)

    def signing_ceiling(self, key: str):
        """The signing ceiling of the provider's tokens: the `signing_speed` example (one
        thread; each access token signed as the service signs it) per algorithm, per wall
        second and per CPU second of its thread. The ceiling on this machine is the
        single-thread rate times the cores (nothing else running: an upper bound)."""
        seconds = 1 if self.quick else 3
        log(f"signing ceiling: signing_speed --seconds {seconds} --rounds 1")
        p = run_cmd([str(self.bins["signing"]), "--seconds", str(seconds), "--rounds", "1"],
                    timeout=300, check=False)
        pat = re.compile(r"^(\S+)\s+median of \d+: sign\s+(\d+)/s \(\s*(\d+)/CPU-s\)\s+"
                         r"verify\s+(\d+)/s \(\s*(\d+)/CPU-s\)")
        for line in p.stdout.splitlines():
            m = pat.match(line.strip())
            if not m:
                continue
            alg = m.group(1)
            res = {"alg": alg, "sign_per_s_thread": int(m.group(2)),
                   "sign_per_cpu_s": int(m.group(3)), "verify_per_s_thread": int(m.group(4)),
                   "verify_per_cpu_s": int(m.group(5)), "cores": self.nproc,
                   "sign_ceiling_per_s": int(m.group(2)) * self.nproc}
            self.results.setdefault(key, {})[f"signing_{alg}"] = res
            log(f"  {alg}: sign {res['sign_per_s_thread']:,}/s a thread "
                f"({res['sign_per_cpu_s']:,}/CPU-s), verify {res['verify_per_s_thread']:,}/s")
        if p.returncode != 0:
            self.results["skipped"].append(f"signing_speed failed: {p.stderr[-300:]}")

    def pgbench_ceiling(self):
        self.want_pgbench = False  # once a run
        try:
            self._pgbench_ceiling()
        except (BenchError, subprocess.TimeoutExpired) as e:
            log(f"pgbench FAILED: {e}")
            self.results["skipped"].append(f"{PGBENCH}: failed: {str(e)[:500]}")

    def _pgbench_ceiling(self):
        """What PostgreSQL alone answers: `pgbench -S -M prepared` (one primary-key SELECT
        a transaction, prepared statements) with as many clients as the service's pool
        (DATABASE_MAX_CONNECTIONS) on a scratch database of the same server, initialised
        by `pgbench -i` and dropped afterwards; a short warm-up, then the cells'
        duration."""
        if not self.pg_ok:
            self.results["skipped"].append(f"{PGBENCH}: PostgreSQL not reachable at "
                                           f"{self.pg_admin}")
            return
        pgb = find_pgbench()
        if not pgb:
            self.results["skipped"].append(f"{PGBENCH}: no pgbench (looked on PATH, in "
                                           f"`pg_config --bindir` and /usr/lib/postgresql/*/bin)")
            log("skipping pgbench: not found")
            return
        clients, jobs, scale = self.db_pool, min(self.nproc, self.db_pool), 1
        warm = min(self.warmup, 5)
        # the refresh shape too, when a PostgreSQL system measures refresh
        rotation = any(self.selected(n) and spec["kind"] == "users"
                       and spec["backend"] == "postgres" and "refresh" in self.scenarios_of(n)
                       for n, spec in SYSTEMS.items())
        url = self.pg_create("pgbench")
        db = self.pg_dbs[-1]
        log(f"pgbench -S -M prepared: {clients} clients (the service's pool), {jobs} threads, "
            f"scale {scale}, {warm} s warm-up + {self.duration} s, database {db}")
        script = self.tmp / "pgbench-rotation.sql"
        script.write_text(PGBENCH_ROTATION)
        try:
            t0 = time.time()
            run_cmd([pgb, "-i", "-q", "-s", str(scale), url], timeout=600)
            init_s = time.time() - t0
            common = ["-M", "prepared", "-n", "-c", str(clients), "-j", str(jobs)]
            runs = {"pgbench": [pgb, "-S", *common]}
            if rotation:
                runs["pgbench_rotation"] = [pgb, "-f", str(script), *common]
            outs = {}
            for key, base in runs.items():
                if warm > 0:
                    run_cmd(base + ["-T", str(warm), url], timeout=warm + 120)
                started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds")
                out = run_cmd(base + ["-T", str(self.duration), url],
                              timeout=self.duration + 120).stdout
                outs[key] = (base, started_at, out)
        finally:
            self.pg_drop(db)

        for key, (base, started_at, out) in outs.items():
            def num(pattern, cast=float):
                m = re.search(pattern, out)
                return cast(m.group(1)) if m else None

            tps = (num(r"tps = ([\d.]+) \((?:without initial connection time|excluding)")
                   or num(r"tps = ([\d.]+)"))
            if tps is None:
                raise BenchError(f"pgbench printed no tps:\n{out[-2000:]}")
            command = " ".join(["pgbench"] + base[1:] + ["-T", str(self.duration)])
            res = {
                "tps": tps, "clients": clients, "threads": jobs, "scale": scale,
                "warmup_s": warm, "duration_s": self.duration, "started_at": started_at,
                "transactions": num(r"number of transactions actually processed: (\d+)", int),
                # pgbench 15 on; None when it does not say
                "failed": num(r"number of failed transactions: (\d+)", int),
                "latency_avg_ms": num(r"latency average = ([\d.]+) ms"),
                "init_s": round(init_s, 1), "version": tool_version([pgb, "--version"]),
                "command": command.replace(str(script), script.name),
            }
            if key == "pgbench_rotation":
                res["script"] = PGBENCH_ROTATION
            self.results[key] = res
            log(f"{key}: {tps:,.0f} tps, latency average {res['latency_avg_ms']} ms, "
                f"{res['failed'] if res['failed'] is not None else '?'} failed")

    def ceiling_for(self, argon2) -> float | None:
        c = self.results["ceilings"].get("argon2_{}_{}_{}".format(*argon2))
        return c["hashes_per_sec"] if c else None

    def system(self, names: list[str]):
        """Measures one system, or a system and its baseline twin side by side (same spec,
        another users-server): both are started and seeded, then for each scenario and
        connection count the rounds alternate between them, the order swapped every round
        (current, baseline; baseline, current; ...), so that a drift of the machine's speed
        hits both alike. A cell is
        reported as the median of its rounds (merge_rounds)."""
        spec = SYSTEMS[names[0]]
        scenarios = self.scenarios_of(names[0])
        if not scenarios:
            return
        if spec["backend"] == "postgres" and not self.pg_ok:
            for name in names:
                self.results["skipped"].append(f"{name}: PostgreSQL not reachable at {self.pg_admin}")
                log(f"skipping {name}: PostgreSQL is not reachable")
            return
        if (self.want_pgbench and spec["kind"] == "users" and spec["backend"] == "postgres"
                and {"me", "refresh"} & set(scenarios)):
            # just before the /users/me it is compared with, no server running
            self.pgbench_ceiling()
        rounds = (f" ({self.rounds} rounds a cell{', in turn' if len(names) > 1 else ''})"
                  if self.rounds > 1 else "")
        log(f"=== {' + '.join(names)}{rounds} ===")
        live = {}
        try:
            for name in names:
                live[name] = self.start_system(name)
            for name in names:
                self.seed_system(live[name])
            for scenario in scenarios:
                if scenario == TIMING:
                    for name, sut in live.items():
                        self.results["timing"].append(
                            self.timing_probe(sut["srv"], name, sut["emails"], sut["run_id"]))
                    continue
                conn_counts = [min(self.conns)] if scenario in PROBE_SCENARIOS else self.conns
                for conns in conn_counts:
                    rounds = {name: [] for name in names}
                    failed = set()
                    for i in range(1, self.rounds + 1):
                        # the pair's order swaps every round (A B, B A, A B, ...): a machine
                        # speeding up or slowing down through a cell favours neither side
                        turn = list(live.items())
                        if i % 2 == 0:
                            turn.reverse()
                        for name, sut in turn:
                            if name in failed:
                                continue
                            try:
                                rounds[name].append(self.measure(
                                    sut["srv"], name, scenario, conns, sut["data"].get(scenario),
                                    spec["kind"], {"backend": spec["backend"],
                                                   "argon2": list(spec["argon2"])},
                                    round_no=i if self.rounds > 1 else None))
                            except CellError as e:
                                failed.add(name)
                                log(f"{name} {scenario} c={conns} skipped: {e}")
                                self.results["skipped"].append(
                                    f"{name} {scenario} c={conns}: {str(e)[:300]}")
                    for name in names:
                        if rounds[name]:
                            self.results["runs"].append(merge_rounds(rounds[name]))
        finally:
            for name, sut in live.items():
                info = sut["info"]
                info.update(sut["srv"].stop())
                self.results["systems"][name] = info
                if info["log_findings"]["lines"]:
                    log(f"{name} logged {info['log_findings']['lines']} warning/error lines, "
                        f"e.g. {info['log_findings']['examples'][:2]}")

    def start_system(self, name: str) -> dict:
        """Starts a system on a fresh database: {srv, info (for the report), run_id}."""
        spec = SYSTEMS[name]
        if spec["kind"] == "users":
            url = self.db_url(spec["backend"], name)
            srv = self.start_users(name, url, spec["argon2"])
        else:
            srv = self.start_peer(name)
        info = {"kind": spec["kind"], "backend": spec["backend"],
                "argon2": list(spec["argon2"]), "port": srv.port}
        if getattr(srv, "db_pool", None):
            info["db_pool"] = srv.db_pool
        if spec.get("baseline_of"):
            info["baseline_commit"] = self.results["meta"]["baseline"]["commit"]
        if spec.get("otel_of") or (OTEL_ENDPOINT and not OTEL_PAIR and spec["kind"] == "users"):
            info["traces"] = "on: OTEL_EXPORTER_OTLP_ENDPOINT = the harness's sink, default sampler"
        return {"name": name, "srv": srv, "info": info, "run_id": secrets.token_hex(3)}

    def seed_system(self, sut: dict):
        """Seeds users over HTTP and writes the wrk data files of each scenario: adds
        `emails` (the seeded users') and `data` (scenario -> file) to `sut`."""
        name, srv, info, run_id = sut["name"], sut["srv"], sut["info"], sut["run_id"]
        t0 = time.time()
        seeded = seed_over_http(srv.base, self.n_tokens, run_id)
        info["seeded_users"] = len(seeded)
        info["seed_seconds"] = round(time.time() - t0, 2)
        log(f"{name}: seeded {len(seeded)} users over HTTP in {info['seed_seconds']} s")
        sut["emails"] = [s[0] for s in seeded]
        ids = [s[3] for s in seeded]
        # which claims the tokens of `me` and `me_nosession` carry (`sid`: a session)
        info["token_claims"] = {
            "me": jwt_claim_names(seeded[0][2]),
            "me_nosession": jwt_claim_names(mint_access_token(self.jwt_secret, ids[0])),
        }

        def minted(conns, name=name):
            # minted afresh for each wrk run: they live MINTED_TOKEN_LIFETIME seconds
            return self.write_lines(f"minted-{name}",
                                    [mint_access_token(self.jwt_secret, i) for i in ids])

        def chains(conns, sut=sut):
            return self.refresh_chains(sut, conns)

        sut["data"] = {
            "me": self.write_lines(f"tokens-{name}", [s[2] for s in seeded]),
            "me_nosession": minted,
            "refresh": chains,
            "login": self.write_lines(f"creds-{name}", [f"{s[0]}\t{s[1]}" for s in seeded]),
            "login_wrong": self.write_lines(f"wrong-{name}", [f"{s[0]}\t{WRONG_PASSWORD}"
                                                              for s in seeded]),
            "login_unknown": self.write_lines(f"unknown-{name}", [
                f"bench-nobody-{run_id}-{i}@example.com\t{SEED_PASSWORD}"
                for i in range(UNKNOWN_EMAILS)]),
        }
        if info["kind"] == "users" and "me_apikey" in SYSTEMS[name]["scenarios"]:
            # made now, while the seeded sessions are fresh enough to re-authenticate
            t0 = time.time()
            try:
                keys = make_api_keys(srv.base, [s[2] for s in seeded])
                log(f"{name}: made {len(keys)} API keys in {time.time() - t0:.1f} s")
                sut["data"]["me_apikey"] = self.write_lines(f"apikeys-{name}", keys)
            except BenchError as e:
                # a --baseline revision without API keys: its cells are skipped
                def no_keys(conns, why=str(e)):
                    raise CellError(f"no API keys: {why}")
                sut["data"]["me_apikey"] = no_keys
        wanted = [sc for sc in OAUTH_SCENARIOS if sc in self.scenarios_of(name)]
        if info["kind"] == "users" and wanted:
            try:
                sut["data"].update(self.oauth_setup(sut, seeded))
            except BenchError as e:
                # a --baseline revision without the provider: its cells are skipped
                log(f"{name}: the provider's scenarios cannot run: {e}")

                def no_provider(conns, why=str(e)):
                    raise CellError(f"no OAuth provider: {why}")
                for sc in wanted:
                    sut["data"][sc] = no_provider
        info["idle_rss_kib"] = srv.sampler.peak(time.monotonic() - 0.5)

    def oauth_setup(self, sut: dict, seeded: list) -> dict:
        """The provider's side of a users system: a superuser (`users-server create-user
        --superuser` on the system's database) registers three confidential clients (client
        credentials with EdDSA and with RS256; the code flow with EdDSA, scope openid,
        skip_consent); returns the wrk data of each OAuth scenario. Records in the system's
        info which algorithm signed each kind of token."""
        name, srv, info, run_id = sut["name"], sut["srv"], sut["info"], sut["run_id"]
        t0 = time.time()
        admin_email = f"bench-admin-{run_id}@example.com"
        p = run_cmd([str(self.server_binary(name)), "create-user", "--email", admin_email,
                     "--superuser", "--verified"],
                    env={**srv.env, "USERS_CREATE_PASSWORD": SEED_PASSWORD}, cwd=self.tmp,
                    timeout=120, check=False)
        if p.returncode != 0:
            raise BenchError(f"create-user --superuser failed: {(p.stderr or p.stdout)[-300:]}")
        admin = login(srv.base, admin_email, SEED_PASSWORD)

        def client(body):
            status, raw = http("POST", srv.base + "/oauth/clients",
                               data=json.dumps(body).encode(),
                               headers={"content-type": "application/json",
                                        "authorization": f"Bearer {admin}"})
            if status != 201:
                raise BenchError(f"POST /oauth/clients {body} answered {status}: {raw[:300]!r}")
            return json.loads(raw)

        cc = client({"client_name": "bench cc EdDSA", "grant_types": ["client_credentials"],
                     "id_token_signed_response_alg": "EdDSA"})
        cc_rs = client({"client_name": "bench cc RS256", "grant_types": ["client_credentials"],
                        "id_token_signed_response_alg": "RS256"})
        app = client({"client_name": "bench code EdDSA", "redirect_uris": [OAUTH_REDIRECT],
                      "grant_types": ["authorization_code"], "scope": "openid",
                      "skip_consent": True, "id_token_signed_response_alg": "EdDSA"})
        # the whole flow and the refresh: a client whose consent the person gives once
        flow_app = client({"client_name": "bench flow EdDSA", "redirect_uris": [OAUTH_REDIRECT],
                           "grant_types": ["authorization_code", "refresh_token"],
                           "scope": "openid offline_access",
                           "id_token_signed_response_alg": "EdDSA"})
        # the people of the whole flow and of the codes: every seeded user signed in in a
        # browser of their own (a cookie each), each having allowed the flow's client once,
        # all before any measured window, as a population of people would be
        def signed_in(s):
            cookie = browser_cookie(srv.base, s[0], s[1])
            remember_consent(srv.base, flow_app, cookie, "openid offline_access")
            return cookie

        cc_form = {"grant_type": "client_credentials"}
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            cookies = list(ex.map(signed_in, seeded))
            cc_tokens = list(ex.map(lambda _: oauth_token(srv.base, cc, cc_form)["access_token"],
                                    range(self.n_tokens)))
            people = list(ex.map(lambda s: person_token(srv.base, app, s[0], s[1]), seeded))
        flow_cookie = cookies[-1]
        rs_token = oauth_token(srv.base, cc_rs, cc_form)["access_token"]
        info["oauth_token_algs"] = {
            "oauth_cc": jwt_header(cc_tokens[0]).get("alg"),
            "oauth_cc_rs256": jwt_header(rs_token).get("alg"),
            "oauth_userinfo": jwt_header(people[0]).get("alg"),
        }
        log(f"{name}: the provider's clients and {len(cc_tokens)} + {len(people)} tokens in "
            f"{time.time() - t0:.1f} s (algorithms {info['oauth_token_algs']})")
        basic = basic_auth(cc)
        # the code exchange: codes of every seeded person, each from their own browser
        # session (until 2026-12-07: every code of one person's one session)
        mint = self.write_lines(f"authorize-{name}", [authorize_path(app), *cookies])

        def codes(conns, name=name, app=app):
            """Fresh codes for one wrk run: a wrk run of /oauth/authorize as long as a
            measured run (each of its 302s carries a code), then the exchange forms, one
            a line. The exchange run ends early if it spends them all."""
            t0 = time.time()
            res = self.wrk.run(srv.base, "oauth_code", conns, self.duration, mint,
                               spec=("GET", "/oauth/authorize", "mint"), track=True)
            lines = Path(str(mint) + ".codes").read_text().split()
            if not lines:
                raise CellError(f"/oauth/authorize gave no code: {res.get('statuses')} "
                                f"{res.get('samples')}")
            auth = basic_auth(app)
            log(f"{name}: {len(lines):,} codes minted by /oauth/authorize in "
                f"{time.time() - t0:.1f} s ({res['rps']:,.0f} req/s, statuses "
                f"{res.get('statuses')})")
            info.setdefault("oauth_authorize_runs", []).append(
                {"connections": conns, "codes": len(lines), "rps": round(res["rps"], 1),
                 "statuses": res.get("statuses"),
                 "p99_us": res["latency_us"]["p99"]})
            srv.wait_idle()
            return self.write_lines(f"codes-{name}-{secrets.token_hex(3)}",
                                    [f"{auth}\t{code_exchange_form(c)}" for c in lines])

        def grants(conns, name=name, flow_app=flow_app, cookie=flow_cookie):
            """One fresh grant per wrk connection (the code flow with scope `openid
            offline_access`): lines of the client's HTTP Basic and a refresh token. Fresh
            for every wrk run, as the first-party chains (Bench.refresh_chains)."""
            t0 = time.time()
            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                answers = list(ex.map(lambda _: grant_tokens(srv.base, flow_app, cookie,
                                                             "openid offline_access"),
                                      range(conns)))
            tokens = [a.get("refresh_token") for a in answers]
            if not all(tokens):
                raise CellError("a code exchange with offline_access answered no refresh_token")
            info["oauth_grants"] = info.get("oauth_grants", 0) + conns
            log(f"{name}: {conns} grants with refresh tokens, one per connection "
                f"({time.time() - t0:.1f} s)")
            auth = basic_auth(flow_app)
            return self.write_lines(f"grants-{name}-{secrets.token_hex(3)}",
                                    [f"{auth}\t{t}" for t in tokens])

        return {
            "oauth_refresh": grants,
            # one person per wrk connection (as many people as connections at c=64); the
            # shape before: every connection the same person with the same cookie
            "oauth_flow": self.write_lines(f"flow-{name}", [
                authorize_path(flow_app), basic_auth(flow_app), *cookies]),
            "oauth_flow_1": self.write_lines(f"flow1-{name}", [
                authorize_path(flow_app), basic_auth(flow_app), flow_cookie]),
            "oauth_cc": self.write_lines(f"cc-{name}", [f"{basic}\tgrant_type=client_credentials"]),
            "oauth_cc_rs256": self.write_lines(f"ccrs-{name}",
                                               [f"{basic_auth(cc_rs)}\tgrant_type=client_credentials"]),
            "oauth_introspect": self.write_lines(f"introspect-{name}",
                                                 [f"{basic}\ttoken={t}" for t in cc_tokens]),
            "oauth_userinfo": self.write_lines(f"userinfo-{name}", people),
            "oauth_code": codes,
        }

    def refresh_chains(self, sut: dict, conns: int) -> Path:
        """One fresh session per wrk connection (POST /auth/jwt/login with
        scope=offline_access, round-robin over the seeded users): a file of `conns`
        refresh tokens, one a line. Fresh for every wrk run: a run leaves its chains spent
        (the requests in flight when wrk stops rotate tokens nobody reads), and a spent token
        presented again ends its session."""
        srv, emails = sut["srv"], sut["emails"]
        t0 = time.time()

        def one(i):
            grant = login_grant(srv.base, emails[i % len(emails)], SEED_PASSWORD,
                                scope="offline_access")
            tok = grant.get("refresh_token")
            if not tok:
                raise CellError(f"login with scope=offline_access answered no refresh_token "
                                f"(keys {sorted(grant)})")
            return tok

        try:
            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                tokens = list(ex.map(one, range(conns)))
        except CellError:
            raise
        except BenchError as e:
            raise CellError(str(e)) from e
        sut["info"].setdefault("refresh_sessions", 0)
        sut["info"]["refresh_sessions"] += conns
        log(f"{sut['name']}: {conns} sessions with refresh tokens, one per connection "
            f"({time.time() - t0:.1f} s)")
        return self.write_lines(f"refresh-{sut['name']}-{secrets.token_hex(3)}", tokens)

    def scaling(self, name: str, backend: str):
        if backend == "postgres" and not self.pg_ok:
            self.results["skipped"].append(f"{name}: PostgreSQL not reachable")
            return
        scen = [s for s in ("me", "login") if self.scen_filter is None or s in self.scen_filter]
        if not scen:
            return
        log(f"=== {name}: {self.base_users:,} vs {self.scale:,} users ===")
        url = self.db_url(backend, name)
        m, t, p = ARGON2_USERS
        phc = run_cmd([str(self.bins["ceiling"]), "--memory-kib", str(m), "--iterations", str(t),
                       "--parallelism", str(p), "--hash", SEED_PASSWORD]).stdout.strip()
        seeded = 0
        for population in (self.base_users, self.scale):
            t0 = time.time()
            out = run_cmd([str(self.bins["seed"]), "--database-url", url, "--hash", phc,
                           "--start", str(seeded), "--count", str(population - seeded)],
                          timeout=7200)
            seed_info = json.loads(out.stdout.strip().splitlines()[-1])
            seeded = population
            log(f"seeded {seed_info['inserted']:,} users directly in {time.time() - t0:.1f} s "
                f"({seed_info['rows_per_sec']:,.0f} rows/s); {seed_info['users_total']:,} in all")
            if backend == "postgres":
                # as after any bulk load: fresh planner statistics
                run_cmd(["psql", url, "-qc", "VACUUM ANALYZE users"], check=False, timeout=3600)
            srv = self.start_users(f"{name}-{population}", url, ARGON2_USERS)
            try:
                rng = random.Random(population)
                picks = rng.sample(range(population), min(population, self.n_tokens))
                emails = [f"seed-{n}@example.com" for n in picks]
                with concurrent.futures.ThreadPoolExecutor(8) as ex:
                    toks = list(ex.map(lambda e: login(srv.base, e, SEED_PASSWORD), emails))
                tokens = self.write_lines(f"tokens-{name}-{population}", toks)
                cred_picks = rng.sample(range(population), min(population, 256))
                creds = self.write_lines(f"creds-{name}-{population}",
                                         [f"seed-{n}@example.com\t{SEED_PASSWORD}"
                                          for n in cred_picks])
                for scenario in scen:
                    data = tokens if scenario == "me" else creds
                    for conns in self.conns:
                        row = self.measure(srv, name, scenario, conns, data, "users",
                                           {"backend": backend, "population": population,
                                            "argon2": list(ARGON2_USERS),
                                            "seed": seed_info})
                        self.results["scaling"].append(row)
            finally:
                info = srv.stop()
                self.results["systems"][f"{name}-{population}"] = info

    # -- driver --------------------------------------------------------------------------

    def run(self):
        a = self.args
        meta = self.results["meta"]
        meta.update({
            "quick": self.quick,
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "warmup_s": self.warmup, "duration_s": self.duration,
            "connections": self.conns, "scale_users": self.scale,
            "base_users": self.base_users, "http_seeded_users": self.n_tokens,
            "only": self.only, "scenarios": self.scen_filter, "pg_sslmode": a.pg_sslmode,
            "rounds": self.rounds, "db_pool": self.db_pool,
            "traces": ("pair" if OTEL_PAIR else "on") if OTEL_ENDPOINT else "off",
        })
        meta["git"] = {
            "commit": tool_version(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
            "dirty": bool(tool_version(["git", "-C", str(ROOT), "status", "--porcelain",
                                        "--untracked-files=no"])),
        }
        with_baseline = any(self.selected(n) for n, s in SYSTEMS.items() if s.get("baseline_of"))
        if with_baseline:
            meta["baseline"] = resolve_baseline(a.baseline)
        if a.current:
            meta["current"] = resolve_baseline(a.current)
        wrk = ensure_wrk()
        meta["tools"] = {"wrk": tool_version([wrk, "-v"]),
                         "rustc": tool_version(["rustc", "--version"]),
                         "postgres": ""}
        self.wrk = Wrk(wrk, a.wrk_threads or self.nproc, self.tmp, self.quick)
        meta["wrk_threads"] = self.wrk.threads
        meta["peers"] = PEERS  # each users system is compared with its backend's peer
        need_peer = any(self.selected(n) for n, s in SYSTEMS.items() if s["kind"] == "peer")
        if need_peer:
            self.peer_py = ensure_venv()
            meta["peer_versions"] = peer_versions(self.peer_py)
        self.bins = build(a.no_build)
        if with_baseline:
            build_baseline(meta["baseline"], self.tmp, a.no_build)
        if a.current:
            build_baseline(meta["current"], self.tmp, a.no_build)
        # pgbench: with a PostgreSQL users system measuring /users/me (the report compares
        # them), or asked for by name (--only pgbench)
        self.want_pgbench = (
            any(fnmatch.fnmatch(PGBENCH, pat) for pat in self.only or [])
            or any(self.selected(n) and s["kind"] == "users" and s["backend"] == "postgres"
                   and {"me", "refresh"} & set(self.scenarios_of(n))
                   for n, s in SYSTEMS.items()))
        needs_pg = any(self.selected(n) for n, s in SYSTEMS.items() if s["backend"] == "postgres") \
            or self.selected("scaling-postgres") or self.want_pgbench
        self.pg_ok = needs_pg and self.pg_available()
        if self.pg_ok:
            meta["tools"]["postgres"] = run_cmd(
                ["psql", self.pg_admin + "/postgres", "-qAtc", "show server_version"],
                check=False).stdout.strip()
        self.estimate()
        t_start = time.time()
        try:
            # always measured: the "% ceiling" columns and targets need it
            self.ceilings()
            for name, spec in SYSTEMS.items():
                if spec.get("baseline_of") or spec.get("otel_of"):
                    continue  # measured with its system, interleaved
                group = [n for n in (name, name + BASELINE, name + OTEL)
                         if n in SYSTEMS and self.selected(n)]
                if group:
                    try:
                        self.system(group)
                    except BenchError as e:
                        log(f"{' + '.join(group)} FAILED: {e}")
                        for n in group:
                            self.results["skipped"].append(f"{n}: failed: {str(e)[:500]}")
            if self.want_pgbench:  # --only pgbench, without a PostgreSQL system
                self.pgbench_ceiling()
            for name, backend in SCALING.items():
                if self.selected(name):
                    try:
                        self.scaling(name, backend)
                    except BenchError as e:
                        log(f"{name} FAILED: {e}")
                        self.results["skipped"].append(f"{name}: failed: {str(e)[:500]}")
            # again at the end: how much the machine's speed drifted during the run
            self.ceilings("ceilings_end")
        finally:
            self.pg_drop_all()
            meta["elapsed_s"] = round(time.time() - t_start, 1)
            meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
            if not a.keep_temp:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                log(f"temporary files kept in {self.tmp}")
        publishable(self.results["meta"])
        report = Report(self.results)
        md = report.markdown()
        out = Path(a.out) if a.out else BENCH / "results"
        out.mkdir(parents=True, exist_ok=True)
        stem = "quick" if self.quick and not a.out_name else (a.out_name or "latest")
        (out / f"{stem}.md").write_text(md)
        (out / f"{stem}.json").write_text(json.dumps(self.results, indent=1) + "\n")
        print()
        print(md)
        log(f"wrote {out / (stem + '.md')} and {out / (stem + '.json')}")

    def estimate(self):
        cells = 0
        for name, spec in SYSTEMS.items():
            if self.selected(name):
                for sc in self.scenarios_of(name):
                    if sc != TIMING:
                        cells += 1 if sc in PROBE_SCENARIOS else len(self.conns)
        scal = sum(1 for n in SCALING if self.selected(n)) * 2 * 2 * len(self.conns)
        per = self.warmup + self.duration + 5  # + idle checks and drains
        secs = (cells * self.rounds + scal) * per + 2 * self.ceiling_seconds
        if self.want_pgbench:
            secs += min(self.warmup, 5) + self.duration + 10
        rounds = f" ({self.rounds} rounds each)" if self.rounds > 1 else ""
        log(f"{cells + scal} measured cells{rounds} of {self.warmup} s warm-up + "
            f"{self.duration} s: about {secs / 60:.0f} minutes plus build, seeding and start-ups")


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------

def fmt_ms(us) -> str:
    ms = us / 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_mib(kib) -> str:
    return f"{kib / 1024:.1f}" if kib else "–"


def fmt_cpu(us) -> str:
    return f"{us:,.0f}" if us is not None else "–"


def mark(ok) -> str:
    return "–" if ok is None else ("✅" if ok else "❌")


class Report:
    def __init__(self, results: dict):
        self.r = results

    def run(self, system, scenario, conns):
        for row in self.r["runs"]:
            if (row["system"], row["scenario"], row["connections"]) == (system, scenario, conns):
                return row
        return None

    def ceiling(self, argon2):
        c = self.r["ceilings"].get("argon2_{}_{}_{}".format(*argon2))
        return c["hashes_per_sec"] if c else None

    def peak(self, system):
        vals = [row["peak_rss_kib"] for row in self.r["runs"] if row["system"] == system]
        return max(vals) if vals else None

    def peer_of(self, system) -> str | None:
        """The peer a users system is compared with: the one on its backend. Runs written
        before fastapi-users-postgres (no `peers` in their meta) compared every system with
        fastapi-users, on SQLite, and are rendered so."""
        spec = SYSTEMS.get(system)
        if not spec or spec["kind"] == "peer":
            return None
        peers = self.r["meta"].get("peers")
        if peers is None:
            return "fastapi-users"
        return peers.get(spec["backend"])

    def markdown(self) -> str:
        r, meta = self.r, self.r["meta"]
        m = meta["machine"]
        out = []
        title = "users load benchmark"
        if meta["quick"]:
            title += " — QUICK SMOKE RUN (short runs; not a measurement)"
        out.append(f"# {title}\n")
        out.append(f"- machine: {m['nproc']} cores ({m['cpu_model']}), {m['mem_total_gib']} GiB RAM, "
                   f"Linux {m['kernel']}; load average at start {m['loadavg_at_start']}, "
                   f"at end {meta.get('loadavg_at_end')}")
        out.append(f"- run: {meta['started_at']}, commit {meta['git']['commit'][:12]}"
                   f"{' (dirty tree)' if meta['git']['dirty'] else ''}, took "
                   f"{meta.get('elapsed_s', 0) / 60:.1f} min")
        out.append(f"- load: wrk ({meta['tools']['wrk'].split(' [')[0]}), {meta['wrk_threads']} "
                   f"threads, {meta['warmup_s']} s warm-up then {meta['duration_s']} s measured per "
                   f"cell, connections {meta['connections']}; client and server share the cores")
        pv = meta.get("peer_versions") or {}
        pool = (r.get("systems", {}).get("fastapi-users-postgres") or {}).get("db_pool")
        if pv and pv.get("asyncpg"):
            pg_pool = (f", a pool of {pool['pool_size']} connections per worker, overflow "
                       f"{pool['max_overflow']}" if pool else "")
            out.append("- peers: fastapi-users {} (FastAPI {}, SQLAlchemy {}, pwdlib {}): "
                       "`fastapi-users` on SQLite through aiosqlite {}, "
                       "`fastapi-users-postgres` on the same PostgreSQL as `users` through "
                       "asyncpg {}{}; uvicorn {} --workers {} --loop uvloop --http httptools; "
                       "each users system is compared with the peer on its backend".format(
                           pv.get("fastapi-users"), pv.get("fastapi"), pv.get("SQLAlchemy"),
                           pv.get("pwdlib"), pv.get("aiosqlite"), pv.get("asyncpg"), pg_pool,
                           pv.get("uvicorn"), m["nproc"]))
        elif pv:
            out.append("- peer: fastapi-users {} (FastAPI {}, SQLAlchemy {} + aiosqlite {}, pwdlib {}), "
                       "uvicorn {} --workers {} --loop uvloop --http httptools".format(
                           pv.get("fastapi-users"), pv.get("fastapi"), pv.get("SQLAlchemy"),
                           pv.get("aiosqlite"), pv.get("pwdlib"), pv.get("uvicorn"), m["nproc"]))
        out.append(f"- users: release build, WORKERS unset ({m['nproc']}), RUST_LOG=warn, "
                   f"RATE_LIMIT_PER_IP_PER_MINUTE=0, LOGIN_MAX_FAILURES=100; PostgreSQL "
                   f"{meta['tools'].get('postgres') or 'n/a'} on loopback, "
                   f"sslmode={meta.get('pg_sslmode', 'prefer')}")
        def commit_line(role: str, info: dict, who: str, tail: str) -> str:
            built = ("reused from an earlier run" if info["reused"]
                     else f"built in {info['build_s'] / 60:.1f} min")
            return (f"- {role}: `{info['rev']}` = commit {info['commit'][:12]} "
                    f"({info['subject']}); {who} run its release users-server ({built}, "
                    f"`{info['target_dir']}`), {tail}")

        c = meta.get("current")
        if c:
            out.append(commit_line("current", c, f"the users systems without `{BASELINE}`",
                                   "not the working tree's"))
        b = meta.get("baseline")
        if b:
            out.append(commit_line("baseline", b, f"`*{BASELINE}` systems",
                                   "configured like the others"))
        if meta.get("rounds", 1) > 1:
            turns = ", a system's rounds alternating with its baseline's" if b else ""
            out.append(f"- rounds: {meta['rounds']} measured runs per cell{turns}; each cell "
                       f"gives their median")
        out.append("")

        # argon2 ceilings
        out.append("## Ceilings\n")
        out.append("| ceiling | value |")
        out.append("|---|---|")
        for key, c in r["ceilings"].items():
            end = (r.get("ceilings_end") or {}).get(key)
            if key.startswith("signing_"):
                again = (f"; {end['sign_per_s_thread']:,} a thread when measured again at the "
                         f"end" if end else "")
                out.append(f"| {c['alg']} access-token signatures (`signing_speed`, one thread; "
                           f"ceiling = × {c['cores']} cores) | {c['sign_ceiling_per_s']:,}/s "
                           f"({c['sign_per_s_thread']:,}/s a thread, {c['sign_per_cpu_s']:,} "
                           f"per CPU-second; verify {c['verify_per_s_thread']:,}/s a thread)"
                           f"{again} |")
                continue
            again = (f"; {end['hashes_per_sec']:.1f} hashes/s when measured again at the end"
                     if end else "")
            out.append(f"| argon2id m={c['memory_kib']} t={c['iterations']} p={c['parallelism']}, "
                       f"{c['threads']} threads | {c['hashes_per_sec']:.1f} hashes/s "
                       f"({c['ms_per_hash_per_thread']:.1f} ms a hash a thread){again} |")
        for scenario, what in (("healthz", "GET /healthz"),
                               ("me_401", "GET /users/me without a token (401)")):
            for sysname in SYSTEMS:
                for conns in meta["connections"]:
                    row = self.run(sysname, scenario, conns)
                    if row:
                        out.append(f"| HTTP floor: {what}, {sysname}, c={conns} | "
                                   f"{row['rps']:,.0f} req/s, p99 "
                                   f"{fmt_ms(row['latency_us']['p99'])} ms |")
        for key in ("pgbench", "pgbench_rotation"):
            pg = r.get(key)
            if pg:
                out.append(f"| PostgreSQL: `{pg['command']}` on a scratch database (scale "
                           f"{pg['scale']}), {pg['warmup_s']} s warm-up | {pg['tps']:,.0f} tps, "
                           f"latency average {pg['latency_avg_ms']} ms, "
                           f"{pg['failed'] if pg['failed'] is not None else '?'} failed "
                           f"({pg['version']}) |")
        out.append("")

        # main table
        if any(row["scenario"] in TABLE_SCENARIOS for row in r["runs"]):
            self.main_table(out)
        self.peer_table(out)
        self.db_ceiling_table(out)
        self.session_table(out)
        self.api_key_table(out)
        self.refresh_table(out)
        self.provider_table(out)
        comparisons = self.comparisons()
        if comparisons:
            r["comparisons"] = comparisons
            self.baseline_table(out, comparisons)
        self.traces_table(out)
        self.rest(out)
        return "\n".join(out)

    def comparisons(self) -> list:
        """Each cell measured on a system and on its baseline twin: current ÷ baseline of
        the good responses/s (2xx; the expected status for failed logins), p50 and p99, and
        of the good responses/s round by round (each round's pair ran back to back)."""
        out = []
        for row in self.r["runs"]:
            twin = row["system"] + BASELINE
            if twin not in SYSTEMS:
                continue
            base = self.run(twin, row["scenario"], row["connections"])
            if not base:
                continue

            def side(x):
                return {"rps": x["rps"], "ok_rps": x["ok_rps"], "p50_us": x["latency_us"]["p50"],
                        "p99_us": x["latency_us"]["p99"], "non_2xx": x["non_2xx"],
                        "socket_errors": x["socket_errors"],
                        "server_cpu_us_per_request": x.get("server_cpu_us_per_request"),
                        "rounds": len(x.get("rounds", [])) or 1}

            def ratio(a, b):
                return a / b if b else None

            by_round = [ratio(c["ok_rps"], b["ok_rps"])
                        for c, b in zip(row.get("rounds", []), base.get("rounds", []))]
            out.append({
                "system": row["system"], "baseline_system": twin, "backend": row["backend"],
                "scenario": row["scenario"], "connections": row["connections"],
                "current": side(row), "baseline": side(base),
                "ratio": {"ok_rps": ratio(row["ok_rps"], base["ok_rps"]),
                          "p50": ratio(row["latency_us"]["p50"], base["latency_us"]["p50"]),
                          "p99": ratio(row["latency_us"]["p99"], base["latency_us"]["p99"]),
                          "cpu_per_request": ratio(row.get("server_cpu_us_per_request") or 0,
                                                   base.get("server_cpu_us_per_request") or 0)
                          or None},
                "ok_rps_ratio_by_round": by_round,
            })
        return out

    def baseline_table(self, out: list, comparisons: list):
        b = self.r["meta"].get("baseline") or {}
        out.append(f"## Before and after: current ÷ baseline `{b.get('rev', '?')}`\n")
        out.append("Each system against its `@base` twin (the same configuration, the baseline's "
                   "binary), each number the median of the cell's rounds, the two measured in "
                   "turn, the order swapped every round (current then baseline, baseline then current, …). `req/s ×`: current ÷ baseline of the "
                   "good responses/s (2xx; the expected status where a scenario has one: 400 for "
                   "failed logins, 401 for /users/me without a token, 200 for refresh): above 1 "
                   "is faster now. `p50 ×`, `p99 ×`: below 1 is faster now. `by round`: `req/s ×` of each "
                   "round's back-to-back pair; their spread is the noise, and a difference "
                   "within it is not one. `CPU/req`: the server process's CPU time (user + "
                   "system) over the cell's measured runs ÷ their requests, now and before "
                   "(µs), and `×` their ratio (below 1: cheaper now); steadier than req/s "
                   "when the machine's speed drifts.\n")
        out.append("| scenario | conns | system | req/s now | req/s before | req/s × | p50 × | "
                   "p99 × | req/s × by round | CPU/req µs now / before | CPU/req × | "
                   "non-2xx + socket err now / before |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|")

        def x(v):
            return f"{v:.3f}" if v is not None else "–"

        def cpu(side):
            v = side.get("server_cpu_us_per_request")
            return f"{v:,.1f}" if v is not None else "–"

        for c in comparisons:
            now, before = c["current"], c["baseline"]
            out.append(
                f"| {SCENARIO_LABEL[c['scenario']]} | {c['connections']} | {c['system']} | "
                f"{now['ok_rps']:,.1f} | {before['ok_rps']:,.1f} | {x(c['ratio']['ok_rps'])} | "
                f"{x(c['ratio']['p50'])} | {x(c['ratio']['p99'])} | "
                f"{', '.join(x(v) for v in c['ok_rps_ratio_by_round']) or '–'} | "
                f"{cpu(now)} / {cpu(before)} | {x(c['ratio'].get('cpu_per_request'))} | "
                f"{now['non_2xx'] + now['socket_errors']} / "
                f"{before['non_2xx'] + before['socket_errors']} |")
        out.append("")

    def traces_table(self, out: list):
        """--otel-pair: each users system against its @otel twin (the same binary with traces
        on), cell by cell: on ÷ off of the good responses/s, round by round, the CPU per
        request, the server's threads' CPU and the sink's."""
        rows = []
        for row in self.r["runs"]:
            twin = self.run(row["system"] + OTEL, row["scenario"], row["connections"])
            if twin and row["system"] + OTEL in SYSTEMS:
                rows.append((row, twin))
        if not rows:
            return
        out.append("## Traces: on ÷ off\n")
        out.append(f"Each users system against its `{OTEL}` twin: the same binary, the same "
                   "configuration, but `OTEL_EXPORTER_OTLP_ENDPOINT` set to the harness's "
                   "loopback sink (bench/otlp_sink.py, a process of its own that reads and "
                   "discards each export's body) and the default sampler (every trace kept). "
                   "The two are measured in turn, the order swapped every round; each number "
                   "is the median of the cell's rounds. `on ÷ off`: good responses/s (2xx; "
                   "401 for no token), the aim is at least 0.85 for `/users/me`; `by round`: "
                   "each round's back-to-back pair. `CPU/req`: the server's CPU (user + "
                   "system) ÷ requests, off / on (µs). `exporter`: the on server's "
                   "`otlp-export` thread's share of its CPU. `sink`: the sink's CPU seconds "
                   "÷ the on server's over the same runs, and the export requests it "
                   "received. `dropped`: spans the on server dropped (its queue full).\n")
        out.append("| scenario | conns | system | off 2xx/s | on 2xx/s | on ÷ off | by round | "
                   "p99 ms off / on | CPU/req off / on | exporter | sink CPU ÷ server | "
                   "exports | dropped |")
        out.append("|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        def cpu(row):
            v = row.get("server_cpu_us_per_request")
            return f"{v:.1f}" if v is not None else "–"

        for off, on in rows:
            by_round = [f"{b['ok_rps'] / a['ok_rps']:.3f}" for a, b in
                        zip(off.get("rounds", []), on.get("rounds", [])) if a["ok_rps"]]
            threads = on.get("server_thread_cpu_s") or {}
            total = sum(threads.values()) or None
            exporter = (f"{100 * threads.get('otlp-export', 0) / total:.1f}%"
                        if total else "–")
            sink = on.get("otlp_sink") or {}
            sink_share = (f"{sink.get('cpu_s', 0) / on['server_cpu_s']:.3f}"
                          if on.get("server_cpu_s") else "–")
            ratio = on["ok_rps"] / off["ok_rps"] if off["ok_rps"] else None
            out.append(
                f"| {SCENARIO_LABEL[off['scenario']]} | {off['connections']} | "
                f"{off['system']} | {off['ok_rps']:,.1f} | {on['ok_rps']:,.1f} | "
                f"{f'{ratio:.3f}' if ratio is not None else '–'} | "
                f"{', '.join(by_round) or '–'} | {fmt_ms(off['latency_us']['p99'])} / "
                f"{fmt_ms(on['latency_us']['p99'])} | "
                f"{cpu(off)} / {cpu(on)} | {exporter} | "
                f"{sink_share} | {sink.get('export_requests', '–')} | "
                f"{on.get('spans_dropped', '–')} |")
        out.append("")

    def main_table(self, out: list):
        r, meta = self.r, self.r["meta"]
        out.append("## Throughput and latency\n")
        if meta.get("peers"):
            vs = ("`vs peer`: this row's 2xx responses/s ÷ those of the peer on the same "
                  "backend (" + ", ".join(f"{b}: {p}" for b, p in meta["peers"].items())
                  + ") in the same scenario and connections")
        else:
            vs = ("`vs peer`: this row's 2xx responses/s ÷ fastapi-users' (on SQLite, the "
                  "only peer when this run was made) in the same scenario and connections")
        out.append("`req/s`: all completed responses; " + vs + ". `% ceiling`: req/s ÷ "
                   "argon2id hashes/s with the row's parameters "
                   "(a login verifies one hash, a registration computes one). `non-2xx`: for "
                   "`/users/me` without a token, answers other than 401; for refresh, other "
                   "than 200. `CPU µs/req`: the server's process tree's CPU time (user + "
                   "system) during the measured run ÷ its requests; `peak RSS`: the tree's "
                   "summed RSS, sampled every 100 ms during the measured run.\n")
        twins = any(SYSTEMS.get(row["system"], {}).get("baseline_of") for row in r["runs"])
        if twins:
            out.append(f"`current ÷ baseline`: this row's 2xx responses/s ÷ its `{BASELINE}` "
                       f"twin's (see the section after this table).\n")
        out.append("| scenario | conns | system | argon2 m/t/p | req/s | p50 ms | p99 ms | non-2xx | "
                   "socket err | CPU µs/req | peak RSS MiB | vs peer | % ceiling |"
                   + (" current ÷ baseline |" if twins else ""))
        out.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                   + ("---:|" if twins else ""))
        for scenario in TABLE_SCENARIOS:
            for conns in meta["connections"]:
                for sysname in SYSTEMS:
                    row = self.run(sysname, scenario, conns)
                    if not row:
                        continue
                    ratio = "–"
                    peer_name = self.peer_of(sysname)
                    peer = self.run(peer_name, scenario, conns) if peer_name else None
                    if peer and peer["ok_rps"] > 0:
                        ratio = f"{row['ok_rps'] / peer['ok_rps']:.1f}×"
                    pct = "–"
                    if scenario in ("login", "register"):
                        c = self.ceiling(row["argon2"])
                        if c and SYSTEMS.get(sysname, {}).get("kind") != "peer":
                            pct = f"{100 * row['ok_rps'] / c:.0f}%"
                    lat = row["latency_us"]
                    line = (
                        f"| {SCENARIO_LABEL[scenario]} | {conns} | {sysname} | "
                        f"{'/'.join(map(str, row['argon2']))} | {row['rps']:,.1f} | "
                        f"{fmt_ms(lat['p50'])} | {fmt_ms(lat['p99'])} | {row['non_2xx']} | "
                        f"{row['socket_errors']} | {fmt_cpu(row.get('server_cpu_us_per_request'))} | "
                        f"{fmt_mib(row['peak_rss_kib'])} | {ratio} | {pct} |")
                    if twins:
                        base = self.run(sysname + BASELINE, scenario, conns)
                        line += (f" {row['ok_rps'] / base['ok_rps']:.3f} |"
                                 if base and base["ok_rps"] > 0 else " – |")
                    out.append(line)
        out.append("")

    def peer_table(self, out: list):
        """Each users system (not the @base twins) beside the peer on its backend, cell by
        cell: 2xx/s, latencies, errors, CPU per request and peak RSS of both."""
        pairs = []
        for scenario in MAIN_SCENARIOS + PROBE_SCENARIOS:
            for conns in self.r["meta"]["connections"]:
                for sysname, spec in SYSTEMS.items():
                    if spec["kind"] != "users" or spec.get("baseline_of"):
                        continue
                    peer_name = self.peer_of(sysname)
                    row = self.run(sysname, scenario, conns)
                    peer = self.run(peer_name, scenario, conns) if peer_name else None
                    if row and peer:
                        pairs.append((scenario, conns, sysname, peer_name, row, peer))
        if not pairs:
            return
        out.append("## Against the peer on the same backend\n")
        out.append("Each cell of a users system beside the same cell of the peer it is compared "
                   "with, `users / peer`. `2xx/s ×`: users ÷ peer (above 1: users answers more); "
                   "`CPU ×`: the server's CPU time per request, users ÷ peer (below 1: users "
                   "spends less). `errors`: non-2xx (for failed logins, answers other than 400) "
                   "+ socket errors. For login and register the two hash with their own argon2 "
                   "parameters unless the system is a `-fapi-argon2` one.\n")
        out.append("| scenario | conns | system | peer | 2xx/s | 2xx/s × | p50 ms | p99 ms | "
                   "errors | CPU µs/req | CPU × | peak RSS MiB |")
        out.append("|---|---:|---|---|---|---:|---|---|---|---|---:|---|")
        rows = []
        for scenario, conns, sysname, peer_name, a, b in pairs:
            ca, cb = a.get("server_cpu_us_per_request"), b.get("server_cpu_us_per_request")
            x = a["ok_rps"] / b["ok_rps"] if b["ok_rps"] > 0 else None
            cx = ca / cb if ca and cb else None
            rows.append({"scenario": scenario, "connections": conns, "system": sysname,
                         "peer": peer_name, "ok_rps_ratio": x, "cpu_per_request_ratio": cx})
            la, lb = a["latency_us"], b["latency_us"]
            out.append(
                f"| {SCENARIO_LABEL[scenario]} | {conns} | {sysname} | {peer_name} | "
                f"{a['ok_rps']:,.1f} / {b['ok_rps']:,.1f} | "
                f"{f'{x:.1f}' if x is not None else '–'} | "
                f"{fmt_ms(la['p50'])} / {fmt_ms(lb['p50'])} | "
                f"{fmt_ms(la['p99'])} / {fmt_ms(lb['p99'])} | "
                f"{a['non_2xx'] + a['socket_errors']} / {b['non_2xx'] + b['socket_errors']} | "
                f"{fmt_cpu(ca)} / {fmt_cpu(cb)} | {f'{cx:.2f}' if cx is not None else '–'} | "
                f"{fmt_mib(a['peak_rss_kib'])} / {fmt_mib(b['peak_rss_kib'])} |")
        self.r["peer_comparisons"] = rows
        out.append("")

    # the provider's targets (issue 23, "Speed"): absolute with EdDSA, relative otherwise
    OAUTH_TARGETS = {"oauth_cc": 10_000, "oauth_introspect": 20_000, "oauth_code": 3_000,
                     "oauth_flow": 1_500}
    KEYCLOAK_CC_PER_VCPU = 120

    def provider_table(self, out: list):
        rows = [row for row in self.r["runs"] if row["scenario"] in OAUTH_SCENARIOS]
        if not rows:
            return
        nproc = self.r["meta"]["machine"]["nproc"]
        rs = (self.r["ceilings"] or {}).get("signing_RS256")
        out.append("## The provider's paths\n")
        out.append(f"`ok/s`: answers 200 per second (anything else is counted in `non-200`; "
                   f"for the whole flow: flows completed, i.e. token answers, each after "
                   f"its authorization request's 302, and its latencies are of both). "
                   f"`per vCPU`: ok/s ÷ {nproc} cores, with wrk and the server (and PostgreSQL) "
                   f"sharing them; Keycloak sizes {self.KEYCLOAK_CC_PER_VCPU} client-credentials "
                   f"grants/s (and {self.KEYCLOAK_CC_PER_VCPU} refreshes/s) per vCPU. Targets (issue 23): client credentials ≥ 10,000/s, "
                   f"introspection ≥ 20,000/s, the code exchange ≥ 3,000/s, the whole flow ≥ 1,500/s (EdDSA), userinfo ≥ 80% "
                   f"of `GET /users/me` on the same system and connections, RS256 ≥ 90% of the "
                   f"RS256 signing ceiling above (per wall second and per CPU-second, × cores; "
                   f"`met` against the higher); p99 < 20 ms, 0 errors.\n")
        out.append("| scenario | conns | system | ok/s | p50 ms | p99 ms | non-200 | socket err | "
                   "server CPU µs/req | per vCPU | × Keycloak | target | met |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for scenario in OAUTH_SCENARIOS:
            for conns in self.r["meta"]["connections"]:
                for sysname in SYSTEMS:
                    row = self.run(sysname, scenario, conns)
                    if not row:
                        continue
                    ok, lat = row["ok_rps"], row["latency_us"]
                    target, goal = "–", None
                    if scenario in self.OAUTH_TARGETS:
                        goal = self.OAUTH_TARGETS[scenario]
                        target = f"≥ {goal:,}/s"
                    elif scenario == "oauth_userinfo":
                        me = self.run(sysname, "me", conns)
                        if me and me["ok_rps"] > 0:
                            goal = 0.8 * me["ok_rps"]
                            target = (f"≥ 80% of /users/me ({me['ok_rps']:,.0f}): "
                                      f"{100 * ok / me['ok_rps']:.0f}%")
                    elif scenario == "oauth_cc_rs256" and rs:
                        # judged against the stricter of the two ceilings: signatures per
                        # wall second (what the cores gave the example while it ran) and per
                        # CPU-second (what they give when nothing else runs), × cores
                        cpu_ceiling = rs["sign_per_cpu_s"] * rs["cores"]
                        goal = 0.9 * max(rs["sign_ceiling_per_s"], cpu_ceiling)
                        target = (f"≥ 90% of {rs['sign_ceiling_per_s']:,} (wall) / "
                                  f"{cpu_ceiling:,} (CPU-s): "
                                  f"{100 * ok / rs['sign_ceiling_per_s']:.0f}% / "
                                  f"{100 * ok / cpu_ceiling:.0f}%")
                    met = "–"
                    if goal is not None:
                        met = mark(ok >= goal and lat["p99"] < 20_000 and not row["non_2xx"]
                                   and not row["socket_errors"])
                    kc = (f"{ok / nproc / self.KEYCLOAK_CC_PER_VCPU:.0f}×"
                          if scenario in ("oauth_cc", "oauth_cc_rs256", "oauth_refresh")
                          else "–")
                    out.append(
                        f"| {SCENARIO_LABEL[scenario]} | {conns} | {sysname} | {ok:,.0f} | "
                        f"{fmt_ms(lat['p50'])} | {fmt_ms(lat['p99'])} | {row['non_2xx']} | "
                        f"{row['socket_errors']} | {row.get('server_cpu_us_per_request')} | "
                        f"{ok / nproc:,.0f} | {kc} | {target} | {met} |")
        notes = []
        for sysname, info in self.r["systems"].items():
            if info.get("oauth_token_algs"):
                notes.append(f"- {sysname}: tokens signed with {info['oauth_token_algs']}")
            for a in info.get("oauth_authorize_runs") or []:
                notes.append(f"- {sysname}: codes for the exchange minted by a wrk run of "
                             f"`GET /oauth/authorize` at c={a['connections']}: {a['codes']:,} "
                             f"codes, {a['rps']:,.0f} req/s, statuses {a['statuses']}")
        if notes:
            out.append("")
            out.extend(notes)
        out.append("")

    def target_conns(self) -> int:
        conns = self.r["meta"]["connections"]
        return 64 if 64 in conns else max(conns)

    def db_ceiling(self, system: str, conns: int) -> dict | None:
        """/users/me on PostgreSQL against what its two halves allow: `floor`, the route's
        HTTP floor (GET /users/me without a token, 401: everything but the database; the
        /healthz floor when that was not measured) and `pgbench`, what PostgreSQL answers
        to primary-key SELECTs through a pool-sized set of connections. Done one after the
        other, a request costs 1/floor + 1/pgbench, so `bound` = 1 / (1/floor + 1/pgbench)
        requests/s; `pct` = /users/me's 2xx/s ÷ bound."""
        pg = self.r.get("pgbench")
        me = self.run(system, "me", conns)
        if not (pg and me and pg["tps"] > 0):
            return None
        floor_row, floor_of = self.run(system, "me_401", conns), "me_401"
        if not floor_row:
            floor_row, floor_of = self.run(system, "healthz", conns), "healthz"
        if not floor_row or floor_row["ok_rps"] <= 0:
            return None
        floor = floor_row["ok_rps"]
        bound = 1 / (1 / floor + 1 / pg["tps"])
        errors = me["non_2xx"] + me["socket_errors"]
        p99_ms = me["latency_us"]["p99"] / 1000
        pct = 100 * me["ok_rps"] / bound
        return {"system": system, "connections": conns, "floor_scenario": floor_of,
                "floor_rps": floor, "pgbench_tps": pg["tps"], "bound_rps": bound,
                "me_ok_rps": me["ok_rps"], "pct": pct, "p99_ms": p99_ms, "errors": errors,
                "met": pct >= 60 and p99_ms < 10 and errors == 0}

    def db_ceiling_table(self, out: list):
        conns = self.target_conns()
        rows = [c for c in (self.db_ceiling(name, conns) for name, spec in SYSTEMS.items()
                            if spec["kind"] == "users" and spec["backend"] == "postgres")
                if c]
        if not rows:
            return
        self.r["db_ceiling"] = rows
        pg = self.r["pgbench"]
        out.append("## GET /users/me against the database ceiling (PostgreSQL)\n")
        out.append(f"`floor`: the route's HTTP floor, `GET /users/me` without a token (401: "
                   f"everything but the database) at c={conns}; `pgbench`: `{pg['command']}` "
                   f"({pg['clients']} clients, as many as the service's pool) on a scratch "
                   f"database of the same server, in the same run. Done one after the other, "
                   f"they allow `1 / (1/floor + 1/pgbench)` requests/s: `% of it` is "
                   f"/users/me's 2xx/s ÷ that. Target: ≥ 60%, p99 < 10 ms, zero errors.\n")
        out.append("| system | conns | floor req/s | pgbench tps | 1/(1/floor + 1/pgbench) | "
                   "/users/me 2xx/s | % of it | p99 ms | errors | met |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for c in rows:
            floor = f"{c['floor_rps']:,.0f}" + (" (/healthz)" if c["floor_scenario"] == "healthz"
                                                 else "")
            out.append(f"| {c['system']} | {c['connections']} | {floor} | "
                       f"{c['pgbench_tps']:,.0f} | {c['bound_rps']:,.0f} | {c['me_ok_rps']:,.0f} | "
                       f"{c['pct']:.0f}% | {c['p99_ms']:.2f} | {c['errors']} | {mark(c['met'])} |")
        out.append("")

    def session_table(self, out: list):
        meta = self.r["meta"]
        pairs = [(name, conns) for name in SYSTEMS for conns in meta["connections"]
                 if self.run(name, "me", conns) and self.run(name, "me_nosession", conns)]
        if not pairs:
            return
        out.append("## The cost of the session check: GET /users/me\n")
        claims = {name: (self.r["systems"].get(name) or {}).get("token_claims")
                  for name, _ in pairs}
        shown = next((c for c in claims.values() if c), None)
        what = ""
        if shown:
            what = (f" (claims: session tokens {', '.join(shown.get('me', []))}; minted "
                    f"{', '.join(shown.get('me_nosession', []))})")
        out.append("`session`: tokens from `POST /auth/jwt/login`, whose `sid` the service "
                   "checks on every request (a revoked session fails at once); `no session`: "
                   "tokens minted by the harness as fastapi-users mints them, HS256 "
                   "`{sub, aud, exp}` with the same `JWT_SECRET`, no `sid`" + what + ". "
                   "`× `: session ÷ no session 2xx/s (below 1: the check costs that much).\n")
        out.append("| system | conns | session 2xx/s | p50 ms | p99 ms | no session 2xx/s | "
                   "p50 ms | p99 ms | × | errors (session / no session) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for name, conns in pairs:
            a, b = self.run(name, "me", conns), self.run(name, "me_nosession", conns)
            la, lb = a["latency_us"], b["latency_us"]
            x = f"{a['ok_rps'] / b['ok_rps']:.3f}" if b["ok_rps"] > 0 else "–"
            out.append(f"| {name} | {conns} | {a['ok_rps']:,.1f} | {fmt_ms(la['p50'])} | "
                       f"{fmt_ms(la['p99'])} | {b['ok_rps']:,.1f} | {fmt_ms(lb['p50'])} | "
                       f"{fmt_ms(lb['p99'])} | {x} | {a['non_2xx'] + a['socket_errors']} / "
                       f"{b['non_2xx'] + b['socket_errors']} |")
        out.append("")

    def api_key_table(self, out: list):
        meta = self.r["meta"]
        pairs = [(name, conns) for name in SYSTEMS for conns in meta["connections"]
                 if self.run(name, "me", conns) and self.run(name, "me_apikey", conns)]
        if not pairs:
            return
        out.append("## An API key against a session token: GET /users/me\n")
        out.append("`session`: tokens from `POST /auth/jwt/login`; `API key`: a `usr_…` key "
                   "per seeded user, whose checksum is checked in memory and whose hash goes "
                   "through the same coalesced lookup as a session id. `×`: API key ÷ session "
                   "2xx/s (the goal: within 10%, so 0.90 or more).\n")
        out.append("| system | conns | session 2xx/s | p50 ms | p99 ms | API key 2xx/s | "
                   "p50 ms | p99 ms | × | errors (session / API key) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for name, conns in pairs:
            a, b = self.run(name, "me", conns), self.run(name, "me_apikey", conns)
            la, lb = a["latency_us"], b["latency_us"]
            x = f"{b['ok_rps'] / a['ok_rps']:.3f}" if a["ok_rps"] > 0 else "–"
            out.append(f"| {name} | {conns} | {a['ok_rps']:,.1f} | {fmt_ms(la['p50'])} | "
                       f"{fmt_ms(la['p99'])} | {b['ok_rps']:,.1f} | {fmt_ms(lb['p50'])} | "
                       f"{fmt_ms(lb['p99'])} | {x} | {a['non_2xx'] + a['socket_errors']} / "
                       f"{b['non_2xx'] + b['socket_errors']} |")
        out.append("")

    def refresh_table(self, out: list):
        rows = [row for row in self.r["runs"] if row["scenario"] == "refresh"]
        if not rows:
            return
        out.append("## Refresh-token rotation: POST /auth/jwt/refresh\n")
        out.append("Each wrk connection keeps its own chain: one session per connection "
                   "(`POST /auth/jwt/login` with `scope=offline_access`, fresh for every wrk "
                   "run), each request presents the chain's current refresh token and the "
                   "answer's new one is presented next. `rotations/s`: 200s a second; any "
                   "other answer is an error (a spent token presented again would end its "
                   "session). `chains`: refresh tokens dealt to wrk (summed over a cell's rounds, like "
                   "the counts after it); `without a token`: "
                   "requests a broken chain had to send with an invalid token. `server`: the "
                   "service's `users_refreshes_total` by result during the run: all should be "
                   "`rotated` (`converged`, a spent token presented again within "
                   "`REFRESH_REUSE_INTERVAL_SECONDS`, would mean two requests shared a chain). "
                   "Target: ≥ 3,000 rotations/s on PostgreSQL with zero errors.\n")
        out.append("| system | conns | rotations/s | p50 ms | p99 ms | non-200 | socket err | "
                   "chains | without a token | server | statuses |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for row in rows:
            c, lat = row.get("chains") or {}, row["latency_us"]
            server = ", ".join(f"{k} {v}" for k, v in sorted(
                (row.get("server_refreshes") or {}).items()) if v) or "–"
            out.append(f"| {row['system']} | {row['connections']} | {row['ok_rps']:,.1f} | "
                       f"{fmt_ms(lat['p50'])} | {fmt_ms(lat['p99'])} | {row['non_2xx']} | "
                       f"{row['socket_errors']} | {c.get('tokens', '–')} | "
                       f"{c.get('starved', '–')} | {server} | {row.get('statuses') or ''} |")
        out.append("")
        pgr = self.r.get("pgbench_rotation")
        pg_rows = [row for row in rows if SYSTEMS.get(row["system"], {}).get("backend")
                   == "postgres"]
        if not (pgr and pgr["tps"] > 0 and pg_rows):
            return
        out.append(f"On PostgreSQL against what the database does alone: `rotation ceiling`, "
                   f"`{pgr['command']}` ({pgr['clients']} clients, as many as the service's "
                   f"pool) on a scratch database in the same run, where the script reads one "
                   f"row by primary key and updates it in a transaction of its own, as a "
                   f"rotation does; `floor`: the system's `GET /users/me` without a token "
                   f"(401). `bound` = 1 / (1/floor + 1/ceiling).\n")
        out.append("| system | conns | rotation ceiling tps | floor req/s | bound | rotations/s "
                   "| % of bound |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for row in pg_rows:
            floor = self.run(row["system"], "me_401", row["connections"])
            if floor and floor["ok_rps"] > 0:
                bound = 1 / (1 / floor["ok_rps"] + 1 / pgr["tps"])
                floor_s, bound_s = f"{floor['ok_rps']:,.0f}", f"{bound:,.0f}"
                pct = f"{100 * row['ok_rps'] / bound:.0f}%"
            else:
                floor_s = bound_s = pct = "–"
            out.append(f"| {row['system']} | {row['connections']} | {pgr['tps']:,.0f} | "
                       f"{floor_s} | {bound_s} | {row['ok_rps']:,.1f} | {pct} |")
        out.append("")

    def rest(self, out: list):
        r, meta = self.r, self.r["meta"]
        # failed logins: registered vs unregistered email
        probes = [(sysname, conns) for sysname in SYSTEMS for conns in meta["connections"]
                  if self.run(sysname, "login_wrong", conns)
                  and self.run(sysname, "login_unknown", conns)]
        if probes:
            out.append("## Failed logins: registered vs unregistered email\n")
            out.append("Both answer 400 `LOGIN_BAD_CREDENTIALS`. An unregistered email is checked "
                       "against a dummy hash, so that its timing does not tell an attacker which "
                       "addresses have accounts. `p50 ×`: unregistered ÷ registered. These are "
                       "separate wrk runs a minute apart: throughput under a flood of failed "
                       "logins. They cannot compare timings, because the machine's speed drifts "
                       "between runs (compare the ceilings at the start and the end); the "
                       "interleaved `timing` measurement does.\n")
            out.append("| system | conns | registered req/s | p50 ms | p99 ms | unregistered req/s "
                       "| p50 ms | p99 ms | p50 × | other statuses |")
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            for sysname, conns in probes:
                k, u = self.run(sysname, "login_wrong", conns), self.run(sysname, "login_unknown", conns)
                lk, lu = k["latency_us"], u["latency_us"]
                others = {f"{n}": row["statuses"] for n, row in (("registered", k), ("unregistered", u))
                          if row["non_2xx"]}
                out.append(
                    f"| {sysname} | {conns} | {k['rps']:,.1f} | {fmt_ms(lk['p50'])} | "
                    f"{fmt_ms(lk['p99'])} | {u['rps']:,.1f} | {fmt_ms(lu['p50'])} | "
                    f"{fmt_ms(lu['p99'])} | {lu['p50'] / max(lk['p50'], 1):.2f} | "
                    f"{others or 'none'} |")
            out.append("")

        if r.get("timing"):
            out.append("## Failed-login timing, interleaved\n")
            out.append("Pairs of failed logins (a registered email with a wrong password, and a "
                       "never-seen email) sent in random order within each pair, one request at a "
                       "time on each of as many keep-alive connections as there are cores, every "
                       "request timed by the client: what an attacker probing for accounts "
                       "measures, with the machine's drift cancelled out. `diff`: unregistered "
                       "p50 − registered p50, with a 95% bootstrap interval.\n")
            out.append("| system | requests each | registered p10 / p50 / p90 ms | unregistered "
                       "p10 / p50 / p90 ms | p50 × | diff ms (95% CI) | statuses |")
            out.append("|---|---:|---|---|---:|---|---|")
            for row in r["timing"]:
                a, b = row["registered_us"], row["unregistered_us"]
                lo, hi = row["p50_diff_us_ci95"]
                out.append(
                    f"| {row['system']} | {a['n']} | {fmt_ms(a['p10'])} / {fmt_ms(a['p50'])} / "
                    f"{fmt_ms(a['p90'])} | {fmt_ms(b['p10'])} / {fmt_ms(b['p50'])} / "
                    f"{fmt_ms(b['p90'])} | {row['p50_ratio']:.3f} | "
                    f"{(b['p50'] - a['p50']) / 1000:+.2f} ({lo / 1000:+.2f} … {hi / 1000:+.2f}) | "
                    f"{row['statuses']} |")
            out.append("")

        # scaling
        if r["scaling"]:
            out.append(f"## Scaling: {meta['base_users']:,} vs {meta['scale_users']:,} users\n")
            out.append("| backend | scenario | conns | req/s small | p50 | p99 | req/s large | p50 | p99 "
                       "| p50 × | p99 × |")
            out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for backend in ("sqlite", "postgres"):
                for scenario in ("me", "login"):
                    for conns in meta["connections"]:
                        rows = {row["population"]: row for row in r["scaling"]
                                if row["backend"] == backend and row["scenario"] == scenario
                                and row["connections"] == conns}
                        small = rows.get(meta["base_users"])
                        large = rows.get(meta["scale_users"])
                        if not (small and large):
                            continue
                        ls, ll = small["latency_us"], large["latency_us"]
                        out.append(
                            f"| {backend} | {SCENARIO_LABEL[scenario]} | {conns} | "
                            f"{small['rps']:,.1f} | {fmt_ms(ls['p50'])} | {fmt_ms(ls['p99'])} | "
                            f"{large['rps']:,.1f} | {fmt_ms(ll['p50'])} | {fmt_ms(ll['p99'])} | "
                            f"{ll['p50'] / max(ls['p50'], 1):.2f} | {ll['p99'] / max(ls['p99'], 1):.2f} |")
            seeds = {}
            for row in r["scaling"]:
                seeds[(row["backend"], row["population"])] = row["seed"]
            if seeds:
                out.append("")
                out.append("Direct seeding (`seed_users` example): " + "; ".join(
                    f"{b} +{s['inserted']:,} rows at {s['rows_per_sec']:,.0f} rows/s"
                    for (b, _), s in sorted(seeds.items())))
            out.append("")

        # targets
        targets = self.targets()
        r["targets"] = targets
        out.append("## Targets (measured, not asserted)\n")
        out.append("| target | measured | met |")
        out.append("|---|---|---|")
        for t in targets:
            out.append(f"| {t['target']} | {t['measured']} | {mark(t['met'])} |")
        out.append("")

        # findings
        notes = []
        for row in r["runs"] + r["scaling"]:
            if row["non_2xx"] or row["socket_errors"]:
                d = row.get("diagnostic") or {"statuses": row.get("statuses"),
                                               "samples": row.get("samples")}
                notes.append(f"{row['system']} {row['scenario']} c={row['connections']}"
                             f"{' pop=' + str(row['population']) if 'population' in row else ''}: "
                             f"{row['non_2xx']} non-2xx, {row['socket_errors']} socket errors "
                             f"({row['errors']}); server counted {row.get('server_status_counts')}; "
                             f"re-run statuses {d.get('statuses')}, bodies {d.get('samples')}")
        for row in r["runs"] + r["scaling"]:
            if row.get("drain_s") and max(row["drain_s"]) > 2:
                notes.append(f"{row['system']} {row['scenario']} c={row['connections']}: the server "
                             f"stayed busy {max(row['drain_s']):.1f} s after a wrk run ended "
                             f"(requests abandoned by closed connections still processed); "
                             f"waited for it before the next run")
        for name, info in r["systems"].items():
            lf = info.get("log_findings", {})
            if lf.get("lines"):
                notes.append(f"{name} logged {lf['lines']} warning/error lines, e.g. "
                             + " | ".join(f"`{e[:200]}`" for e in lf["examples"][:3]))
            if info.get("exit_code") not in (0, None):
                notes.append(f"{name} exited {info['exit_code']} when stopped")
        for s in r["skipped"]:
            notes.append(f"skipped: {s}")
        if notes:
            out.append("## Findings\n")
            out.extend(f"- {n}" for n in notes)
            out.append("")

    def targets(self) -> list:
        t = []
        meta = self.r["meta"]
        conns = 64 if 64 in meta["connections"] else max(meta["connections"])
        for system in ("users-sqlite", "users-postgres"):
            peer_name = self.peer_of(system)
            row, peer = self.run(system, "me", conns), self.run(peer_name, "me", conns)
            if row and peer and peer["ok_rps"] > 0:
                x = row["ok_rps"] / peer["ok_rps"]
                t.append({"target": f"{system}: GET /users/me ≥ 25× {peer_name}' req/s "
                                    f"(c={conns})",
                          "measured": f"{x:.1f}×", "value": x, "met": x >= 25})
            if row:
                p99 = row["latency_us"]["p99"] / 1000
                t.append({"target": f"{system}: GET /users/me p99 < 10 ms (c={conns})",
                          "measured": f"{p99:.2f} ms", "value": p99, "met": p99 < 10})
            dc = self.db_ceiling(system, conns) if system.endswith("postgres") else None
            if dc:
                t.append({"target": f"{system}: GET /users/me ≥ 60% of 1/(1/floor + 1/pgbench), "
                                    f"p99 < 10 ms, zero errors (c={conns})",
                          "measured": f"{dc['pct']:.0f}% ({dc['me_ok_rps']:,.0f} of "
                                      f"{dc['bound_rps']:,.0f}/s), p99 {dc['p99_ms']:.2f} ms, "
                                      f"{dc['errors']} errors",
                          "value": dc["pct"], "met": dc["met"]})
            row = self.run(system, "refresh", conns)
            if row:
                # a `converged` answer is a 200, but not a rotation: counted with the errors
                errs = (row["non_2xx"] + row["socket_errors"]
                        + (row.get("server_refreshes") or {}).get("converged", 0))
                if system.endswith("postgres"):
                    t.append({"target": f"{system}: ≥ 3,000 refresh-token rotations/s, zero "
                                        f"errors (c={conns})",
                              "measured": f"{row['ok_rps']:,.0f}/s, {errs} errors",
                              "value": row["ok_rps"],
                              "met": row["ok_rps"] >= 3000 and errs == 0})
                else:
                    t.append({"target": f"{system}: refresh-token rotations with zero errors "
                                        f"(c={conns})",
                              "measured": f"{row['ok_rps']:,.0f}/s, {errs} errors",
                              "value": errs, "met": errs == 0})
            for scenario in ("login", "register"):
                row = self.run(system, scenario, conns)
                c = self.ceiling(ARGON2_USERS)
                if row and c:
                    pct = 100 * row["ok_rps"] / c
                    t.append({"target": f"{system}: {SCENARIO_LABEL[scenario]} ≥ 90% of the argon2 "
                                        f"ceiling (c={conns})",
                              "measured": f"{pct:.0f}% ({row['rps']:.1f} of {c:.1f}/s)",
                              "value": pct, "met": pct >= 90})
            for scenario in ("login", "register"):
                row = self.run(f"{system}-fapi-argon2", scenario, conns)
                c = self.ceiling(ARGON2_FASTAPI_USERS)
                if row and c:
                    pct = 100 * row["ok_rps"] / c
                    t.append({"target": f"{system}-fapi-argon2: {SCENARIO_LABEL[scenario]} ≥ 90% "
                                        f"of the argon2 ceiling with fastapi-users' parameters "
                                        f"(c={conns})",
                              "measured": f"{pct:.0f}% ({row['rps']:.1f} of {c:.1f}/s)",
                              "value": pct, "met": pct >= 90})
            tm = next((row for row in self.r.get("timing", []) if row["system"] == system), None)
            if tm:
                x = tm["p50_ratio"]
                t.append({"target": f"{system}: a failed login with an unregistered email takes "
                                    f"as long as with a registered one (interleaved p50 within "
                                    f"±5%; our own target)",
                          "measured": f"{x:.3f}×", "value": x, "met": 0.95 <= x <= 1.05})
            rows = [row for row in self.r["runs"]
                    if row["system"] in (system, f"{system}-fapi-argon2")]
            if rows:
                errs = sum(row["non_2xx"] + row["socket_errors"] for row in rows)
                t.append({"target": f"{system} (all rows, both argon2 settings): zero errors",
                          "measured": f"{errs} non-2xx + socket errors in {len(rows)} runs",
                          "value": errs, "met": errs == 0})
            mine, theirs = self.peak(system), self.peak(peer_name)
            if mine and theirs:
                x = theirs / mine
                t.append({"target": f"{system}: peak RSS ≤ 1/10 of {peer_name}'",
                          "measured": f"{mine / 1024:.1f} MiB vs {theirs / 1024:.1f} MiB "
                                      f"(1/{x:.1f})",
                          "value": x, "met": x >= 10})
        for backend in ("sqlite", "postgres"):
            ratios = []
            for row in self.r["scaling"]:
                if row["backend"] != backend or row["population"] != meta["scale_users"]:
                    continue
                small = next((s for s in self.r["scaling"] if s["backend"] == backend
                              and s["population"] == meta["base_users"]
                              and s["scenario"] == row["scenario"]
                              and s["connections"] == row["connections"]), None)
                if small:
                    for q in ("p50", "p99"):
                        ratios.append((row["latency_us"][q] / max(small["latency_us"][q], 1),
                                       f"{row['scenario']} c={row['connections']} {q}"))
            if ratios:
                worst = max(ratios)
                t.append({"target": f"{backend}: {meta['scale_users']:,} users within 1.3× of "
                                    f"{meta['base_users']:,} users' latencies",
                          "measured": f"worst {worst[0]:.2f}× ({worst[1]})",
                          "value": worst[0], "met": worst[0] <= 1.3})
        return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke-test the harness: 2 s warm-up + 3 s runs, 10,000 users for "
                         "scaling; writes results/quick.* (not committed)")
    ap.add_argument("--only", help="comma-separated systems/phases (shell patterns): "
                                   + ", ".join(ALL_NAMES))
    ap.add_argument("--scenarios", help="comma-separated subset of " + ", ".join([*SCENARIOS, TIMING]))
    ap.add_argument("--connections", default="64,8", help="connection counts (default 64,8)")
    ap.add_argument("--warmup", type=int, help="warm-up seconds per cell (10; quick 2)")
    ap.add_argument("--duration", type=int, help="measured seconds per cell (30; quick 3)")
    ap.add_argument("--scale-users", type=int, help="large population (1,000,000; quick 10,000)")
    ap.add_argument("--wrk-threads", type=int, help="wrk threads (default: cores)")
    ap.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL",
                                                             "postgres://postgres@127.0.0.1:5432"),
                    help="server URL without database; fresh databases are created and dropped")
    ap.add_argument("--pg-sslmode", default="disable",
                    help="libpq sslmode of the service's PostgreSQL URL (default disable: the "
                         "server is on loopback, as in docker-compose.yml, whose postgres has no "
                         "TLS; 'prefer' uses TLS when the server offers it)")
    ap.add_argument("--render", metavar="JSON",
                    help="only re-render the Markdown report of an earlier run's JSON file "
                         "(written next to it)")
    ap.add_argument("--baseline", metavar="REV",
                    help="also measure the users-server of git revision REV (e.g. HEAD~3, a "
                         "commit hash): built in release mode in a temporary worktree into "
                         f"<target>/bench-baseline/<commit> (reused by later runs), run as "
                         f"users-sqlite{BASELINE} and users-postgres{BASELINE}, each measured in "
                         "turn with its current system; the report adds current ÷ baseline")
    ap.add_argument("--current", metavar="REV",
                    help="run the users systems on the users-server of git revision REV instead "
                         "of the working tree's (built like --baseline's, into <target>/bench-"
                         "baseline/<commit>); with --baseline it measures one change between two "
                         "commits, e.g. --current END --baseline START")
    ap.add_argument("--rounds", type=int,
                    help="measured runs per cell of each system, alternating with its baseline "
                         "twin's; the cell reports their median (default 2 with --baseline, "
                         "else 1)")
    ap.add_argument("--db-pool", type=int, default=DB_POOL,
                    help=f"DATABASE_MAX_CONNECTIONS of the users servers, and the pgbench "
                         f"ceiling's client count (default {DB_POOL}, the service's default)")
    ap.add_argument("--otel", action="store_true",
                    help="run the users servers with traces on (OTEL_EXPORTER_OTLP_ENDPOINT "
                         "set to a loopback sink of the harness, the default sampler); compare "
                         "with a run without it (docs/operations.md#traces)")
    ap.add_argument("--otel-pair", action="store_true",
                    help=f"measure each users system twice in one run, traces off and on (the "
                         f"same binary; users-sqlite{OTEL} and users-postgres{OTEL} export to a "
                         "loopback sink of the harness with the default sampler), their rounds "
                         "alternating like a baseline's; the report adds on ÷ off, the "
                         "sink's CPU and the server's threads' CPU (docs/operations.md#traces)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--out", help="output folder (default bench/results)")
    ap.add_argument("--out-name", help="output file stem (default latest; quick: quick)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    if args.only:
        for pat in args.only.split(","):
            hits = [n for n in ALL_NAMES if fnmatch.fnmatch(n, pat.strip())]
            if not hits:
                ap.error(f"--only: {pat!r} matches none of {', '.join(ALL_NAMES)}")
            if not args.baseline and all(n.endswith(BASELINE) for n in hits):
                ap.error(f"--only: {pat!r} selects baseline systems only: give --baseline REV")
    if args.otel and args.otel_pair:
        ap.error("--otel and --otel-pair: choose one")
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.db_pool < 1:
        ap.error("--db-pool must be at least 1")
    if args.render:
        src = Path(args.render)
        results = json.loads(src.read_text())
        md = Report(results).markdown()  # recomputes results["targets"]
        src.with_suffix(".md").write_text(md)
        src.write_text(json.dumps(results, indent=1) + "\n")
        print(md)
        return 0
    if args.scenarios:
        for s in args.scenarios.split(","):
            if s.strip() not in SCENARIOS and s.strip() != TIMING:
                ap.error(f"--scenarios: unknown {s!r}")
    global OTEL_ENDPOINT, OTEL_SINK, OTEL_PAIR
    sink = None
    bench = Bench(args)
    if args.otel or args.otel_pair:
        try:
            sink = OtlpSink(bench.tmp)
        except BenchError as e:
            log(f"error: {e}")
            return 1
        OTEL_ENDPOINT, OTEL_SINK, OTEL_PAIR = sink.endpoint, sink, args.otel_pair
        log(f"traces on{' for the ' + OTEL + ' twins' if OTEL_PAIR else ''}: "
            f"exported to {sink.endpoint}")
    try:
        bench.run()
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if not args.keep_temp:  # also when it failed before measuring (build, --baseline)
            shutil.rmtree(bench.tmp, ignore_errors=True)
        if sink:
            st = sink.stats()
            log(f"traces: {st['requests']} export requests, {st['bytes']} bytes, the sink's "
                f"CPU {st['cpu_s']:.1f} s")
            sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
