#!/usr/bin/env python3
"""Import benchmark: generate the demo shop as files, import them into a fresh
SQLite file and a fresh PostgreSQL database several times, report medians.

    python3 benches/import_bench.py [--customers 1000000] [--runs 3] [--backends sqlite,postgres]

Generates N customers and about 10*N orders once (under target/bench-import/),
then for each run imports customers.csv then orders.csv with the release
binary, each in its own process, and reads the process's peak resident memory
from the kernel (wait4 rusage). Throughput = rows of both files / wall time of
both imports. PostgreSQL uses OUTREACH_BENCH_PG_URL (default
postgres://postgres@127.0.0.1:5432/postgres) to create and drop a scratch database.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = "2026-11-23T12:00:00+08:00"


def run_with_rusage(cmd, env):
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.chdir(ROOT)
        devnull = os.open(os.devnull, os.O_WRONLY)
        out = os.open(os.path.join(WORK, "last-summary.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(devnull, 2)
        os.execvpe(cmd[0], cmd, env)
    _, status, rusage = os.wait4(pid, 0)
    seconds = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed with {os.waitstatus_to_exitcode(status)}")
    with open(os.path.join(WORK, "last-summary.json")) as f:
        summary = json.loads(f.read())
    return seconds, rusage.ru_maxrss / 1024.0, summary


def pg_scratch(admin_url, name, create):
    parts = urlsplit(admin_url)
    subprocess.run(["psql", admin_url, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=True,
                   stdout=subprocess.DEVNULL)
    if create:
        subprocess.run(["psql", admin_url, "-qc", f'CREATE DATABASE "{name}"'], check=True, stdout=subprocess.DEVNULL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgres")
    args = ap.parse_args()
    WORK = os.path.join(ROOT, "target", "bench-import")
    os.makedirs(WORK, exist_ok=True)

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "outreach")
    data = os.path.join(WORK, f"shop-{args.customers}")
    if not os.path.exists(os.path.join(data, "orders.csv")):
        print(f"generating {args.customers} customers into {data} ...", flush=True)
        subprocess.run([binary, "demo", "--customers", str(args.customers), "--now", NOW, "--export", data],
                       check=True, cwd=ROOT)
    sizes = {k: os.path.getsize(os.path.join(data, f"{k}.csv")) for k in ("customers", "orders")}
    print(f"files: customers.csv {sizes['customers'] / 2**20:.0f} MiB, orders.csv {sizes['orders'] / 2**20:.0f} MiB")

    admin = os.environ.get("OUTREACH_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    results = {}
    for backend in args.backends.split(","):
        runs = []
        for i in range(args.runs):
            if backend == "sqlite":
                db = os.path.join(WORK, "bench.db")
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(db + suffix):
                        os.remove(db + suffix)
                url = f"sqlite://{db}"
            else:
                url = pg_scratch(admin, "outreach_bench", True)
            env = dict(os.environ, OUTREACH_DATABASE__URL=url, OUTREACH_LOG="warn")
            total_rows, total_s, peak = 0, 0.0, 0.0
            detail = {}
            for kind in ("customers", "orders"):
                cmd = [binary, "--config", os.path.join(data, "stores.toml"), "import", kind,
                       os.path.join(data, f"{kind}.csv"), "--no-progress", "--format", "json"]
                s, rss, summary = run_with_rusage(cmd, env)
                if summary["rejected"]:
                    sys.exit(f"{kind}: {summary['rejected']} rows rejected")
                total_rows += summary["rows"]
                total_s += s
                peak = max(peak, rss)
                detail[kind] = (summary["rows"], s, rss)
            rate = total_rows / total_s
            runs.append((rate, total_s, peak, detail))
            print(f"{backend} run {i + 1}: {total_rows} rows in {total_s:.1f} s = {rate:,.0f} rows/s, peak RSS {peak:.0f} MiB "
                  + ", ".join(f"{k} {r} rows {s:.1f} s {m:.0f} MiB" for k, (r, s, m) in detail.items()), flush=True)
            if backend == "postgres":
                pg_scratch(admin, "outreach_bench", False)
        results[backend] = runs

    print("\nmedians (%d runs, %s, %d cores):" % (args.runs, os.uname().machine, os.cpu_count()))
    for backend, runs in results.items():
        print(f"  {backend:9} {statistics.median(r[0] for r in runs):>10,.0f} rows/s   "
              f"{statistics.median(r[1] for r in runs):6.1f} s   peak RSS {statistics.median(r[2] for r in runs):.0f} MiB")


if __name__ == "__main__":
    main()
