"""Fault campaign `api`: schemathesis against a real `accessgw run` for 10 minutes (1 with --quick).

    .venv/bin/python -m bench.faults api [--quick]
    .venv/bin/python -m bench.fault_api [--quick] [--minutes M]

The gateway runs as its own process (testing.gateway.GatewayProcess: the daemon and its API child on a
real uvicorn), with a roster of a few tenants so that reads find rows. Tokens: the first start's admin,
and police, auditor and operator users made through the API. schemathesis (`schemathesis run`, every
operation of /api/v1/openapi.json, all phases: examples, coverage, fuzzing and stateful where its links
allow) runs once per role (RUNS), the admin getting most of the time; its made-up tokens would trip the failed-
login limit, so that limit is set out of reach (api.failed_auth_limit) as in tests/api/test_schemathesis.

Counted by a schemathesis hook in its own process (this module, loaded with SCHEMATHESIS_HOOKS): every
response's status, by class and by operation, and every network error (a timeout is a hang:
--request-timeout REQUEST_TIMEOUT_S). Checks: no 5xx, no network error, the daemon alive and its API
answering at the end, and schemathesis's own checks (not_a_server_error, response_schema_conformance,
status_code_conformance) passing; their failures are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from gateway.store.db import open_store
from gateway.store.roster import NewTenant, add_card, add_tenant
from testing.gateway import ROOT, GatewayProcess, gateway_config
from testing.peers import Mosquitto

ST = Path(sys.executable).with_name("schemathesis")
COUNTS_ENV = "FAULT_API_COUNTS"  # where the hook appends "<status> <method> <path>" lines
REQUEST_TIMEOUT_S = 30
MINUTES = 10.0
QUICK_MINUTES = 1.0
# (label, role, share of the time, schemathesis filter). An admin may revoke or rotate any user, itself
# included: the admin's main run leaves users/{name} alone, and a short last run does only those (whatever
# it revokes then costs no other run its token).
USERS_BY_NAME = r"/users/\{name\}"
RUNS: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("police", "police", 0.2, ()),
    ("auditor", "auditor", 0.1, ()),
    ("operator", "operator", 0.15, ()),
    ("admin", "admin", 0.5, ("--exclude-path-regex", USERS_BY_NAME)),
    ("admin, users/{name} only", "admin", 0.05, ("--include-path-regex", USERS_BY_NAME)),
)
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"


# --- the hook, in schemathesis's process -----------------------------------------------------------------
if os.environ.get(COUNTS_ENV):
    import schemathesis

    _lock = threading.Lock()
    _out = open(os.environ[COUNTS_ENV], "a", buffering=1, encoding="utf-8")  # open for the whole run

    @schemathesis.hook
    def after_call(context, case, response) -> None:
        with _lock:
            _out.write(f"{response.status_code} {case.method} {case.operation.path}\n")

    @schemathesis.hook
    def after_network_error(context, case, request) -> None:
        with _lock:
            _out.write(f"NETERR {case.method} {case.operation.path}\n")


# --- the campaign ---------------------------------------------------------------------------------------------
def enrol(data_dir: Path) -> None:
    engine, sessions = open_store(data_dir)
    try:
        with sessions.begin() as s:
            for i in range(20):
                tenant = f"T{i:03d}"
                add_tenant(s, NewTenant(tenant, f"Tenant {i}", f"P{i:06d}", date.today() + timedelta(days=90)))
                add_card(s, tenant, 7_000_000 + i)
    finally:
        engine.dispose()


def tokens(gw: GatewayProcess) -> dict[str, str]:
    out = {"admin": gw.admin_token()}
    with gw.client(out["admin"]) as c:
        for role in ("police", "auditor", "operator"):
            r = c.post("/api/v1/users", json={"name": f"fuzz-{role}", "role": role})
            r.raise_for_status()
            out[role] = r.json()["token"]
    return out


def schemathesis_run(gw: GatewayProcess, token: str, seconds: int, counts: Path, log: Path,
                     extra: tuple[str, ...] = ()) -> int:  # fmt: skip
    cmd = [str(ST), "run", f"{gw.base}/api/v1/openapi.json", "--url", gw.base,
           "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
           "--phases", "examples,coverage,fuzzing,stateful", "--max-time", str(seconds),
           "--request-timeout", str(REQUEST_TIMEOUT_S), "--continue-on-failure", "--no-color",
           "--suppress-health-check", "all", "--seed", "13", *extra]  # fmt: skip
    env = os.environ | {COUNTS_ENV: str(counts), "SCHEMATHESIS_HOOKS": "bench.fault_api", "NO_COLOR": "1",
                        "PYTHONPATH": str(ROOT)}  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                              timeout=seconds + 300, check=False)  # fmt: skip
    return proc.returncode


def summary_lines(text: str) -> list[str]:
    """schemathesis's closing summary (the part a reader needs): from its SUMMARY heading on."""
    at = text.rfind("SUMMARY")
    tail = text[at:] if at >= 0 else text[-3000:]
    return [line for line in tail.splitlines() if line.strip()][:40]


def run(quick: bool, minutes: float | None = None) -> int:
    total_s = (minutes if minutes is not None else (QUICK_MINUTES if quick else MINUTES)) * 60
    work = Path(tempfile.mkdtemp(prefix="fault-api-"))
    broker = Mosquitto(work / "broker")
    broker.start()
    cfg = gateway_config(work / "data", broker.port, gateway_id="gw-api-fuzz", timezone="Asia/Shanghai",
                         api={"failed_auth_limit": 1_000_000})  # fmt: skip
    gw = GatewayProcess(work, cfg)
    problems: list[str] = []
    per_role: dict[str, tuple[int, Counter[str], float, bool]] = {}
    alive = False
    try:
        gw.write_config()
        enrol(gw.data_dir)
        gw.start()
        roles = tokens(gw)
        for i, (label, role, share, extra) in enumerate(RUNS):
            counts, log = work / f"counts-{i}.txt", work / f"schemathesis-{i}.log"
            counts.touch()
            started = time.monotonic()
            code = schemathesis_run(gw, roles[role], max(10, int(total_s * share)), counts, log, extra)
            took = time.monotonic() - started
            lines = counts.read_text().splitlines()
            with gw.client(roles[role]) as c:  # still signed in: or did the run revoke or rotate its own token?
                kept = c.get("/api/v1/me").status_code == 200
            per_role[label] = (code, Counter(lines), took, kept)
            text = log.read_text(errors="replace")
            if code != 0:
                problems.append(f"schemathesis as {label} exited {code}:\n    " + "\n    ".join(summary_lines(text)))
            if not gw.running:
                problems.append(f"the gateway died during the {label} run:\n{gw.log_tail()}")
                break
        alive = gw.running and gw.api_answers()
        if not alive:
            problems.append("the gateway's API does not answer at the end")
    finally:
        try:
            gw.stop()
        finally:
            broker.stop()
    print(f"api: schemathesis {total_s / 60:.0f} min against `accessgw run` ({CHECKS}; phases examples, coverage, "
          f"fuzzing, stateful; request timeout {REQUEST_TIMEOUT_S} s)")  # fmt: skip
    grand: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    operations: set[str] = set()  # method and path template
    paths: set[str] = set()
    for role, (code, lines, took, kept) in per_role.items():
        classes: Counter[str] = Counter()
        for line, n in lines.items():
            status, operation = line.split(" ", 1)
            operations.add(operation)
            paths.add(operation.split(" ", 1)[-1])
            cls = "network error" if status == "NETERR" else f"{status[0]}xx"
            classes[cls] += n
            statuses[status] += n
            if cls in ("5xx", "network error"):
                problems.append(f"{n} × {line} (as {role})")
        grand += classes
        print(f"  {role}: {sum(lines.values()):,} requests in {took:.0f} s, "
              f"{', '.join(f'{k} {v:,}' for k, v in sorted(classes.items()))}; schemathesis exit {code}; "
              f"its token {'still valid' if kept else 'revoked or rotated by the run itself'}")  # fmt: skip
    print(f"  all: {sum(grand.values()):,} requests on {len(paths)} paths ({len(operations)} method-path pairs, "
          f"methods the schema does not list included), "
          f"{', '.join(f'{k} {v:,}' for k, v in sorted(grand.items()))}")  # fmt: skip
    print(f"  by status: {', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items()))}")
    print(f"  gateway alive and its API answering at the end: {alive}")
    for p in problems:
        print(f"  PROBLEM {p}")
    if not problems:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"  (logs kept in {work})")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--minutes", type=float, default=None)
    args = parser.parse_args(argv)
    return run(args.quick, args.minutes)


if __name__ == "__main__":
    sys.exit(main())
