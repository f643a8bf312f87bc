#!/usr/bin/env python3
"""Segments benchmark: seed the demo shop into a fresh SQLite file and/or a
fresh PostgreSQL database, then time the `segments` job, report medians.

    python3 benches/segments_bench.py [--customers 1000000] [--runs 3]
        [--backend sqlite|postgres|both] [--binary PATH] [--workdir DIR] [--keep]

Per backend:

  1. `outreach demo --seed-only --customers N` into a fresh database (SQLite:
     DIR/bench.db; PostgreSQL: database `outreach_segbench`, created and dropped
     with psql through OUTREACH_BENCH_PG_URL, default
     postgres://postgres@127.0.0.1:5432/postgres; the seed ends with VACUUM
     ANALYZE of customers and orders, as every large load does). The demo has
     about 10 orders per customer.
  2. With OUTREACH_CAMPAIGNS_DIR set to an empty directory (built-in rules, no
     custom segments):
     - first full recompute (`jobs run segments --format json`), once: the
       cold run that writes every attribute row;
     - warm full recompute, --runs times;
     - the bare aggregation the job cannot beat, run by the database itself:
         SELECT count(*), sum(c) FROM (SELECT customer_id, count(*) AS c,
           sum(amount_fen), max(ordered_at) FROM orders GROUP BY customer_id) x
       with the sqlite3 CLI (/usr/bin/sqlite3, default settings) or `psql -c`,
       --runs times; the process is timed, nothing is subtracted (psql's time
       includes connecting). Reported: warm full / bare.
  3. With the repository's campaigns/ (segments.yaml with 6 custom segments):
     one full run where the custom segments are new, and one warm full run.
     At the end, once, the first full run with those segments on a copy of
     the freshly seeded database (SQLite: DIR/bench-first.db; PostgreSQL:
     `outreach_segbench_first`, made from the seeded one as a template): the
     run that writes every attribute row and every membership.
  4. Incremental, --runs times, back in the empty campaigns directory: an
     untimed warm full run (so each repetition starts from the same kind of
     state), import 10,000 new orders (generated CSV, ids B{run}-{i}, random
     customers, store SH-001, today 07:00-11:59 local), then time
     `jobs run segments --incremental --format json` at --now 12:30. The JSON
     must say "mode":"incremental", or the script stops.

Every outreach command gets `--now 2026-11-23T12:00:00+08:00` (12:30 for the
timed incremental runs) so that runs are reproducible. Figures are the wall
time of the child process (fork to wait4) and its peak resident memory from
the kernel (wait4 rusage, ru_maxrss); the job's own `seconds` is recorded as
well. On PostgreSQL the RSS is the client's only (the server's backends do the
work), and the psql figure is just psql's.

The page cache is warm throughout (the data was just written, and the bare
query runs once, untimed, before the first recompute to count the rows), so
"cold" means the run that first writes every row, not a cold cache.

The binary is copied into DIR before the runs so that a rebuild meanwhile does
not change it. Without --binary the script first runs `cargo build --release`.
The output ends with a summary table per backend and a single JSON line with
every figure (also written to DIR/segments-bench.json). OUTREACH_* variables of
the caller's environment are not passed to outreach.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import NOW, ROOT, SQLITE3, Bench, clean_env, figures, json_output, machine, pg_url, psql, remove_sqlite

NOW_INCREMENTAL = "2026-11-23T12:30:00+08:00"
NEW_ORDERS = 10_000
PG_DB = "outreach_segbench"
PG_DB_FIRST = "outreach_segbench_first"
BARE_SQL = ("SELECT count(*), sum(c) FROM (SELECT customer_id, count(*) AS c, sum(amount_fen), "
            "max(ordered_at) FROM orders GROUP BY customer_id) x")


def pg_scratch(admin_url, create):
    psql(admin_url, f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    if create:
        psql(admin_url, f'CREATE DATABASE "{PG_DB}"')
    return pg_url(admin_url, PG_DB)


def write_orders_csv(path, run, customers):
    rng = random.Random(run)
    with open(path, "w") as f:
        f.write("id,customer_id,store,amount,ordered_at,coupon_code\n")
        for i in range(1, NEW_ORDERS + 1):
            second = rng.randrange(7 * 3600, 12 * 3600)
            f.write(f"B{run}-{i},C{rng.randint(1, customers):07d},SH-001,{rng.randint(600, 9800) / 100:.2f},"
                    f"2026-11-23 {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d},\n")


def segments_run(bench, env, label, incremental=False, now=NOW):
    args = ["jobs", "run", "segments", "--format", "json"] + (["--incremental"] if incremental else [])
    s, rss, stdout = bench.outreach(args, env, now)
    report = json_output(stdout, label)
    want = "incremental" if incremental else "full"
    if report.get("mode") != want:
        sys.exit(f"{label}: expected mode {want!r}, the job said {report!r}")
    job_s = report.get("seconds")
    sample = {"seconds": round(s, 3), "rss_mib": round(rss, 1),
              "job_seconds": round(job_s, 3) if isinstance(job_s, (int, float)) else None,
              "recomputed": report.get("recomputed"), "changed": report.get("changed"),
              "transitions": report.get("transitions")}
    print(f"  {label:38} {s:7.2f} s  {rss:6.0f} MiB  (job {job_s or 0:.2f} s, "
          f"recomputed {report.get('recomputed')}, changed {report.get('changed')}, "
          f"transitions {report.get('transitions')})", flush=True)
    return sample


def bench_backend(backend, args, bench, admin_url, empty_campaigns, repo_campaigns):
    print(f"\n== {backend}", flush=True)
    if backend == "sqlite":
        db = args.workdir / "bench.db"
        remove_sqlite(db)
        url = f"sqlite://{db}"
    else:
        url = pg_scratch(admin_url, True)
    env = clean_env(OUTREACH_DATABASE__URL=url, OUTREACH_CAMPAIGNS_DIR=str(empty_campaigns))
    env_custom = dict(env, OUTREACH_CAMPAIGNS_DIR=str(repo_campaigns))
    result = {}

    s, rss, _ = bench.outreach(["demo", "--seed-only", "--customers", str(args.customers)], env)
    result["seed"] = {"seconds": round(s, 1), "rss_mib": round(rss, 1)}
    print(f"  seeded {args.customers} customers in {s:.1f} s (peak RSS {rss:.0f} MiB)", flush=True)
    # A copy of the seeded shop for the first run with custom segments.
    if backend == "sqlite":
        first_db = args.workdir / "bench-first.db"
        remove_sqlite(first_db)
        subprocess.run([SQLITE3, str(db), "PRAGMA wal_checkpoint(TRUNCATE)"], check=True, capture_output=True)
        shutil.copyfile(db, first_db)
        first_url = f"sqlite://{first_db}"
    else:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{PG_DB_FIRST}" WITH (FORCE)')
        psql(admin_url, f'CREATE DATABASE "{PG_DB_FIRST}" TEMPLATE "{PG_DB}"')
        first_url = pg_url(admin_url, PG_DB_FIRST)
    env_first_custom = dict(env_custom, OUTREACH_DATABASE__URL=first_url)

    # The bare query's command line; run once first to learn the data size.
    if backend == "sqlite":
        bare_cmd = [SQLITE3, "-readonly", str(db), BARE_SQL]
    else:
        bare_cmd = ["psql", url, "-XAtc", BARE_SQL]
    _, _, stdout = bench.run(bare_cmd)
    with_orders, orders = (int(x) for x in stdout.strip().split("|"))
    result["customers"] = args.customers
    result["customers_with_orders"] = with_orders
    result["orders"] = orders
    if backend == "sqlite":
        result["db_mib"] = round(sum(Path(str(db) + sfx).stat().st_size for sfx in ("", "-wal")
                                     if Path(str(db) + sfx).exists()) / 2**20)
    else:
        result["db_mib"] = round(int(psql(url, f"SELECT pg_database_size('{PG_DB}')")) / 2**20)
    print(f"  {orders} orders of {with_orders} customers, database {result['db_mib']} MiB", flush=True)

    result["first_full"] = segments_run(bench, env, "first full recompute (cold)")
    if result["first_full"]["recomputed"] != args.customers:
        print(f"  note: the first full run recomputed {result['first_full']['recomputed']} "
              f"customers, not {args.customers}", flush=True)

    warm = [segments_run(bench, env, f"warm full recompute {i + 1}/{args.runs}") for i in range(args.runs)]
    result["warm_full"] = figures(warm)

    bare = []
    for i in range(args.runs):
        s, rss, stdout = bench.run(bare_cmd)
        if stdout.strip() != f"{with_orders}|{orders}":
            sys.exit(f"bare query: unexpected result {stdout.strip()!r}")
        bare.append({"seconds": round(s, 3), "rss_mib": round(rss, 1)})
        print(f"  {'bare GROUP BY ' + str(i + 1) + '/' + str(args.runs):38} {s:7.2f} s  {rss:6.0f} MiB", flush=True)
    result["bare_query"] = figures(bare)
    result["bare_query"]["tool"] = "sqlite3 CLI" if backend == "sqlite" else "psql -c"
    result["warm_full_over_bare"] = round(result["warm_full"]["median_s"] / result["bare_query"]["median_s"], 2)

    custom_first = segments_run(bench, env_custom, "full +6 custom segments (new)")
    custom_warm = segments_run(bench, env_custom, "full +6 custom segments (warm)")
    result["full_custom_first"] = custom_first
    result["full_custom_warm"] = custom_warm

    incremental = []
    for i in range(1, args.runs + 1):
        segments_run(bench, env, f"(untimed full before incremental {i})")
        csv = args.workdir / f"orders-B{i}.csv"
        write_orders_csv(csv, i, args.customers)
        s, rss, stdout = bench.outreach(["import", "orders", str(csv), "--no-progress", "--format", "json"], env)
        imp = json_output(stdout, "import")
        if imp.get("rejected") or imp.get("inserted") != NEW_ORDERS:
            sys.exit(f"import of {csv}: expected {NEW_ORDERS} new orders, got {imp!r}")
        sample = segments_run(bench, env, f"incremental {i}/{args.runs} (+{NEW_ORDERS} orders)",
                              incremental=True, now=NOW_INCREMENTAL)
        sample["import_seconds"] = round(s, 3)
        sample["import_rss_mib"] = round(rss, 1)
        incremental.append(sample)
        csv.unlink()
    result["incremental"] = figures(incremental)

    result["first_full_custom"] = segments_run(bench, env_first_custom, "first full +6 custom segments (cold)")
    if backend == "sqlite":
        remove_sqlite(first_db)
    else:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{PG_DB_FIRST}" WITH (FORCE)')

    if not args.keep:
        if backend == "sqlite":
            remove_sqlite(db)
        else:
            pg_scratch(admin_url, False)
    return result


def print_summary(results, info, args):
    print(f"\nsegments job, {args.customers:,} customers, medians of {args.runs} runs "
          f"({info.get('cpu', '?')}, {info['nproc']} cores, {info.get('mem_gib', '?')} GiB, source {info.get('source_tree', '?')}):")
    for backend, r in results.items():
        bare_tool = (f"sqlite3 {info.get('sqlite3_cli', '')}" if backend == "sqlite"
                     else f"psql, PG {info.get('postgres', '').split()[0]}")
        print(f"\n  {backend}: {r['orders']:,} orders, {r['customers_with_orders']:,} customers with orders, "
              f"database {r['db_mib']:,} MiB, seeded in {r['seed']['seconds']:.0f} s")
        print(f"    {'':42} {'wall s':>8} {'job s':>8} {'peak RSS':>10}   runs (s)")
        rows = [
            ("first full recompute (cold, once)", r["first_full"], None),
            ("warm full recompute", r["warm_full"], r["warm_full"]["runs"]),
            (f"bare GROUP BY ({bare_tool})", r["bare_query"], r["bare_query"]["runs"]),
            ("full +6 custom segments (new, once)", r["full_custom_first"], None),
            ("full +6 custom segments (warm, once)", r["full_custom_warm"], None),
            ("first full +6 custom segments (cold, once)", r["first_full_custom"], None),
            (f"incremental after {NEW_ORDERS:,} new orders", r["incremental"], r["incremental"]["runs"]),
        ]
        for label, fig, runs in rows:
            secs = fig.get("median_s", fig.get("seconds"))
            job = fig.get("median_job_s", fig.get("job_seconds"))
            rss = fig.get("median_rss_mib", fig.get("rss_mib"))
            job_text = f"{job:8.2f}" if job is not None else f"{'-':>8}"
            runs_text = " ".join(f"{x['seconds']:.2f}" for x in runs) if runs else ""
            print(f"    {label:42} {secs:8.2f} {job_text} {rss:7.0f} MiB   {runs_text}")
        print(f"    {'warm full / bare':42} {r['warm_full_over_bare']:7.2f}x")
        if backend == "postgres":
            print("    (RSS on PostgreSQL is the client process only; psql time includes connecting)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--binary", type=Path, help="outreach binary to use (default: cargo build --release)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "target" / "bench-segments")
    ap.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = ap.parse_args()
    if args.customers < 1 or args.runs < 1:
        ap.error("--customers and --runs must be at least 1")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    admin_url = os.environ.get("OUTREACH_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")

    source = args.binary
    if source is None:
        build = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
        if build.returncode != 0:
            sys.exit("cargo build --release failed; pass --binary PATH to use an existing binary")
        source = ROOT / "target" / "release" / "outreach"
    binary = args.workdir / "outreach"
    shutil.copy2(source, binary)
    repo_campaigns = ROOT / "campaigns"
    if not (repo_campaigns / "segments.yaml").exists():
        sys.exit(f"{repo_campaigns / 'segments.yaml'} is missing")

    info = machine(backends, admin_url)
    info["binary"] = str(source.resolve())
    info["built_by_script"] = args.binary is None
    print(f"machine: {json.dumps(info)}", flush=True)

    bench = Bench(args.workdir, binary)
    results = {}
    empty_campaigns = Path(tempfile.mkdtemp(prefix="campaigns-empty-", dir=args.workdir))
    try:
        for backend in backends:
            results[backend] = bench_backend(backend, args, bench, admin_url, empty_campaigns, repo_campaigns)
    finally:
        shutil.rmtree(empty_campaigns, ignore_errors=True)

    print_summary(results, info, args)
    summary = {"bench": "segments", "customers": args.customers, "runs": args.runs, "now": NOW,
               "now_incremental": NOW_INCREMENTAL, "new_orders": NEW_ORDERS, "bare_sql": BARE_SQL,
               "machine": info, "results": results}
    line = json.dumps(summary, separators=(",", ":"))
    (args.workdir / "segments-bench.json").write_text(line + "\n")
    print()
    print(line)


if __name__ == "__main__":
    main()
