#!/usr/bin/env python3
"""Instructions per request of GET /users/me, POST /auth/jwt/login and the provider's
paths (userinfo, authorize, the code exchange, client credentials), in the users-server
process (bench/README.md).

    python3 bench/instructions.py                      # this tree, SQLite and PostgreSQL
    python3 bench/instructions.py --baseline HEAD~1    # and git revision HEAD~1, side by side
    python3 bench/instructions.py --otel-both          # each server with traces off, then on

Starts the release users-server (and, with --baseline REV, REV's, built in a git worktree
exactly as run.py --baseline does) on a fresh SQLite file and on a fresh PostgreSQL
database, registers and signs in one user, then for each scenario sends a warm-up and then
a fixed number of requests, one at a time on one keep-alive connection, and counts the
instructions the server process executed (all its threads, user space) while it answered
them. An idle window of the same server is counted the same way and its rate subtracted,
so that timers and background tasks do not count as request work.

The counter is `perf stat -e instructions:u` attached to the server when the machine's
hardware counters work (perf_event_paranoid, containers and VMs often hide them), and
otherwise valgrind's callgrind (`callgrind_control -z` before, `-d` after each window; the
server runs 20-100x slower under it, which changes no instruction count). The two count
slightly differently (callgrind counts the guest's instructions, perf the CPU's): compare
numbers measured by the same tool only.

Only the standard library is used; run.py provides the build, the service's environment
and the process handling.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from http.client import HTTPConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py)
from run import BenchError, log  # noqa: E402

# name: (headers of the request, the status every answer must have)
SCENARIOS = {
    "me": "GET /users/me with a token from POST /auth/jwt/login (a session token, with `sid`, from servers that have sessions)",
    "me_nosession": "GET /users/me with a token minted as fastapi-users mints it (no `sid`)",
    "me_401": "GET /users/me without a token (401: the route's HTTP floor)",
    "login": "POST /auth/jwt/login with the right password (200; one argon2id verification of "
             "the bench's parameters, the session row and the event)",
}
# The provider's (docs/oauth-provider.md), set up after the user's sign-in: a superuser
# (`users-server create-user`) registers a client of the code flow that skips consent
# (scope openid, EdDSA) and one of client credentials (EdDSA); the user signs in with a
# cookie and gets a person's access token through the code flow.
OAUTH = {
    "oauth_userinfo": "GET /oauth/userinfo with a person's access token (EdDSA, scope openid, from the code flow)",
    "oauth_authorize": "GET /oauth/authorize of a signed-in person (cookie), a client that skips consent: 302 with a code",
    "oauth_code": "POST /oauth/token grant_type=authorization_code (EdDSA: an access token and an ID token), each code minted before the window and spent once",
    "oauth_cc": "POST /oauth/token grant_type=client_credentials (EdDSA)",
}
SCENARIOS.update(OAUTH)
EXPECTED = {"me": 200, "me_nosession": 200, "me_401": 401, "login": 200,
            "oauth_userinfo": 200, "oauth_authorize": 302, "oauth_code": 200, "oauth_cc": 200}
# A login is a password hash (tens of millions of instructions, thousands of times slower
# under callgrind than a token check): it runs this many times fewer requests.
LOGIN_DIVISOR = 50
# The code scenarios write rows (a code, a session and a grant), each minted over HTTP
# before its window: fewer of them.
DIVISOR = {"login": LOGIN_DIVISOR, "oauth_authorize": 4, "oauth_code": 4}


# ----------------------------------------------------------------------------------------
# counters
# ----------------------------------------------------------------------------------------

def perf_works() -> bool:
    """Whether `perf stat` can count user-space instructions here."""
    perf = shutil.which("perf")
    if not perf:
        return False
    p = subprocess.run([perf, "stat", "-x,", "-e", "instructions:u", "true"], text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = next((l for l in p.stderr.splitlines() if "instructions" in l), "")
    return p.returncode == 0 and first.split(",")[0].strip().isdigit()


def ensure_valgrind() -> str:
    vg = shutil.which("valgrind")
    if vg and shutil.which("callgrind_control"):
        return vg
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("valgrind is missing: installing it with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=False, env=env)
        vg = shutil.which("valgrind")
        if vg and shutil.which("callgrind_control"):
            return vg
    raise BenchError("neither working perf counters nor valgrind: apt-get install -y valgrind")


class Callgrind:
    """The server runs under callgrind; each window zeroes the counters and dumps them."""

    name = "callgrind"

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.valgrind = ensure_valgrind()
        self.control = shutil.which("callgrind_control")

    def wrap(self, cmd: list, tag: str) -> list:
        self.out = self.tmp / f"callgrind.{tag}"
        return [self.valgrind, "--tool=callgrind", f"--callgrind-out-file={self.out}.%p",
                "--dump-line=no", "--dump-instr=no", *cmd]

    def attach(self, pid: int):
        self.pid = pid

    def _dumps(self) -> list[Path]:
        return sorted(self.tmp.glob(f"{self.out.name}.{self.pid}.*"),
                      key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else -1)

    def start(self):
        harness.run_cmd([self.control, "-z", str(self.pid)], timeout=120)

    def stop(self) -> int:
        before = len(self._dumps())
        harness.run_cmd([self.control, "-d", str(self.pid)], timeout=120)
        deadline = time.monotonic() + 120
        while len(self._dumps()) <= before:
            if time.monotonic() > deadline:
                raise BenchError(f"callgrind wrote no dump for pid {self.pid}")
            time.sleep(0.1)
        path = self._dumps()[-1]
        for _ in range(100):  # the dump may still be being written
            text = path.read_text(errors="replace")
            m = (re.search(r"^totals:\s*(\d+)", text, re.M)
                 or re.search(r"^summary:\s*(\d+)", text, re.M))
            if m:
                return int(m.group(1))
            time.sleep(0.1)
        raise BenchError(f"no totals in {path}")


class Perf:
    """`perf stat -e instructions:u -p PID` over each window (all the server's threads)."""

    name = "perf"

    def __init__(self, tmp: Path):
        self.perf = shutil.which("perf")

    def wrap(self, cmd: list, tag: str) -> list:
        return cmd

    def attach(self, pid: int):
        self.pid = pid

    def start(self):
        self.proc = subprocess.Popen(
            [self.perf, "stat", "-x,", "-e", "instructions:u", "-p", str(self.pid)],
            text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # attached (the idle correction covers this half second)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        line = next((l for l in err.splitlines() if "instructions" in l), "")
        value = line.split(",")[0].strip()
        if not value.isdigit():
            raise BenchError(f"perf stat counted nothing: {err[-500:]}")
        return int(value)


# ----------------------------------------------------------------------------------------
# one server
# ----------------------------------------------------------------------------------------

def send(conn: HTTPConnection, requests, n: int, expected: int) -> dict:
    """`n` requests, the i-th `requests(i)`: (method, path, headers, body or None)."""
    statuses = {}
    for i in range(n):
        method, path, headers, body = requests(i)
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
    bad = {k: v for k, v in statuses.items() if k != expected}
    if bad:
        raise BenchError(f"expected {expected} to every request, got {statuses}")
    return statuses


FORM = "application/x-www-form-urlencoded"


def provider_setup(binary: Path, env: dict, base: str, email: str, tmp: Path) -> dict:
    """The provider's clients, the user's cookie and a person's access token (OAUTH)."""
    admin = f"bench-instr-admin-{secrets.token_hex(4)}@example.com"
    p = harness.run_cmd([str(binary), "create-user", "--email", admin, "--superuser",
                         "--verified"], env={**env, "USERS_CREATE_PASSWORD":
                                             harness.SEED_PASSWORD},
                        cwd=tmp, timeout=300, check=False)
    if p.returncode != 0:
        raise BenchError(f"create-user --superuser failed: {(p.stderr or p.stdout)[-300:]}")
    token = harness.login(base, admin, harness.SEED_PASSWORD)

    def client(body):
        status, raw = harness.http("POST", base + "/oauth/clients",
                                   data=json.dumps(body).encode(),
                                   headers={"content-type": "application/json",
                                            "authorization": f"Bearer {token}"})
        if status != 201:
            raise BenchError(f"POST /oauth/clients answered {status}: {raw[:300]!r}")
        return json.loads(raw)

    app = client({"client_name": "instructions code EdDSA",
                  "redirect_uris": [harness.OAUTH_REDIRECT],
                  "grant_types": ["authorization_code"], "scope": "openid",
                  "skip_consent": True, "id_token_signed_response_alg": "EdDSA"})
    cc = client({"client_name": "instructions cc EdDSA", "grant_types": ["client_credentials"],
                 "id_token_signed_response_alg": "EdDSA"})
    cookie = harness.browser_cookie(base, email, harness.SEED_PASSWORD)
    person = harness.person_token(base, app, email, harness.SEED_PASSWORD)
    return {"app": app, "cc": cc, "cookie": cookie, "person": person,
            "authorize": harness.authorize_path(app)}


def mint_codes(base: str, setup: dict, n: int) -> list[str]:
    """`n` codes of the person's cookie, from GET /oauth/authorize (before a window)."""
    codes = []
    for _ in range(n):
        status, headers, raw = harness.http_headers(
            "GET", base + setup["authorize"], headers={"cookie": setup["cookie"]})
        code = harness.code_of(headers.get("location") or "")
        if status != 302 or not code:
            raise BenchError(f"/oauth/authorize answered {status}: {raw[:300]!r}")
        codes.append(code)
    return codes


def requests_of(scenario: str, ctx: dict):
    """The requests of a scenario: a function of the request's index (see send())."""
    if scenario == "login":
        return lambda i: ("POST", "/auth/jwt/login", {"content-type": FORM}, ctx["login_form"])
    if scenario in ("me", "me_nosession", "me_401"):
        headers = {}
        if scenario == "me":
            headers = {"Authorization": f"Bearer {ctx['session_token']}"}
        elif scenario == "me_nosession":
            headers = {"Authorization":
                       f"Bearer {harness.mint_access_token(ctx['secret'], ctx['user_id'])}"}
        return lambda i: ("GET", "/users/me", headers, None)
    setup = ctx["provider"]
    if scenario == "oauth_userinfo":
        headers = {"Authorization": f"Bearer {setup['person']}"}
        return lambda i: ("GET", "/oauth/userinfo", headers, None)
    if scenario == "oauth_authorize":
        headers = {"cookie": setup["cookie"]}
        return lambda i: ("GET", setup["authorize"], headers, None)
    if scenario == "oauth_cc":
        headers = {"content-type": FORM, "authorization": harness.basic_auth(setup["cc"])}
        return lambda i: ("POST", "/oauth/token", headers, b"grant_type=client_credentials")
    if scenario == "oauth_code":
        headers = {"content-type": FORM, "authorization": harness.basic_auth(setup["app"])}
        codes = ctx["codes"]
        return lambda i: ("POST", "/oauth/token", headers,
                          harness.code_exchange_form(codes[i]).encode())
    raise BenchError(f"unknown scenario {scenario}")


def measure_server(args, counter, binary: Path, label: str, backend: str, tmp: Path,
                   pg_admin: str, traces: str) -> list[dict]:
    tag = f"{label}-{backend}-traces-{traces}"
    pg_db = None
    if backend == "sqlite":
        d = tmp / tag
        d.mkdir()
        url = f"sqlite://{d / 'users.db'}"
    else:
        pg_db = f"users_bench_instr_{secrets.token_hex(4)}"
        harness.run_cmd(["psql", pg_admin + "/postgres", "-v", "ON_ERROR_STOP=1", "-qc",
                         f'CREATE DATABASE "{pg_db}"'], timeout=60)
        url = f"{pg_admin}/{pg_db}?sslmode={args.pg_sslmode}"
    secret = secrets.token_hex(32)
    port = harness.free_port()
    env = harness.service_env(url, port, secret, tmp / f"mail-{tag}", harness.ARGON2_USERS)
    cmd = counter.wrap([str(binary)], tag)
    rows = []
    srv = harness.Server(f"instructions-{tag}", cmd, env, port, tmp, tmp)
    try:
        t0 = time.monotonic()
        srv.wait_ready(timeout=900)  # under valgrind, start-up takes a while
        log(f"{tag}: up in {time.monotonic() - t0:.0f} s ({counter.name})")
        counter.attach(srv.proc.pid)
        email = f"bench-instr-{secrets.token_hex(4)}@example.com"
        status, raw = harness.register(srv.base, email, harness.SEED_PASSWORD)
        if status != 201:
            raise BenchError(f"register answered {status}: {raw[:300]!r}")
        user_id = json.loads(raw)["id"]
        ctx = {"session_token": harness.login(srv.base, email, harness.SEED_PASSWORD),
               "login_form": urllib.parse.urlencode(
                   {"username": email, "password": harness.SEED_PASSWORD}).encode(),
               "secret": secret, "user_id": user_id}
        if any(s in OAUTH for s in args.scenarios):
            ctx["provider"] = provider_setup(binary, env, srv.base, email, tmp)
        for scenario in args.scenarios:
            divisor = DIVISOR.get(scenario, 1)
            warmup = max(1, args.warmup // divisor) if args.warmup else 0
            requests = max(1, args.requests // divisor)
            if scenario == "oauth_code":
                codes = mint_codes(srv.base, ctx["provider"], warmup + requests)
                # the warm-up spends the first ones, the measured window the rest
                ctx["codes"] = codes[:warmup]
            conn = HTTPConnection("127.0.0.1", port, timeout=300)
            send(conn, requests_of(scenario, ctx), warmup, EXPECTED[scenario])
            if scenario == "oauth_code":
                ctx["codes"] = codes[warmup:]
            if args.otel or args.otel_both:
                # the warm-up's spans are exported before the idle window, not in it; the
                # wait outlasts the server's keep-alive: the measured requests connect anew
                time.sleep(args.otel_settle)
                conn.close()
                conn = HTTPConnection("127.0.0.1", port, timeout=300)
            # idle: what the server does on its own in a while (timers, background tasks)
            counter.start()
            i0 = time.monotonic()
            time.sleep(args.idle_seconds)
            idle_s = time.monotonic() - i0
            idle = counter.stop()
            # the measured requests
            counter.start()
            m0 = time.monotonic()
            statuses = send(conn, requests_of(scenario, ctx), requests, EXPECTED[scenario])
            if args.otel or args.otel_both:
                # the spans still queued are exported at the batch's scheduled delay (5 s):
                # their export is the requests' work too (the idle rate covers the wait)
                time.sleep(args.otel_settle)
            wall = time.monotonic() - m0
            total = counter.stop()
            conn.close()
            idle_rate = idle / idle_s if idle_s > 0 else 0.0
            per_request = (total - idle_rate * wall) / requests
            row = {"binary": label, "backend": backend, "scenario": scenario, "traces": traces,
                   "requests": requests, "warmup": warmup,
                   "instructions_total": total, "wall_s": round(wall, 2),
                   "idle_instructions": idle, "idle_s": round(idle_s, 2),
                   "idle_per_s": round(idle_rate), "instructions_per_request": per_request,
                   "idle_share": (idle_rate * wall / total) if total else 0.0,
                   "statuses": {str(k): v for k, v in statuses.items()}}
            rows.append(row)
            log(f"{tag} {scenario}: {per_request:,.0f} instructions a request "
                f"({total:,} in {wall:.1f} s for {requests}, idle {idle_rate:,.0f}/s "
                f"subtracted: {100 * row['idle_share']:.1f}%)")
    finally:
        info = srv.stop()
        if info.get("log_findings", {}).get("lines"):
            log(f"{tag} logged: {info['log_findings']['examples'][:2]}")
        if pg_db:
            harness.run_cmd(["psql", pg_admin + "/postgres", "-qc",
                             f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'],
                            check=False, timeout=60)
    return rows


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    meta = res["meta"]
    out = ["# users: instructions per request\n"]
    out.append(f"- run: {meta['started_at']}, commit {meta['git']['commit'][:12]}"
               f"{' (dirty tree)' if meta['git']['dirty'] else ''}; counter: {meta['tool']} "
               f"(the server process, all threads, user space; compare numbers of one "
               f"counter only)")
    out.append(f"- per scenario: {meta['warmup']} warm-up requests, then {meta['requests']} "
               f"measured (logins: {LOGIN_DIVISOR} times fewer), one at a time on one "
               f"keep-alive connection; an idle window of "
               f"{meta['idle_seconds']} s counted the same way, its rate × the measured "
               f"window's duration subtracted")
    c = meta.get("current")
    if c:
        out.append(f"- current: `{c['rev']}` = commit {c['commit'][:12]} ({c['subject']}), "
                   f"not the working tree")
    b = meta.get("baseline")
    if b:
        out.append(f"- baseline: `{b['rev']}` = commit {b['commit'][:12]} ({b['subject']})")
    out.append("- SQLite runs in the server's process, so its rows include the query; the "
               "PostgreSQL rows count the client side only (libpq, the pool), not the "
               "database server's work")
    out.append("")
    if meta.get("otel"):
        out.append("- traces on: OTEL_EXPORTER_OTLP_ENDPOINT set to a loopback OTLP sink, the "
                   "default sampler (parentbased_always_on: every trace kept); the exporter's "
                   "thread counts too")
    out.append("")
    out.append("| binary | traces | backend | scenario | instructions / request | "
               "measured total | wall s | idle subtracted |")
    out.append("|---|---|---|---|---:|---:|---:|---:|")
    for r in res["rows"]:
        out.append(f"| {r['binary']} | {r.get('traces', 'off')} | {r['backend']} | "
                   f"{SCENARIOS[r['scenario']]} | "
                   f"{r['instructions_per_request']:,.0f} | {r['instructions_total']:,} | "
                   f"{r['wall_s']} | {100 * r['idle_share']:.1f}% |")
    out.append("")
    if res.get("comparisons"):
        out.append("| backend | scenario | traces | current | baseline | current ÷ baseline |")
        out.append("|---|---|---|---:|---:|---:|")
        for c in res["comparisons"]:
            out.append(f"| {c['backend']} | {c['scenario']} | {c['traces']} | "
                       f"{c['current']:,.0f} | {c['baseline']:,.0f} | {c['ratio']:.3f} |")
        out.append("")
    if res.get("traces_cost"):
        out.append("| binary | backend | scenario | traces off | traces on | on ÷ off |")
        out.append("|---|---|---|---:|---:|---:|")
        for c in res["traces_cost"]:
            out.append(f"| {c['binary']} | {c['backend']} | {c['scenario']} | "
                       f"{c['off']:,.0f} | {c['on']:,.0f} | {c['ratio']:.3f} |")
        out.append("")
    for s in res.get("skipped", []):
        out.append(f"- skipped: {s}")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="measured requests (2000)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up requests (200)")
    ap.add_argument("--idle-seconds", type=float, default=2.0,
                    help="the idle window whose rate is subtracted (2 s)")
    ap.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    ap.add_argument("--scenarios", default="me",
                    help="comma-separated: " + ", ".join(SCENARIOS) + " (default me)")
    ap.add_argument("--tool", choices=["auto", "perf", "callgrind"], default="auto",
                    help="auto: perf when the hardware counters work, else callgrind")
    ap.add_argument("--baseline", metavar="REV",
                    help="also measure git revision REV's users-server (built like run.py "
                         "--baseline: a temporary worktree, target/bench-baseline/<commit>)")
    ap.add_argument("--current", metavar="REV",
                    help="measure git revision REV's users-server as the current one instead "
                         "of the working tree's (built like --baseline)")
    ap.add_argument("--otel", action="store_true",
                    help="run the servers with traces on (OTEL_EXPORTER_OTLP_ENDPOINT set to "
                         "run.py's loopback OTLP sink, the default sampler): the exporter's "
                         "thread counts too")
    ap.add_argument("--otel-both", action="store_true",
                    help="measure each server twice, with traces off and then on (as --otel), "
                         "the same binary side by side: the cost of traces as on ÷ off")
    ap.add_argument("--otel-settle", type=float, default=6.0,
                    help="with traces, seconds the measured window goes on after the last "
                         "answer, so that the last batch's export is counted (6 s: the "
                         "batch's scheduled delay is 5 s)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--server", metavar="PATH",
                    help="measure this users-server binary as the current one (nothing is "
                         "built for it)")
    ap.add_argument("--postgres-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
        help="server URL without database; a fresh database is created and dropped")
    ap.add_argument("--pg-sslmode", default="disable", help="as run.py's (default disable)")
    ap.add_argument("--out", help="output folder (default bench/results)")
    ap.add_argument("--out-name", default="instructions", help="file stem (instructions)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for b in args.backends:
        if b not in ("sqlite", "postgres"):
            ap.error(f"--backends: unknown {b!r}")
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"--scenarios: unknown {s!r}")
    if args.requests < 1 or args.warmup < 0:
        ap.error("--requests must be at least 1 and --warmup at least 0")

    tmp = Path(tempfile.mkdtemp(prefix="users-instr-"))
    sink = None
    pg_admin = args.postgres_url.rstrip("/")
    res = {"meta": {}, "rows": [], "comparisons": [], "skipped": []}
    try:
        tool = args.tool
        if tool == "auto":
            tool = "perf" if perf_works() else "callgrind"
        counter = Perf(tmp) if tool == "perf" else Callgrind(tmp)
        meta = res["meta"]
        meta.update({
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "tool": tool, "requests": args.requests, "warmup": args.warmup,
            "idle_seconds": args.idle_seconds, "machine": harness.machine_info(),
            "git": {"commit": harness.tool_version(["git", "-C", str(harness.ROOT), "rev-parse",
                                                    "HEAD"]),
                    "dirty": bool(harness.tool_version(["git", "-C", str(harness.ROOT), "status",
                                                        "--porcelain", "--untracked-files=no"]))},
        })
        log(f"counting with {tool}")
        if args.otel or args.otel_both:
            sink = harness.OtlpSink(tmp)
            harness.OTEL_ENDPOINT = sink.endpoint
            meta["otel"] = True
            meta["otel_both"] = bool(args.otel_both)
            log(f"traces on: the servers export to {sink.endpoint}")
        binaries = {}
        if args.baseline:
            meta["baseline"] = harness.resolve_baseline(args.baseline)
        server = harness.cargo_target_dir() / "release" / "users-server"
        if args.server:
            server = Path(args.server).resolve()
            meta["server"] = server.name
        elif not args.no_build and not args.current:
            cmd = ["cargo", "build", "--release", "-p", "users-server", "--bin", "users-server"]
            log(" ".join(cmd))
            if subprocess.run(cmd, cwd=harness.ROOT).returncode != 0:
                raise BenchError(f"{' '.join(cmd)} failed")
        if not args.current and not server.exists():
            raise BenchError(f"{server} is missing (run without --no-build)")
        binaries["current"] = server
        if args.current:
            meta["current"] = harness.resolve_baseline(args.current)
            harness.build_baseline(meta["current"], tmp, args.no_build)
            binaries["current"] = Path(meta["current"]["binary"])
        if args.baseline:
            harness.build_baseline(meta["baseline"], tmp, args.no_build)
            binaries["baseline"] = Path(meta["baseline"]["binary"])
        backends = list(args.backends)
        if "postgres" in backends:
            p = harness.run_cmd(["psql", pg_admin + "/postgres", "-qAtc", "select 1"],
                                check=False, timeout=20) if shutil.which("psql") else None
            if not p or p.returncode != 0:
                backends.remove("postgres")
                res["skipped"].append(f"postgres: not reachable at {pg_admin}")
                log("skipping postgres: not reachable")
        modes = ["off", "on"] if args.otel_both else ["on" if args.otel else "off"]
        for backend in backends:
            for label, binary in binaries.items():
                for traces in modes:
                    # run.py's service_env sets the endpoint when this is set
                    harness.OTEL_ENDPOINT = sink.endpoint if traces == "on" else None
                    try:
                        res["rows"] += measure_server(args, counter, binary, label, backend,
                                                      tmp, pg_admin, traces)
                    except BenchError as e:
                        log(f"{label} {backend} traces {traces} FAILED: {e}")
                        res["skipped"].append(
                            f"{label} {backend} traces {traces}: {str(e)[:500]}")
        for r in res["rows"]:
            if r["traces"] != "on":
                continue
            off = next((o for o in res["rows"] if o["traces"] == "off"
                        and o["binary"] == r["binary"] and o["backend"] == r["backend"]
                        and o["scenario"] == r["scenario"]), None)
            if off and off["instructions_per_request"] > 0:
                res.setdefault("traces_cost", []).append({
                    "binary": r["binary"], "backend": r["backend"], "scenario": r["scenario"],
                    "off": off["instructions_per_request"],
                    "on": r["instructions_per_request"],
                    "ratio": r["instructions_per_request"] / off["instructions_per_request"]})
        for r in res["rows"]:
            if r["binary"] != "current":
                continue
            base = next((b for b in res["rows"] if b["binary"] == "baseline"
                         and b["backend"] == r["backend"] and b["scenario"] == r["scenario"]
                         and b["traces"] == r["traces"]),
                        None)
            if base and base["instructions_per_request"] > 0:
                res["comparisons"].append({
                    "backend": r["backend"], "scenario": r["scenario"], "traces": r["traces"],
                    "current": r["instructions_per_request"],
                    "baseline": base["instructions_per_request"],
                    "ratio": r["instructions_per_request"] / base["instructions_per_request"]})
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        if sink:
            sink.stop()
        if args.keep_temp:
            log(f"temporary files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    harness.publishable(res["meta"])
    md = markdown(res)
    out = Path(args.out) if args.out else harness.BENCH / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.out_name}.md").write_text(md)
    (out / f"{args.out_name}.json").write_text(json.dumps(res, indent=1) + "\n")
    print()
    print(md)
    log(f"wrote {out / (args.out_name + '.md')} and {out / (args.out_name + '.json')}")
    return 0 if res["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
