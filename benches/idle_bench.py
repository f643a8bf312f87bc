#!/usr/bin/env python3
"""The daemon at rest: resident memory and CPU of `outreach run` on the demo
shop once its start-up jobs have run, with the repository's campaigns loaded
and the scheduler, folder watcher, dispatcher and HTTP server all running.

    python3 benches/idle_bench.py --customers 2000 --seconds 60

It seeds the demo shop into a fresh SQLite database, starts the daemon at
NOW (so its start-up pass runs the jobs due then and sends what they plan),
waits until /healthz shows a finished scheduler pass and the outbox is empty,
then samples the resident set every second for --seconds and reads the CPU
time the process used over that span. Targets: <= 30 MB resident, near-zero
CPU.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import ROOT, NOW, clean_env, machine


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def rss_parts(pid):
    """RssAnon (the process's own memory) and RssFile (mapped file pages:
    mostly the executable's code, shared and reclaimable), in MiB."""
    parts = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("RssAnon", "RssFile", "RssShmem"):
                parts[key] = int(line.split()[1]) / 1024.0
    return parts


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--binary", default=str(ROOT / "target/release/outreach"))
    args = ap.parse_args()
    binary = Path(args.binary)
    if not binary.exists():
        sys.exit(f"{binary} is missing: cargo build --release")
    work = Path(tempfile.mkdtemp(prefix="outreach-idle-"))
    try:
        for folder in ("campaigns", "templates"):
            shutil.copytree(ROOT / folder, work / folder)
        env = clean_env(**{k: v for k, v in os.environ.items() if k.startswith("OUTREACH_") and k != "OUTREACH_LOG"})
        subprocess.run([str(binary), "--now", NOW, "demo", "--seed-only", "--customers", str(args.customers)],
                       cwd=work, env=env, check=True, capture_output=True)
        port = free_port()
        env["OUTREACH_HTTP__ADDR"] = f"127.0.0.1:{port}"
        daemon = subprocess.Popen([str(binary), "--now", NOW, "run"], cwd=work, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(work / "daemon.err", "w"))
        deadline = time.monotonic() + 120
        start_peak = 0.0
        while True:
            start_peak = max(start_peak, rss_mib(daemon.pid))
            h = health(port)
            if h and h.get("scheduler", {}).get("last_pass") and h.get("jobs"):
                break
            if time.monotonic() > deadline or daemon.poll() is not None:
                sys.exit("the daemon did not finish its start-up pass:\n" + (work / "daemon.err").read_text()[-2000:])
            time.sleep(0.2)
        # Let the dispatcher send what the start-up pass planned.
        time.sleep(5)
        start_peak = max(start_peak, rss_mib(daemon.pid))
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        samples = []
        for _ in range(args.seconds):
            time.sleep(1)
            samples.append(rss_mib(daemon.pid))
        cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
        parts = rss_parts(daemon.pid)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        jobs = len(h.get("jobs", []))
        print(f"machine: {machine([], None)}")
        print(f"demo shop: {args.customers} customers, repository campaigns; {jobs} jobs ran at start-up")
        print(f"peak RSS during start-up (jobs + sends): {start_peak:.1f} MiB")
        print(f"idle RSS over {args.seconds} s: median {statistics.median(samples):.1f} MiB, max {max(samples):.1f} MiB")
        print("  of which at the end: " + ", ".join(f"{k} {v:.1f} MiB" for k, v in parts.items()))
        print(f"executable: {binary.stat().st_size / 1e6:.1f} MB")
        print(f"idle CPU: {100.0 * (cpu1 - cpu0) / (t1 - t0):.2f} % of one core ({cpu1 - cpu0:.2f} s in {t1 - t0:.0f} s)")
        print(f"exit code after SIGTERM: {code}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
