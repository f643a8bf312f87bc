#!/usr/bin/env python3
"""Dispatch throughput: the daemon sends N queued SMS through the Aliyun
client to a local stand-in server (zero latency, then 50 ms), with the send
log persisted, and we report messages per second, the daemon's peak memory,
and the same server's raw capacity measured by wrk.

    python3 benches/dispatch_bench.py --messages 50000 --runs 3

Each run: a fresh database with N customers and N queued messages, then
`outreach run` until every message is `sent` (polled in the database), then
SIGTERM. Throughput = N / (time from daemon start to the last `sent`).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, NOW, SQLITE3, clean_env, machine, pg_url, psql, remove_sqlite

EMAIL_PAYLOAD = json.dumps({
    "channel": "email", "subject": "张三，生日快乐！您的10元券已到账",
    "html": "<p>张三，生日快乐！送您 <b>10元券 ABCD2345</b>，14天内有效。</p>",
    "text": "张三，生日快乐！送您10元券 ABCD2345，14天内有效。",
}, ensure_ascii=False)

PAYLOAD = json.dumps({
    "channel": "sms", "kind": "marketing",
    "text": "张三，生日快乐！送您10元券 ABCD2345，14天内有效。拒收请回复R",
    "aliyun": {"template_code": "SMS_154950909", "params": {"name": "张三", "code": "ABCD2345"}},
    "tencent": None,
}, ensure_ascii=False)

WRK_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "Action=SendSms&PhoneNumbers=%2B8613800138000&SignName=%E8%80%81%E8%A1%97&TemplateCode=SMS_154950909"
"""


def build():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    r = subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "outreach",
                        "--example", "fake_provider"], cwd=ROOT)
    if r.returncode != 0:
        sys.exit("cargo build --release failed")
    return target / "outreach", target / "examples" / "fake_provider"


def ensure_wrk():
    if shutil.which("wrk"):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True)
    return shutil.which("wrk") is not None


def start_server(fake, mode, port, delay_ms=0):
    p = subprocess.Popen([str(fake), mode, str(port), str(delay_ms)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "listening" not in line:
        p.kill()
        sys.exit(f"the fake provider did not start: {line!r}")
    return p


def wrk_capacity(port, workdir, connections):
    lua = workdir / "post.lua"
    lua.write_text(WRK_LUA)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", "-d8s", "-s", str(lua),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else None


def seed_sql(n, backend, channel):
    if backend == "sqlite":
        series = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})"
        fmt_id, fmt_phone, fmt_key = "printf('B%07d', i)", "printf('+86138%08d', i)", "printf('bench/B%07d/1', i)"
        src = "n"
    else:
        series = ""
        fmt_id, fmt_phone, fmt_key = "format('B%s', lpad(i::text, 7, '0'))", "format('+86138%s', lpad(i::text, 8, '0'))", "format('bench/B%s/1', lpad(i::text, 7, '0'))"
        src = f"generate_series(1, {n}) AS g(i)"
    epoch = "0" if backend == "sqlite" else "to_timestamp(0)"
    payload = (PAYLOAD if channel == "sms" else EMAIL_PAYLOAD).replace("'", "''")
    if channel == "email":
        fmt_addr = ("printf('b%07d@example.com', i)" if backend == "sqlite"
                    else "format('b%s@example.com', lpad(i::text, 7, '0'))")
    else:
        fmt_addr = fmt_phone
    return f"""
INSERT INTO stores (code, name, sms_signature, timezone, updated_at) VALUES ('SH-001', '人民广场店', '老街豆浆', 'Asia/Shanghai', {epoch});
{series} INSERT INTO customers (id, name, phone, store_code, tags, sms_opt_in, created_at, updated_at)
  SELECT {fmt_id}, '张三', {fmt_phone}, 'SH-001', '', {'1' if backend == 'sqlite' else 'true'}, {epoch}, {epoch} FROM {src};
{series} INSERT INTO messages (dedupe_key, campaign_id, customer_id, occurrence, channel, address, status,
    next_attempt_at, payload, created_at, updated_at)
  SELECT {fmt_key}, 'bench', {fmt_id}, '1', '{channel}', {fmt_addr}, 'queued', {epoch}, '{payload}', {epoch}, {epoch} FROM {src};
"""


def count_sent(backend, db):
    sql = "SELECT count(*) FROM messages WHERE status = 'sent'"
    if backend == "sqlite":
        out = subprocess.run([SQLITE3, str(db), sql], capture_output=True, text=True).stdout.strip()
    else:
        out = psql(db, sql)
    try:
        return int(out)
    except ValueError:
        return 0


def rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def provider_config(channel, port, concurrency, batch=False):
    if channel == "sms":
        return f"""[channels]
sms = ["aliyun"]
[providers.aliyun]
access_key_id = "LTAIbench"
access_key_secret = "bench-secret"
base_url = "http://127.0.0.1:{port}"
concurrency = {concurrency}
rate_per_second = 0
batch = {"true" if batch else "false"}
"""
    return f"""[channels]
email = ["smtp"]
[providers.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "会员中心 <club@example.cn>"
pool_size = {concurrency}
concurrency = {concurrency}
"""


def one_run(args, binary, workdir, backend, admin_url, port, concurrency, channel):
    config = workdir / "outreach.toml"
    if backend == "sqlite":
        db = workdir / "bench.db"
        remove_sqlite(db)
        url = f"sqlite://{db}"
    else:
        name = "outreach_dispatch_bench"
        psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(admin_url, f"CREATE DATABASE {name}")
        db = url = pg_url(admin_url, name)
    config.write_text(f"""
campaigns_dir = "campaigns"
templates_dir = "templates"
[database]
url = "{url}"
[http]
addr = "127.0.0.1:0"
[scheduler]
# Only dispatch is measured: the built-in jobs are not due in November.
segments = "0 3 1 1 *"
housekeeping = "30 4 1 1 *"
[dispatch]
claim_batch = {args.claim_batch}
{provider_config(channel, port, concurrency, args.aliyun_batch)}""")
    env = clean_env()
    # Create the schema, then the queued messages.
    subprocess.run([str(binary), "--now", NOW, "jobs", "run", "segments", "--format", "json"], cwd=workdir, env=env,
                   check=True, capture_output=True)
    sql = seed_sql(args.messages, backend, channel)
    if backend == "sqlite":
        subprocess.run([SQLITE3, str(db)], input=sql, text=True, check=True)
    else:
        subprocess.run(["psql", url, "-Xq", "-v", "ON_ERROR_STOP=1"], input=sql, text=True, check=True)
    start = time.monotonic()
    daemon = subprocess.Popen([str(binary), "--now", NOW, "run"], cwd=workdir, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(workdir / "daemon.err", "w"))
    peak = 0.0
    sent = 0
    deadline = start + args.timeout
    while time.monotonic() < deadline:
        peak = max(peak, rss_mib(daemon.pid))
        sent = count_sent(backend, db)
        if sent >= args.messages or daemon.poll() is not None:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - start
    peak = max(peak, rss_mib(daemon.pid))
    daemon.send_signal(signal.SIGTERM)
    _, _, rusage = os.wait4(daemon.pid, 0)
    peak = max(peak, rusage.ru_maxrss / 1024.0)
    if sent < args.messages:
        sys.exit(f"only {sent} of {args.messages} sent in {seconds:.1f} s; see {workdir / 'daemon.err'}")
    return {"seconds": round(seconds, 3), "per_second": round(args.messages / seconds, 1),
            "peak_rss_mib": round(peak, 1)}


def record(results, key, args, runs, raw):
    med = statistics.median(r["per_second"] for r in runs)
    results[key] = {
        "messages": args.messages, "median_per_second": med,
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "server_raw_capacity_per_second": raw,
        "ratio_to_raw": round(med / raw, 3) if raw else None, "runs": runs}
    print(f"{key}: {json.dumps(results[key])}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delays", default="0,50", help="server delays in ms, comma-separated")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    ap.add_argument("--claim-batch", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=256, help="[providers.aliyun] concurrency")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--email", action=argparse.BooleanOptionalAction, default=True,
                    help="also send e-mail to a local SMTP server (mailcrab)")
    ap.add_argument("--smtp-connections", type=int, default=64)
    ap.add_argument("--aliyun-batch", action="store_true",
                    help="send through SendBatchSms (up to 100 numbers per call)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "target" / "bench-dispatch")
    args = ap.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for d in ("campaigns", "templates"):
        (workdir / d).mkdir(exist_ok=True)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    admin_url = os.environ.get("OUTREACH_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    binary, fake = build()
    info = machine(backends, admin_url)
    info["loadavg_before"] = os.getloadavg()
    print(f"machine: {json.dumps(info)}", flush=True)
    have_wrk = ensure_wrk()
    results = {}
    for delay in [int(d) for d in args.delays.split(",") if d != ""]:
        port = 18180 + delay
        server = start_server(fake, "http", port, delay)
        try:
            raw = wrk_capacity(port, workdir, args.concurrency) if have_wrk else None
            for backend in backends:
                runs = [one_run(args, binary, workdir, backend, admin_url, port, args.concurrency, "sms")
                        for _ in range(args.runs)]
                batch = " batch" if args.aliyun_batch else ""
                record(results, f"sms aliyun{batch} {backend} delay={delay}ms", args, runs, raw)
        finally:
            server.kill()
            server.wait()
    if args.email:
        port = 18125
        server = start_server(fake, "smtp", port)
        try:
            for backend in backends:
                runs = [one_run(args, binary, workdir, backend, admin_url, port, args.smtp_connections, "email")
                        for _ in range(args.runs)]
                record(results, f"email smtp {backend}", args, runs, None)
        finally:
            server.kill()
            server.wait()
    info["loadavg_after"] = os.getloadavg()
    print(json.dumps({"machine": info, "results": results}))


if __name__ == "__main__":
    main()
