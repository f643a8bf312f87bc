"""Helpers the benchmarks share: running the outreach binary as a measured
child process, a clean environment, psql, and a description of the machine.

Imported by segments_bench.py and campaigns_bench.py (run them as
`python3 benches/NAME.py`, which puts this folder on the module path).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-23T12:00:00+08:00"
SQLITE3 = "/usr/bin/sqlite3"


class Bench:
    """Runs child processes in the work directory and measures them."""

    def __init__(self, workdir, binary):
        self.workdir = workdir
        self.binary = binary
        self.out = workdir / "last-stdout.txt"
        self.err = workdir / "last-stderr.txt"
        self.last_cpu_seconds = None

    def run(self, cmd, env=None):
        """Run cmd; return (wall seconds, peak RSS MiB, stdout text). Exit on failure."""
        env = env if env is not None else clean_env()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.chdir(self.workdir)
                out = os.open(self.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                err = os.open(self.err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(out, 1)
                os.dup2(err, 2)
                os.execvpe(cmd[0], cmd, env)
            finally:
                os._exit(127)
        _, status, rusage = os.wait4(pid, 0)
        seconds = time.monotonic() - start
        self.last_cpu_seconds = rusage.ru_utime + rusage.ru_stime
        code = os.waitstatus_to_exitcode(status)
        stdout = self.out.read_text()
        if code != 0:
            tail = self.err.read_text()[-3000:]
            sys.exit(f"\nFAILED ({code}): {' '.join(map(str, cmd))}\n--- stdout\n{stdout[-2000:]}\n--- stderr\n{tail}")
        return seconds, rusage.ru_maxrss / 1024.0, stdout

    def outreach(self, args, env, now=NOW):
        return self.run([str(self.binary), "--now", now, *args], env)


def clean_env(**extra):
    """The caller's environment without OUTREACH_* (config would read them), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTREACH_")}
    env["OUTREACH_LOG"] = "warn"
    env.update(extra)
    return env


def json_output(stdout, what):
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        sys.exit(f"{what}: expected one JSON object on stdout, got {stdout[:500]!r}")


def pg_url(admin_url, name):
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def psql(url, sql):
    return subprocess.run(["psql", url, "-XqAtc", sql], check=True, capture_output=True, text=True).stdout.strip()


def remove_sqlite(db):
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(db) + suffix)
        if p.exists():
            p.unlink()


def machine(backends, admin_url):
    info = {"nproc": len(os.sched_getaffinity(0)), "arch": platform.machine(), "kernel": platform.release()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["source_tree"] = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                     capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    if "sqlite" in backends:
        info["sqlite3_cli"] = subprocess.run([SQLITE3, "--version"], capture_output=True, text=True,
                                             check=True).stdout.split()[0]
    if "postgres" in backends:
        info["postgres"] = psql(admin_url, "SHOW server_version")
        info["postgres_settings"] = dict(
            line.split("|", 1) for line in psql(
                admin_url,
                # current_setting() gives the value with its unit ("128MB");
                # pg_settings' setting is in units of `unit` ("16384" of "8kB").
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                "('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'jit', "
                "'synchronous_commit', 'autovacuum', 'max_wal_size') ORDER BY name").splitlines())
    return info


def figures(samples):
    """Median of a list of run dicts with seconds, rss_mib and optionally job_seconds."""
    out = {"median_s": round(statistics.median(s["seconds"] for s in samples), 3),
           "median_rss_mib": round(statistics.median(s["rss_mib"] for s in samples), 1),
           "runs": samples}
    if all(s.get("job_seconds") is not None for s in samples):
        out["median_job_s"] = round(statistics.median(s["job_seconds"] for s in samples), 3)
    return out
