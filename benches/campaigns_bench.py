#!/usr/bin/env python3
"""Campaigns benchmark: plan the day's birthday campaign and a win-back that
issues about 100,000 coupons on the demo shop, on SQLite and PostgreSQL, and
report medians.

    python3 benches/campaigns_bench.py [--customers 1000000] [--runs 3]
        [--backend sqlite|postgres|both] [--binary PATH] [--workdir DIR]
        [--reseed] [--json]
        [--winback-inactive-days 30] [--winback-max-inactive-days 59]
        [--winback-where "order_count >= 2"]

Targets (1,000,000 customers): birthday planning <= 1 s; the win-back's
100,000 coupons and messages <= 5 s, on each backend.

The seeded shop is cached, because seeding 1,000,000 customers and 10,000,000
orders and the first segments run take minutes per backend:

  - SQLite: DIR/seeded-N.db, a copy of the database after
    `outreach demo --seed-only --customers N` and `jobs run segments`;
  - PostgreSQL: the database `outreach_campbench_seed_N` (created through
    OUTREACH_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres),
    the same plus VACUUM ANALYZE (the server here runs without autovacuum).

Each cache has a note next to it (DIR/seeded-N.BACKEND.json: source tree,
seeding times, row counts). It is reused while the note exists; --reseed makes
a new one. The cache is never migrated: a newer binary's migrations are
applied to each restored copy by the untimed warm-up below, so the same cache
serves binaries before and after a migration.

Every timed run starts from the same state, a fresh copy of the cache (no
messages, no coupons, no campaign runs): SQLite copies the file to DIR/run.db,
PostgreSQL runs CREATE DATABASE outreach_campbench TEMPLATE <cache>; then
the copy is flushed to disk (sync), so that its write-back does not fall into
the timed run. Then, per
repetition (--runs times, each after its own restore):

  1. `campaigns check` once, untimed (applies any pending migrations);
  2. `campaigns check`, timed: process start-up, configuration, opening the
     database and checking its migrations, loading the campaign folder and
     every template. This is the part of a run that is not planning;
  3. birthday: `jobs run campaign:birthday --format json` with the shipped
     campaigns/birthday.yaml (3 days before the birthday; about 1/365 of the
     customers are due). Restore again, check untimed, then
  4. win-back: `jobs run campaign:winback-bench --format json`, a lapsed
     campaign written by this script (20% off coupon, channels sms, wechat,
     email, template winback) whose audience on the demo data yields about
     100,000 coupons with the default --winback-* options.

Every outreach command gets `--now 2026-11-23T12:00:00+08:00` (the segments
job of the cache ran at the same time), with OUTREACH_CAMPAIGNS_DIR pointing at
DIR/campaigns (birthday.yaml and winback-bench.yaml, written by the script)
and OUTREACH_TEMPLATES_DIR at the repository's templates/. Figures: the wall
time of the child process (fork to wait4), its CPU time (user + system) and
peak resident memory (wait4 rusage; on PostgreSQL only the client's); "run s"
is the `seconds` the run reports itself, from finding the candidates to the
last page written (without start-up, loading files, or the run log's own row).
On SQLite the CPU time is nearly all the work, which makes it the steadier
figure on a busy machine; the load average before and after is recorded. The
script checks that the run wrote what it reports (messages and coupons counted
in the database), and stops otherwise.

The binary is copied into DIR first so that a rebuild meanwhile does not
change it. Without --binary the script runs `cargo build --release` (honouring
CARGO_TARGET_DIR). The output ends with a table per backend; --json also
prints one JSON line with every figure (always written to
DIR/campaigns-bench.json). OUTREACH_* variables of the caller's environment
are not passed to outreach.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import NOW, ROOT, SQLITE3, Bench, clean_env, figures, json_output, machine, pg_url, psql, remove_sqlite

PG_SCRATCH = "outreach_campbench"
WINBACK_ID = "winback-bench"
WINBACK_YAML = """\
# The benchmark's win-back: a lapse window sized to about 100,000 coupons on
# the demo shop of 1,000,000 customers.
id: {id}
name: 沉睡唤醒（基准）
schedule: "30 10 * * *"
trigger:
  type: lapsed
  inactive_days: {inactive}
  max_inactive_days: {max_inactive}
audience:
  where: {where}
coupon:
  kind: percent_off
  value: 20
  valid_days: 14
  code_prefix: BACK
channels: [sms, wechat, email]
template: winback
priority: 5
"""


def release_binary():
    """Build the release binary and return its path (CARGO_TARGET_DIR or ROOT/target)."""
    build = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    if build.returncode != 0:
        sys.exit("cargo build --release failed; pass --binary PATH to use an existing binary")
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "outreach"


def source_tree():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class Backend:
    """The cache and the scratch copy of one backend."""

    def __init__(self, name, args, admin_url):
        self.name = name
        self.args = args
        self.admin_url = admin_url
        self.note = args.workdir / f"seeded-{args.customers}.{name}.json"
        if name == "sqlite":
            self.cache = args.workdir / f"seeded-{args.customers}.db"
            self.scratch = args.workdir / "run.db"
            self.url = f"sqlite://{self.scratch}"
        else:
            self.cache = f"outreach_campbench_seed_{args.customers}"
            self.url = pg_url(admin_url, PG_SCRATCH)

    def sql(self, query):
        """One value from the scratch database."""
        if self.name == "sqlite":
            out = subprocess.run([SQLITE3, "-readonly", str(self.scratch), query], check=True,
                                 capture_output=True, text=True).stdout.strip()
        else:
            out = psql(self.url, query)
        return out

    def cached(self):
        if not self.note.exists():
            return None
        if self.name == "sqlite":
            present = self.cache.exists()
        else:
            present = psql(self.admin_url, f"SELECT count(*) FROM pg_database WHERE datname = '{self.cache}'") == "1"
        return json.loads(self.note.read_text()) if present else None

    def drop_cache(self):
        self.note.unlink(missing_ok=True)
        if self.name == "sqlite":
            remove_sqlite(self.cache)
        else:
            psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.cache}" WITH (FORCE)')

    def seed(self, bench, env_for):
        """Seed the demo shop and run the segments job into a new cache."""
        self.drop_cache()
        note = {"customers": self.args.customers, "now": NOW, "source_tree": source_tree()}
        if self.name == "sqlite":
            building = self.args.workdir / "seeding.db"
            remove_sqlite(building)
            url = f"sqlite://{building}"
        else:
            building = self.cache
            psql(self.admin_url, f'CREATE DATABASE "{building}"')
            url = pg_url(self.admin_url, building)
        env = env_for(url)
        s, _, _ = bench.outreach(["demo", "--seed-only", "--customers", str(self.args.customers)], env)
        note["seed_seconds"] = round(s, 1)
        print(f"  seeded {self.args.customers} customers in {s:.1f} s", flush=True)
        if self.name == "postgres":
            psql(url, "ANALYZE")
        s, _, stdout = bench.outreach(["jobs", "run", "segments", "--format", "json"], env)
        report = json_output(stdout, "segments job")
        note["segments_seconds"] = round(s, 1)
        print(f"  segments job in {s:.1f} s (recomputed {report.get('recomputed')})", flush=True)
        if self.name == "sqlite":
            subprocess.run([SQLITE3, str(building), "PRAGMA wal_checkpoint(TRUNCATE)"], check=True,
                           capture_output=True)
            for suffix in ("-wal", "-shm"):
                Path(str(building) + suffix).unlink(missing_ok=True)
            building.rename(self.cache)
            note["db_mib"] = round(self.cache.stat().st_size / 2**20)
        else:
            t = time.monotonic()
            psql(url, "VACUUM ANALYZE")
            note["vacuum_analyze_seconds"] = round(time.monotonic() - t, 1)
            note["db_mib"] = round(int(psql(url, f"SELECT pg_database_size('{building}')")) / 2**20)
        self.note.write_text(json.dumps(note) + "\n")
        return note

    def restore(self):
        """A fresh copy of the cache as the scratch database; returns seconds taken."""
        t = time.monotonic()
        if self.name == "sqlite":
            remove_sqlite(self.scratch)
            shutil.copyfile(self.cache, self.scratch)
        else:
            psql(self.admin_url, f'DROP DATABASE IF EXISTS "{PG_SCRATCH}" WITH (FORCE)')
            psql(self.admin_url, f'CREATE DATABASE "{PG_SCRATCH}" TEMPLATE "{self.cache}" STRATEGY FILE_COPY')
        # The copy leaves gigabytes of dirty pages; written back during the
        # timed run they took about a second of it on SQLite.
        os.sync()
        return time.monotonic() - t

    def drop_scratch(self):
        if self.name == "sqlite":
            remove_sqlite(self.scratch)
        else:
            psql(self.admin_url, f'DROP DATABASE IF EXISTS "{PG_SCRATCH}" WITH (FORCE)')


def campaign_run(bench, backend, env, campaign_id, label):
    """Time `jobs run campaign:ID` and check what it wrote against the database."""
    s, rss, stdout = bench.outreach(["jobs", "run", f"campaign:{campaign_id}", "--format", "json"], env)
    report = json_output(stdout, label)
    messages = int(backend.sql(f"SELECT count(*) FROM messages WHERE campaign_id = '{campaign_id}'"))
    coupons = int(backend.sql(f"SELECT count(*) FROM coupons WHERE campaign_id = '{campaign_id}'"))
    if (report.get("written") != report.get("candidates") or messages != report.get("written")
            or coupons != report.get("coupons")):
        sys.exit(f"{label}: the run reported {report!r}, the database has {messages} messages "
                 f"and {coupons} coupons")
    suppressed = sum(report.get("suppressed", {}).values())
    sample = {"seconds": round(s, 3), "rss_mib": round(rss, 1), "job_seconds": round(report["seconds"], 3),
              "cpu_seconds": round(bench.last_cpu_seconds, 3),
              "candidates": report["candidates"], "queued": report["queued"], "deferred": report["deferred"],
              "suppressed": report.get("suppressed", {}), "coupons": report["coupons"], "messages": messages}
    print(f"  {label:30} {s:7.2f} s  {rss:6.0f} MiB  (run {report['seconds']:.2f} s, "
          f"CPU {bench.last_cpu_seconds:.2f} s: "
          f"{report['candidates']} candidates, {report['queued'] + report['deferred']} planned, "
          f"{suppressed} suppressed, {report['coupons']} coupons)", flush=True)
    return sample


def startup_run(bench, env, label):
    s, rss, _ = bench.outreach(["campaigns", "check", "--format", "json"], env)
    print(f"  {label:30} {s:7.2f} s  {rss:6.0f} MiB", flush=True)
    return {"seconds": round(s, 3), "rss_mib": round(rss, 1)}


def bench_backend(backend, args, bench, campaigns_dir):
    print(f"\n== {backend.name}", flush=True)

    def env_for(url):
        return clean_env(OUTREACH_DATABASE__URL=url, OUTREACH_CAMPAIGNS_DIR=str(campaigns_dir),
                         OUTREACH_TEMPLATES_DIR=str(ROOT / "templates"))

    note = None if args.reseed else backend.cached()
    if note is None:
        note = backend.seed(bench, env_for)
    else:
        print(f"  cached seed: {json.dumps(note)}", flush=True)
    env = env_for(backend.url)
    result = {"cache": note, "restore_seconds": [], "startup": [], "birthday": [], "winback": []}

    for i in range(1, args.runs + 1):
        result["restore_seconds"].append(round(backend.restore(), 1))
        startup_run(bench, env, "(untimed check: migrations)")
        result["startup"].append(startup_run(bench, env, f"start-up (campaigns check) {i}/{args.runs}"))
        result["birthday"].append(campaign_run(bench, backend, env, "birthday", f"birthday {i}/{args.runs}"))
        result["restore_seconds"].append(round(backend.restore(), 1))
        startup_run(bench, env, "(untimed check: migrations)")
        result["winback"].append(campaign_run(bench, backend, env, WINBACK_ID, f"win-back {i}/{args.runs}"))

    result["orders"] = int(backend.sql("SELECT count(*) FROM orders"))
    backend.drop_scratch()
    for key in ("birthday", "winback"):
        cpu = statistics.median(x["cpu_seconds"] for x in result[key])
        result[key] = figures(result[key])
        result[key]["median_cpu_s"] = round(cpu, 3)
    result["startup"] = figures(result["startup"])
    return result


def print_summary(results, info, args):
    print(f"\ncampaign runs, {args.customers:,} customers, medians of {args.runs} runs "
          f"({info.get('cpu', '?')}, {info['nproc']} cores, {info.get('mem_gib', '?')} GiB, "
          f"source {info.get('source_tree', '?')}, load average {info['loadavg_before'][0]:.1f} before, "
          f"{info['loadavg_after'][0]:.1f} after):")
    print(f"  win-back: {args.winback_inactive_days}-{args.winback_max_inactive_days} days without an order, "
          f"where {args.winback_where!r}")
    for name, r in results.items():
        b, w = r["birthday"], r["winback"]
        print(f"\n  {name}: {r['orders']:,} orders, database {r['cache'].get('db_mib', '?'):,} MiB")
        print(f"    {'':44} {'wall s':>7} {'run s':>7} {'CPU s':>7} {'peak RSS':>9}   runs: wall s (run s)")
        rows = [("start-up (campaigns check)", r["startup"]),
                (f"birthday: {b['runs'][0]['candidates']:,} due, {b['runs'][0]['coupons']:,} coupons", b),
                (f"win-back: {w['runs'][0]['candidates']:,} due, {w['runs'][0]['coupons']:,} coupons", w)]
        for label, fig in rows:
            job = fig.get("median_job_s")
            cpu = fig.get("median_cpu_s")
            job_text = f"{job:7.2f}" if job is not None else f"{'-':>7}"
            cpu_text = f"{cpu:7.2f}" if cpu is not None else f"{'-':>7}"
            runs_text = " ".join(f"{x['seconds']:.2f}" + (f" ({x['job_seconds']:.2f})" if "job_seconds" in x else "")
                                 for x in fig["runs"])
            print(f"    {label:44} {fig['median_s']:7.2f} {job_text} {cpu_text} {fig['median_rss_mib']:5.0f} MiB   "
                  f"{runs_text}")
        if name == "postgres":
            print("    (RSS and CPU on PostgreSQL are the client process's only; the server does most of the work)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--binary", type=Path, help="outreach binary to use (default: cargo build --release)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "target" / "bench-campaigns")
    ap.add_argument("--reseed", action="store_true", help="seed the cached databases again")
    ap.add_argument("--json", action="store_true", help="print every figure as one JSON line at the end")
    ap.add_argument("--winback-inactive-days", type=int, default=30)
    ap.add_argument("--winback-max-inactive-days", type=int, default=59)
    ap.add_argument("--winback-where", default="order_count >= 2")
    args = ap.parse_args()
    if args.customers < 1 or args.runs < 1:
        ap.error("--customers and --runs must be at least 1")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    admin_url = os.environ.get("OUTREACH_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")

    source = args.binary if args.binary is not None else release_binary()
    binary = args.workdir / "outreach"
    shutil.copy2(source, binary)

    campaigns_dir = args.workdir / "campaigns"
    shutil.rmtree(campaigns_dir, ignore_errors=True)
    campaigns_dir.mkdir()
    shutil.copy2(ROOT / "campaigns" / "birthday.yaml", campaigns_dir / "birthday.yaml")
    (campaigns_dir / f"{WINBACK_ID}.yaml").write_text(WINBACK_YAML.format(
        id=WINBACK_ID, inactive=args.winback_inactive_days, max_inactive=args.winback_max_inactive_days,
        where=json.dumps(args.winback_where, ensure_ascii=False)))

    info = machine(backends, admin_url)
    info["binary"] = str(source.resolve())
    info["built_by_script"] = args.binary is None
    info["loadavg_before"] = os.getloadavg()
    print(f"machine: {json.dumps(info)}", flush=True)

    bench = Bench(args.workdir, binary)
    results = {}
    for name in backends:
        results[name] = bench_backend(Backend(name, args, admin_url), args, bench, campaigns_dir)
    info["loadavg_after"] = os.getloadavg()

    print_summary(results, info, args)
    summary = {"bench": "campaigns", "customers": args.customers, "runs": args.runs, "now": NOW,
               "winback": {"inactive_days": args.winback_inactive_days,
                           "max_inactive_days": args.winback_max_inactive_days, "where": args.winback_where},
               "machine": info, "results": results}
    line = json.dumps(summary, separators=(",", ":"), ensure_ascii=False)
    (args.workdir / "campaigns-bench.json").write_text(line + "\n")
    if args.json:
        print()
        print(line)


if __name__ == "__main__":
    main()
