#!/usr/bin/env python3
"""Send-log queries on a send log of 10,000,000 messages: `outreach logs`
(a whole process: start, open the database, one page) and `GET /api/messages`
against a running `outreach run`, with no filter, each filter, a rare
status, combinations, `--since 1h`, and page 100 through the cursor.

    python3 benches/sendlog_bench.py --rows 10000000 --runs 5 --backend both [--page]

The database is made once per backend and kept (`target/bench-sendlog/
sendlog-N.db`, PostgreSQL database `outreach_sendlog_N`; `--reseed` makes
them again): the schema by the binary, then 1,000,000 customers and N
messages by one bulk SQL statement each (a recursive CTE on SQLite,
generate_series on PostgreSQL) with the secondary indexes dropped and
created again afterwards. The mix: eight campaigns written in runs of 200
messages sharing one instant, a year of them up to --now; 60% SMS, 25%
WeChat, 15% e-mail; delivered 55%, sent 15%, suppressed 25% (no_consent,
capped, no_address, opted_out), failed 4%, dead 0.3%, and a few hundred
queued, deferred and sending at the end.

Every query is run once to warm up, then --runs times; the medians are
printed with the target (200 ms). On PostgreSQL `outreach logs` is also
timed with `sslmode=disable`: over TCP sqlx negotiates TLS by default, and
on loopback the handshakes are most of a short command's time. `--page` also times `GET /` (the ops
page); add URLs to HTTP_QUERIES to time more.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchlib import ROOT, SQLITE3, clean_env, machine, pg_url, psql

NOW = "2026-11-24T12:00:00+08:00"
TARGET_MS = 200
CUSTOMERS = 1_000_000
RUN_SIZE = 200  # messages per campaign run (one created_at)

# (campaign, weight in 1000) — a run's campaign is picked by its number.
CAMPAIGNS = [("winback", 300), ("birthday", 200), ("member-day", 250), ("second-visit", 100),
             ("at-risk", 100), ("xmas-2025", 30), ("new-menu", 15), ("spring-festival", 5)]

# (label, `outreach logs` arguments, `GET /api/messages` query)
QUERIES = [
    ("no filter", [], ""),
    ("campaign", ["--campaign", "winback"], "campaign=winback"),
    ("small campaign", ["--campaign", "spring-festival"], "campaign=spring-festival"),
    ("channel", ["--channel", "email"], "channel=email"),
    ("status", ["--status", "suppressed"], "status=suppressed"),
    ("status failed", ["--status", "failed"], "status=failed"),
    ("rare status (dead)", ["--status", "dead"], "status=dead"),
    ("rarest status (sending)", ["--status", "sending"], "status=sending"),
    ("customer", ["--customer", "{customer}"], "customer={customer}"),
    ("since 1h", ["--since", "1h"], "since=1h"),
    ("since 30d", ["--since", "30d"], "since=30d"),
    ("until 180d", ["--until", "180d"], "until=180d"),
    ("campaign + status dead", ["--campaign", "winback", "--status", "dead"], "campaign=winback&status=dead"),
    ("campaign + channel + since 7d", ["--campaign", "birthday", "--channel", "wechat", "--since", "7d"],
     "campaign=birthday&channel=wechat&since=7d"),
    ("status suppressed + channel", ["--status", "suppressed", "--channel", "sms"], "status=suppressed&channel=sms"),
    ("limit 1000", ["--limit", "1000"], "limit=1000"),
]

# Multipliers of the seed's hashes (xxHash primes), by purpose.
PRIMES = {7: 2654435761, 13: 2246822519, 101: 3266489917, 211: 668265263}


def customer_of(i):
    """The customer of message i, as seed_sql computes it."""
    h = lambda salt: ((i + 1) * PRIMES[salt] % 4294967296) // 65536
    return f"C{(h(13) * 65536 + h(101)) % CUSTOMERS + 1:07d}"


# Extra pages timed with --page (the ops page, once it exists).
# The ops page: the send log unfiltered, filtered and paged, in English, one
# message with its attempts, the campaign cards and the job runs.
PAGE_URLS = ["/", "/?lang=en", "/?campaign=winback&status=dead", "/?status=suppressed&channel=sms",
             "/?customer={customer}", "/?since=30d", "/?cursor={cursor}", "/messages/{message}",
             "/campaigns", "/jobs"]


def build():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    r = subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "outreach"], cwd=ROOT)
    if r.returncode != 0:
        sys.exit("cargo build --release failed")
    return target / "outreach"


def seed_sql(backend, rows, now):
    """Customers and messages in two bulk statements (plus the stores)."""
    end = int(now.timestamp() * 1000)
    runs = max(1, rows // RUN_SIZE)
    span = 365 * 86_400_000
    step = span // runs
    start = end - runs * step
    bounds, acc = [], 0
    for name, w in CAMPAIGNS:
        acc += w
        bounds.append((acc, name))
    sqlite = backend == "sqlite"
    # Deterministic hashes in [0, 65536): the high bits of a 32-bit
    # multiplicative hash, one multiplier (an xxHash prime) per purpose.
    h = lambda x, salt: f"(((({x}) + 1) * {PRIMES[salt]} % 4294967296) / 65536)"
    run = f"(i / {RUN_SIZE})" if sqlite else f"(i / {RUN_SIZE})"
    camp = "CASE " + " ".join(f"WHEN {h(run, 7)} % 1000 < {b} THEN '{n}'" for b, n in bounds) + " END"
    cust_n = f"(({h('i', 13)} * 65536 + {h('i', 101)}) % {CUSTOMERS} + 1)"
    if sqlite:
        cust = f"printf('C%07d', {cust_n})"
        phone = f"printf('+86138%08d', {cust_n})"
        email = f"printf('c%07d@163.com', {cust_n})"
        openid = f"printf('oWx_%024d', {cust_n})"
        key = "printf('b%010d', i)"
        ms = lambda e: e
        series = f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows - 1})"
        src = "n"
        cseries = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {CUSTOMERS})"
        csrc, cid, cphone, yes, epoch = "n", "printf('C%07d', i)", "printf('+86138%08d', i)", "1", str(end)
    else:
        cust = f"'C' || lpad({cust_n}::text, 7, '0')"
        phone = f"'+86138' || lpad({cust_n}::text, 8, '0')"
        email = f"'c' || lpad({cust_n}::text, 7, '0') || '@163.com'"
        openid = f"'oWx_' || lpad({cust_n}::text, 24, '0')"
        key = "'b' || lpad(i::text, 10, '0')"
        ms = lambda e: f"to_timestamp(({e})::bigint / 1000.0)"
        series = ""
        src = f"generate_series(0, {rows - 1}::bigint) AS g(i)"
        cseries = ""
        csrc = f"generate_series(1, {CUSTOMERS}) AS g(i)"
        cid, cphone = "'C' || lpad(i::text, 7, '0')", "'+86138' || lpad(i::text, 8, '0')"
        yes, epoch = "true", f"to_timestamp({end} / 1000.0)"
    # Per message: a bucket in [0, 1000) picks channel and status.
    b = f"({h('i', 101)} % 1000)"
    tail = rows - 600  # the last 600 messages wait or are being sent
    status = (f"CASE WHEN i >= {tail} THEN (CASE WHEN i % 3 = 0 THEN 'queued' WHEN i % 3 = 1 THEN 'deferred' "
              f"ELSE 'sending' END) WHEN {b} < 550 THEN 'delivered' WHEN {b} < 700 THEN 'sent' "
              f"WHEN {b} < 950 THEN 'suppressed' WHEN {b} < 990 THEN 'failed' WHEN {b} < 993 THEN 'dead' "
              f"ELSE 'delivered' END")
    reason = (f"CASE WHEN i >= {tail} THEN (CASE WHEN i % 3 = 1 THEN 'send_window' END) "
              f"WHEN {b} BETWEEN 700 AND 949 THEN (CASE WHEN {b} < 820 THEN 'no_consent' WHEN {b} < 900 "
              f"THEN 'capped' WHEN {b} < 930 THEN 'no_address' ELSE 'opted_out' END) "
              f"WHEN {b} BETWEEN 950 AND 989 THEN 'isv.MOBILE_NUMBER_ILLEGAL' "
              f"WHEN {b} BETWEEN 990 AND 992 THEN 'isp.SYSTEM_ERROR' END")
    ch = f"({h('i', 211)} % 100)"
    channel = (f"CASE WHEN {b} BETWEEN 900 AND 929 THEN NULL WHEN {ch} < 60 THEN 'sms' "
               f"WHEN {ch} < 85 THEN 'wechat' ELSE 'email' END")
    address = (f"CASE WHEN {b} BETWEEN 900 AND 929 THEN NULL WHEN {ch} < 60 THEN {phone} "
               f"WHEN {ch} < 85 THEN {openid} ELSE {email} END")
    provider = (f"CASE WHEN {b} >= 700 AND {b} < 950 THEN NULL WHEN {ch} < 60 THEN 'aliyun' "
                f"WHEN {ch} < 85 THEN 'wechat' ELSE 'smtp' END")
    created = f"({start} + {run} * {step})"
    sent = f"CASE WHEN {b} < 700 OR {b} >= 993 THEN {created} + 4000 END"
    nxt = f"CASE WHEN i >= {tail} AND i % 3 < 2 THEN {end} + 3600000 END"
    lease = f"CASE WHEN i >= {tail} AND i % 3 = 2 THEN {end} + 86400000 END"
    attempts = f"CASE WHEN {b} < 700 OR {b} >= 993 THEN 1 WHEN {b} >= 950 AND {b} < 990 THEN 1 WHEN {b} >= 990 THEN 8 ELSE 0 END"
    pmid = f"CASE WHEN {b} < 700 OR {b} >= 993 THEN 'bench-' || i END"
    payload = ("'{\"channel\":\"sms\",\"kind\":\"marketing\",\"text\":"
               "\"张三，生日快乐！送您10元券，14天内有效。拒收请回复R\"}'")
    if not sqlite:
        payload += "::jsonb"
    stores = ", ".join(f"('SH-00{k}', '店{k}', '早安包子铺', 'Asia/Shanghai', {epoch})" for k in range(1, 6))
    return f"""
INSERT INTO stores (code, name, sms_signature, timezone, updated_at) VALUES {stores};
{cseries} INSERT INTO customers (id, name, phone, store_code, tags, sms_opt_in, created_at, updated_at)
  SELECT {cid}, '张三', {cphone}, 'SH-00' || (i % 5 + 1), '', {yes}, {epoch}, {epoch} FROM {csrc};
{series} INSERT INTO messages (dedupe_key, campaign_id, customer_id, occurrence, channel, provider, address,
    status, reason, attempts, next_attempt_at, lease_until, provider_message_id, payload, created_at, sent_at,
    updated_at)
  SELECT {key}, {camp}, {cust}, 'o' || {run}, {channel}, {provider}, {address}, {status}, {reason},
    {attempts}, {ms(nxt)}, {ms(lease)}, {pmid}, {payload}, {ms(created)}, {ms(sent)}, {ms(created)}
  FROM {src};
"""


def secondary_indexes(backend, db):
    """(name, CREATE statement) of the messages table's droppable indexes."""
    if backend == "sqlite":
        out = subprocess.run([SQLITE3, "-separator", "\t", str(db),
                              "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                              "AND tbl_name = 'messages' AND sql IS NOT NULL"],
                             capture_output=True, text=True, check=True).stdout
    else:
        out = psql(db, "SELECT indexname || E'\\t' || indexdef FROM pg_indexes WHERE tablename = 'messages' "
                       "AND indexname NOT IN ('messages_pkey', 'messages_dedupe_key_key')")
    return [tuple(line.split("\t", 1)) for line in out.strip().splitlines() if line]


def sql_exec(backend, db, sql):
    if backend == "sqlite":
        subprocess.run([SQLITE3, str(db)], input=sql, text=True, check=True)
    else:
        subprocess.run(["psql", db, "-Xq", "-v", "ON_ERROR_STOP=1"], input=sql, text=True, check=True)


def seed(backend, db, binary, workdir, env, rows, now):
    t0 = time.monotonic()
    # The schema, as the binary makes it.
    subprocess.run([str(binary), "--now", NOW, "logs", "--limit", "1"], cwd=workdir, env=env, check=True,
                   capture_output=True)
    indexes = secondary_indexes(backend, db)
    drop = "".join(f"DROP INDEX {name};\n" for name, _ in indexes)
    create = "".join(f"{sql};\n" for _, sql in indexes)
    if backend == "sqlite":
        head = "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000;\nBEGIN;\n"
        sql_exec(backend, db, head + drop + seed_sql(backend, rows, now) + create + "COMMIT;\n")
    else:
        sql_exec(backend, db, "SET maintenance_work_mem = '1GB';\nBEGIN;\n" + drop + seed_sql(backend, rows, now)
                 + create + "COMMIT;\nVACUUM ANALYZE messages;\nVACUUM ANALYZE customers;\n")
    print(f"{backend}: seeded {rows:,} messages in {time.monotonic() - t0:.0f} s", flush=True)


def count_messages(backend, db):
    sql = "SELECT count(*) FROM messages"
    if backend == "sqlite":
        out = subprocess.run([SQLITE3, str(db), sql], capture_output=True, text=True).stdout.strip()
    else:
        try:
            out = psql(db, sql)
        except subprocess.CalledProcessError:
            return 0
    try:
        return int(out)
    except ValueError:
        return 0


def time_cli(binary, workdir, env, args, runs):
    cmd = [str(binary), "--now", NOW, "logs", "--format", "json", *args]
    samples = []
    rows = 0
    for k in range(runs + 1):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
        dt = (time.perf_counter() - t0) * 1000
        if r.returncode != 0:
            sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stderr}")
        rows = len(r.stdout.splitlines())
        if k > 0:
            samples.append(dt)
    return statistics.median(samples), samples, rows


def http_get(url):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as res:
        body = res.read()
    return (time.perf_counter() - t0) * 1000, body


def time_http(url, runs):
    samples = []
    body = b""
    for k in range(runs + 1):
        dt, body = http_get(url)
        if k > 0:
            samples.append(dt)
    return statistics.median(samples), samples, body


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page_100_cursor(base, limit=50):
    """Walk pages 1–99 through the API; the cursor that reads page 100."""
    cursor = None
    for _ in range(99):
        q = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        _, body = http_get(f"{base}/api/messages?{q}")
        cursor = json.loads(body)["next"]
    return cursor


def bench_backend(args, binary, workdir, backend, admin_url, now, report):
    if backend == "sqlite":
        db = workdir / f"sendlog-{args.rows}.db"
        url = f"sqlite://{db}"
        if args.reseed:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    else:
        name = f"outreach_sendlog_{args.rows}"
        db = url = pg_url(admin_url, name)
        exists = psql(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"
        if args.reseed or not exists:
            psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            psql(admin_url, f"CREATE DATABASE {name}")
    port = free_port()
    (workdir / "outreach.toml").write_text(f"""
campaigns_dir = "campaigns"
templates_dir = "templates"
data_dir = "data"
[database]
url = "{url}"
[http]
addr = "127.0.0.1:{port}"
""")
    env = clean_env()
    if count_messages(backend, db) != args.rows:
        seed(backend, db, binary, workdir, env, args.rows, now)
    n = count_messages(backend, db)
    if n != args.rows:
        sys.exit(f"{backend}: expected {args.rows} messages, found {n}")
    results = {}
    print(f"\n{backend}: {n:,} messages; medians of {args.runs} (after one warm-up run), target {TARGET_MS} ms",
          flush=True)
    no_tls = f" {'logs, no TLS':>15}" if backend == "postgres" else ""
    print(f"{'query':<34} {'logs (process)':>15}{no_tls} {'GET /api/messages':>18} {'rows':>5}", flush=True)
    daemon = subprocess.Popen([str(binary), "--now", NOW, "run"], cwd=workdir, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(workdir / f"daemon-{backend}.err", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                http_get(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or daemon.poll() is not None:
                    sys.exit(f"the daemon did not start; see {workdir / f'daemon-{backend}.err'}")
                time.sleep(0.2)
        cursor = page_100_cursor(base)
        customer = customer_of(args.rows // 2)
        queries = [(label, [a.format(customer=customer) for a in cli], q.format(customer=customer))
                   for label, cli, q in QUERIES]
        queries.append(("page 100 (cursor)", ["--before", cursor], f"cursor={cursor}"))
        # PostgreSQL over TCP negotiates TLS by default; on loopback the
        # handshakes are most of a short command's time, so it is also timed without.
        plain = dict(env, OUTREACH_DATABASE__URL=f"{url}?sslmode=disable") if backend == "postgres" else None
        for label, cli_args, query in queries:
            cli_ms, cli_runs, cli_rows = time_cli(binary, workdir, env, cli_args, args.runs)
            if plain:
                plain_ms, plain_runs, _ = time_cli(binary, workdir, plain, cli_args, args.runs)
            api_ms, api_runs, body = time_http(f"{base}/api/messages?{query}", args.runs)
            api_rows = len(json.loads(body)["messages"])
            if api_rows != cli_rows:
                sys.exit(f"{label}: the CLI printed {cli_rows} rows, the API answered {api_rows}")
            if max(plain_ms if plain else cli_ms, api_ms) >= TARGET_MS:
                flag = "  over target"
            elif cli_ms >= TARGET_MS:
                flag = "  over target with TLS"
            else:
                flag = ""
            extra = f" {plain_ms:>12.1f} ms" if plain else ""
            print(f"{label:<34} {cli_ms:>12.1f} ms{extra} {api_ms:>15.1f} ms {api_rows:>5}{flag}", flush=True)
            results[label] = {"cli_ms": round(cli_ms, 1), "api_ms": round(api_ms, 1), "rows": api_rows,
                              "cli_runs": [round(x, 1) for x in cli_runs],
                              "api_runs": [round(x, 1) for x in api_runs]}
            if plain:
                results[label]["cli_no_tls_ms"] = round(plain_ms, 1)
                results[label]["cli_no_tls_runs"] = [round(x, 1) for x in plain_runs]
        if args.page:
            message = json.loads(http_get(f"{base}/api/messages?limit=1")[1])["messages"][0]["id"]
            for path in PAGE_URLS:
                path = path.format(customer=customer, cursor=urllib.parse.quote(cursor), message=message)
                # The first request is shown too: /campaigns computes its
                # figures then (later requests get them from a cache for 30 s).
                cold, _ = http_get(f"{base}{path}")
                ms, runs, _ = time_http(f"{base}{path}", args.runs)
                print(f"{'GET ' + path[:50]:<54} first {cold:>7.1f} ms, median {ms:>6.1f} ms", flush=True)
                results[f"GET {path}"] = {"first_ms": round(cold, 1), "api_ms": round(ms, 1),
                                          "api_runs": [round(x, 1) for x in runs]}
                if b'http-equiv="refresh"' in http_get(f"{base}{path}")[1]:
                    # Figures still being computed: wait for them, then time
                    # the page that shows them.
                    t0 = time.monotonic()
                    while b'http-equiv="refresh"' in http_get(f"{base}{path}")[1]:
                        if time.monotonic() - t0 > 300:
                            sys.exit(f"{path}: the figures did not appear within 300 s")
                        time.sleep(0.5)
                    ready = time.monotonic() - t0
                    ms, runs, _ = time_http(f"{base}{path}", args.runs)
                    print(f"{'  with its figures':<54} ready after {ready:>5.1f} s, median {ms:>6.1f} ms",
                          flush=True)
                    results[f"GET {path} with figures"] = {"ready_after_s": round(ready, 1), "api_ms": round(ms, 1),
                                                           "api_runs": [round(x, 1) for x in runs]}
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    report[backend] = results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--reseed", action="store_true", help="make the databases again")
    ap.add_argument("--page", action="store_true", help="also time the ops page (PAGE_URLS)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "target" / "bench-sendlog")
    args = ap.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for d in ("campaigns", "templates"):
        (workdir / d).mkdir(exist_ok=True)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    admin_url = os.environ.get("OUTREACH_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    now = datetime.fromisoformat(NOW).astimezone(timezone.utc)
    binary = build()
    info = machine(backends, admin_url)
    info["loadavg_before"] = os.getloadavg()
    print(f"machine: {json.dumps(info)}", flush=True)
    report = {}
    for backend in backends:
        bench_backend(args, binary, workdir, backend, admin_url, now, report)
    info["loadavg_after"] = os.getloadavg()
    print(json.dumps({"machine": info, "rows": args.rows, "results": report}))


if __name__ == "__main__":
    main()
