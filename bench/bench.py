#!/usr/bin/env python3
"""Speed and memory figures of tixngo-feedback, rerunnable by anyone:

    python3 bench/bench.py            # builds the shipped (dist profile) binary and the simulator first

It prints one table. Every figure comes from the same run on the same machine, so compare the
ratios (ours vs curl, ours vs Python), not the absolute milliseconds across machines. Needs the
Rust toolchain, python3 and curl; nothing else.

1. One cron run: a 1000-ticket batch from the simulator over loopback, process start to exit,
   median of repeated runs (each run takes the next batch of a growing store, contacts on),
   beside `curl` fetching the very same response: the difference is our local overhead.
2. Backfill: ~200 000 tickets with --max-batches at batch 1000, contacts on: tickets per second.
   Beside it, the store's own ceiling on the same machine (examples/store-floor.rs): the backfill's
   changes replayed into a copy of its store doing only the store's part of each change (read the
   row, write it back, append its history row), in the same transactions.
3. Memory: peak RSS of one 10 000-ticket batch.
4. The store after the backfill: bytes on disk per ticket.
5. Against the job scripted in Python (bench/reference_feedback.py: json + sqlite3, one
   transaction, the same tables and rules): the same file replayed into a fresh store, schema
   creation included, process start to exit, for 1 000 and 50 000 tickets.
6. Match day (`python3 bench/bench.py matchday` runs only these rows): the simulator's match day
   (`--match-day`), 150 000 activations and controls over three hours compressed 60 times (3 min),
   a run every compressed five minutes (5 s), once with one batch per run and once with `--drain`.
   The lag of a run is its end minus the newest change the store held before it started: how old
   the oldest change S-360 could still be missing was when the run delivered it. Then, on the
   backlog the one-batch schedule left, one drained run: the tickets per second it sustains.
7. PostgreSQL (`python3 bench/bench.py postgres` runs only these rows; needs PostgreSQL's server
   binaries, `initdb` and `pg_ctl`, on PATH or under /usr/lib/postgresql): a throwaway cluster
   on 127.0.0.1 with PostgreSQL's defaults (fsync and synchronous_commit on), the backfill of
   figure 2 into it beside the same backfill into SQLite, then again through
   examples/delay-proxy.rs adding 0.5 ms each way (a 1 ms round trip, a LAN's); and the round
   trips one 1000-ticket batch costs, as the job logs them at -v. Each backfill runs twice
   (BENCH_PG_ATTEMPTS), the variants alternating; the faster run is reported.
"""
import calendar
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "dist", "tixngo-feedback")
SIMULATOR = os.path.join(ROOT, "target", "dist", "examples", "tixngo-sim")
STORE_FLOOR = os.path.join(ROOT, "target", "dist", "examples", "store-floor")
DELAY_PROXY = os.path.join(ROOT, "target", "dist", "examples", "delay-proxy")
PG_TICKETS = int(os.environ.get("BENCH_PG_TICKETS", "29000"))  # about 100 000 events
PG_ATTEMPTS = int(os.environ.get("BENCH_PG_ATTEMPTS", "2"))
REFERENCE = os.path.join(ROOT, "bench", "reference_feedback.py")
API_KEY = "bench-key"
CRON_RUNS = int(os.environ.get("BENCH_CRON_RUNS", "31"))
BACKFILL_TICKETS = int(os.environ.get("BENCH_BACKFILL_TICKETS", "58000"))  # about 200 000 events
MATCH_CHANGES = int(os.environ.get("BENCH_MATCH_CHANGES", "150000"))
MATCH_COMPRESSION = int(os.environ.get("BENCH_MATCH_COMPRESSION", "60"))
MATCH_HOURS, MATCH_PERIOD_MINUTES = 3, 5


def build():
    subprocess.run(["cargo", "build", "--profile", "dist", "--quiet", "--bin", "tixngo-feedback",
                    "--example", "tixngo-sim", "--example", "store-floor", "--example",
                    "delay-proxy"], cwd=ROOT, check=True)


class Simulator:
    """The bundled simulator in its own process, serving a generated organizer."""

    def __init__(self, tickets, seed=1, extra=()):
        self.process = subprocess.Popen(
            [SIMULATOR, "--tickets", str(tickets), "--seed", str(seed), "--api-key", API_KEY,
             *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.process.stdout.readline().strip()

    def page_url(self, key, limit):
        query = {"limit": limit}
        if key:
            query["paginationKey"] = key
        return self.url + "/diff?" + urllib.parse.urlencode(query)

    def close(self):
        self.process.kill()
        self.process.wait()


def timed(command, env=None):
    """Runs a command; returns (seconds, peak RSS in KiB, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 2):
        sys.exit("failed (%d): %s" % (os.waitstatus_to_exitcode(status), " ".join(command)))
    return elapsed, usage.ru_maxrss, out


def env_with_key():
    env = dict(os.environ)
    env["TIXNGO_API_KEY"] = API_KEY
    for name in ("TIXNGO_FEEDBACK_STORE", "TIXNGO_FEEDBACK_LOCK", "RUST_LOG", "http_proxy",
                 "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        env.pop(name, None)
    return env


def stored_key(store):
    if not os.path.exists(store):
        return None
    with sqlite3.connect(store) as db:
        return db.execute("SELECT pagination_key FROM sync_state").fetchone()[0]


def cron_runs(work):
    """Figure 1: median process time of a 1000-ticket run, and of curl on the same page."""
    simulator = Simulator(tickets=20000)
    store = os.path.join(work, "cron.db")
    ours, floor = [], []
    try:
        for _ in range(CRON_RUNS):
            key = stored_key(store)
            seconds, _, _ = timed(["curl", "-sf", "-o", "/dev/null", "-H", "x-api-key: " + API_KEY,
                                   simulator.page_url(key, 1000)])
            floor.append(seconds)
            seconds, _, _ = timed([BINARY, "--store", store, "-q", "sync", "--api-url",
                                   simulator.url, "--batch-size", "1000"], env_with_key())
            ours.append(seconds)
    finally:
        simulator.close()
    return statistics.median(ours), statistics.median(floor)


def backfill(work):
    """Figures 2 to 4: a long backfill at batch 1000, then the store's size; a 10k batch's RSS."""
    simulator = Simulator(tickets=BACKFILL_TICKETS)
    store = os.path.join(work, "backfill.db")
    try:
        seconds, _, out = timed([BINARY, "--store", store, "--json", "sync", "--api-url",
                                 simulator.url, "--batch-size", "1000", "--max-batches", "100000",
                                 "--timeout", "3600"], env_with_key())
        summary = json.loads(out)
        rss_store = os.path.join(work, "rss.db")
        _, rss, _ = timed([BINARY, "--store", rss_store, "-q", "sync", "--api-url", simulator.url,
                           "--batch-size", "10000"], env_with_key())
    finally:
        simulator.close()
    with sqlite3.connect(store) as db:
        tickets = db.execute("SELECT count(*) FROM ticket").fetchone()[0]
    size = sum(os.path.getsize(store + suffix) for suffix in ("", "-wal")
               if os.path.exists(store + suffix))
    ceiling = subprocess.run([STORE_FLOOR, store], check=True, capture_output=True,
                             text=True).stdout.strip()
    return summary["fetched"], seconds, rss, size, tickets, ceiling


def saved_file(work, tickets, name):
    """A diff response of `tickets` events, saved from the simulator."""
    simulator = Simulator(tickets=tickets)
    path = os.path.join(work, name)
    try:
        subprocess.run(["curl", "-sf", "-o", path, "-H", "x-api-key: " + API_KEY,
                        simulator.page_url(None, min(tickets, 10000))], check=True)
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        # Pages hold at most 10 000 events: chain them into one file.
        key = document["pagination"]["nextPageKey"]
        while len(document["result"]) < tickets:
            page = json.loads(subprocess.run(
                ["curl", "-sf", "-H", "x-api-key: " + API_KEY, simulator.page_url(key, 10000)],
                check=True, capture_output=True).stdout)
            if not page["result"]:
                break
            document["result"].extend(page["result"])
            key = page["pagination"]["nextPageKey"]
        document["result"] = document["result"][:tickets]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(document, f)
    finally:
        simulator.close()
    return path


def replay_race(work, tickets, repeats):
    """Figure 5: replaying one file into a fresh store, ours against the Python script."""
    path = saved_file(work, tickets, "replay-%d.json" % tickets)
    ours, python = [], []
    for i in range(repeats):
        store = os.path.join(work, "ours-%d-%d.db" % (tickets, i))
        ours.append(timed([BINARY, "--store", store, "-q", "replay", path], env_with_key())[0])
        store = os.path.join(work, "python-%d-%d.db" % (tickets, i))
        python.append(timed([sys.executable, REFERENCE, store, path])[0])
    return statistics.median(ours), statistics.median(python)


def newest_stored(store):
    """The newest change the store holds (Unix seconds), from the runs' feed position."""
    if not os.path.exists(store):
        return None
    with sqlite3.connect(store) as db:
        newest = db.execute("SELECT max(newest_change_at) FROM sync_run").fetchone()[0]
    return newest and calendar.timegm(time.strptime(newest[:19], "%Y-%m-%dT%H:%M:%S")) \
        + float(newest[19:23])


def match_day_schedule(work, name, extra):
    """Runs the job every compressed period against a compressed match day; returns the runs'
    (lag, caught up, metric lag, seconds) and the store and simulator, still serving."""
    window = MATCH_HOURS * 3600 / MATCH_COMPRESSION
    period = MATCH_PERIOD_MINUTES * 60 / MATCH_COMPRESSION
    simulator = Simulator(tickets=0, extra=["--match-day", "%d:%d" % (MATCH_CHANGES, window)])
    day_start = time.time()
    store = os.path.join(work, name + ".db")
    runs = []
    for run in range(1, int(window / period) + 1):
        time.sleep(max(0.0, day_start + run * period - time.time()))
        before = newest_stored(store) or day_start
        seconds, _, out = timed([BINARY, "--store", store, "--json", "sync", "--api-url",
                                 simulator.url, "--batch-size", "1000", *extra], env_with_key())
        summary = json.loads(out)
        runs.append((time.time() - before, summary["caught_up"],
                     summary["feed_lag_seconds"] or 0.0, seconds))
    return runs, store, simulator


def match_day(work):
    """Figure 6: the largest lag with one batch per run and with --drain; a drain's tickets/s."""
    drained, _, simulator = match_day_schedule(work, "drained", ["--drain"])
    simulator.close()
    single, store, simulator = match_day_schedule(work, "single", [])
    try:
        seconds, _, out = timed([BINARY, "--store", store, "--json", "sync", "--api-url",
                                 simulator.url, "--batch-size", "1000", "--drain",
                                 "--timeout", "3600"], env_with_key())
    finally:
        simulator.close()
    backlog = json.loads(out)["fetched"]
    return single, drained, backlog, seconds


def print_match_day(single, drained, backlog, seconds):
    period = MATCH_PERIOD_MINUTES * 60 / MATCH_COMPRESSION
    day = "%d changes in %d h / %d, a run every %.1f s" % (
        MATCH_CHANGES, MATCH_HOURS, MATCH_COMPRESSION, period)
    for label, runs in (("one batch per run", single), ("--drain", drained)):
        lag = max(r[0] for r in runs)
        print("| 6. match day (%s), %s | largest lag %.1f s = %.1f periods; %d of %d runs caught "
              "up; largest feed_lag_seconds %.1f s; longest run %.2f s | lag <= one period + the "
              "run's time |" % (day, label, lag, lag / period, sum(r[1] for r in runs), len(runs),
                                max(r[2] for r in runs), max(r[3] for r in runs)))
    print("| 6b. one drained run on the one-batch schedule's backlog | %d tickets in %.2f s = "
          "%.0f tickets/s | |" % (backlog, seconds, backlog / seconds))


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust authentication), run as the `postgres`
    user when this script runs as root, removed by close()."""

    def __init__(self, work):
        self.bin = self.binaries()
        self.dir = os.path.join(work, "pg")
        os.mkdir(self.dir)
        self.as_owner = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        with socket_bound() as port:
            self.port = port
        self.run("initdb", "-D", self.dir + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.run("pg_ctl", "-D", self.dir + "/data", "-l", self.dir + "/log", "-w", "-o",
                 "-p %d -k %s -c listen_addresses=127.0.0.1" % (self.port, self.dir), "start")

    @staticmethod
    def binaries():
        found = shutil.which("initdb")
        if found:
            return os.path.dirname(found)
        versions = sorted(os.listdir("/usr/lib/postgresql"), key=int) if os.path.isdir(
            "/usr/lib/postgresql") else []
        if not versions:
            sys.exit("bench postgres: PostgreSQL's initdb and pg_ctl are not installed")
        return "/usr/lib/postgresql/%s/bin" % versions[-1]

    def run(self, program, *args):
        subprocess.run(self.as_owner + [os.path.join(self.bin, program), *args], check=True,
                       stdout=subprocess.DEVNULL)

    def url(self, port):
        return "postgres://postgres@127.0.0.1:%d/postgres" % port

    def close(self):
        self.run("pg_ctl", "-D", self.dir + "/data", "-m", "immediate", "stop")


class socket_bound:
    """A free TCP port on 127.0.0.1 (bound, then released for the server to take)."""

    def __enter__(self):
        import socket
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        return self.socket.getsockname()[1]

    def __exit__(self, *_):
        self.socket.close()


def backfill_into(store_args, simulator):
    """One backfill at batch 1000 with -v: (tickets, seconds, round trips of each batch)."""
    command = [BINARY, *store_args, "-v", "--json", "sync", "--api-url", simulator.url,
               "--batch-size", "1000", "--max-batches", "100000", "--timeout", "3600"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env_with_key(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 2):
        sys.exit("failed (%d): %s\n%s" % (done.returncode, " ".join(command), done.stderr[-2000:]))
    trips = [int(n) for n in re.findall(r"in (\d+) round trips", done.stderr)]
    return json.loads(done.stdout)["fetched"], seconds, trips


def postgres(work):
    """Figure 7: the backfill into SQLite, into PostgreSQL on loopback and at a 1 ms round trip,
    each the faster of BENCH_PG_ATTEMPTS runs."""
    cluster = Cluster(work)
    proxy = None
    try:
        proxy = subprocess.Popen([DELAY_PROXY, "127.0.0.1:%d" % cluster.port, "500"],
                                 stdout=subprocess.PIPE, text=True)
        proxy_port = int(proxy.stdout.readline().strip().rsplit(":", 1)[1])
        variants = [
            ("SQLite", lambda n: ["--store", os.path.join(work, "pg-beside-%d.db" % n)]),
            ("PostgreSQL, loopback", lambda n: ["--store", cluster.url(cluster.port),
                                                "--pg-schema", "loopback_%d" % n]),
            ("PostgreSQL, 1 ms round trip", lambda n: ["--store", cluster.url(proxy_port),
                                                       "--pg-schema", "lan_%d" % n])]
        # Each backfill PG_ATTEMPTS times, the variants alternating, each into a fresh store: the
        # fastest is reported (a shared machine's noise only ever slows a run down).
        runs = {name: [] for name, _ in variants}
        for attempt in range(PG_ATTEMPTS):
            for name, store_args in variants:
                simulator = Simulator(tickets=PG_TICKETS)
                try:
                    runs[name].append(backfill_into(store_args(attempt), simulator))
                finally:
                    simulator.close()
        return [(name, *min(runs[name], key=lambda run: run[1])) for name, _ in variants]
    finally:
        if proxy:
            proxy.kill()
        cluster.close()


def print_postgres(rows):
    for name, fetched, seconds, trips in rows:
        target = {"SQLite": "", "PostgreSQL, loopback": ">= 15 000/s",
                  "PostgreSQL, 1 ms round trip": ">= 10 000/s"}[name]
        print("| 7. backfill into %s, batch 1000, contacts on | %d tickets in %.2f s = %.0f "
              "tickets/s | %s |" % (name, fetched, seconds, fetched / seconds, target))
    trips = [t for name, _, _, batches in rows if name.startswith("PostgreSQL") for t in batches]
    if trips:
        print("| 7b. round trips per 1000-ticket batch (PostgreSQL) | median %d, most %d (%d "
              "batches) | <= 20 |" % (statistics.median(trips), max(trips), len(trips)))


def main():
    build()
    if sys.argv[1:] == ["postgres"]:
        with tempfile.TemporaryDirectory() as work:
            os.chmod(work, 0o755)
            rows = postgres(work)
        print("| figure | measured | target |")
        print("|---|---|---|")
        print_postgres(rows)
        return
    if sys.argv[1:] == ["matchday"]:
        with tempfile.TemporaryDirectory() as work:
            figures = match_day(work)
        print("| figure | measured | target |")
        print("|---|---|---|")
        print_match_day(*figures)
        return
    with tempfile.TemporaryDirectory() as work:
        ours, floor = cron_runs(work)
        fetched, seconds, rss, size, stored_tickets, ceiling = backfill(work)
        small = replay_race(work, 1000, 11)
        large = replay_race(work, 50000, 3)
        matchday = match_day(work)
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                         capture_output=True, text=True).stdout.strip()
    print("machine: %s, %d cores" % (cpu, os.cpu_count()))
    print("| figure | measured | target |")
    print("|---|---|---|")
    print("| 1. cron run, 1000 tickets (median of %d) | %.1f ms; curl %.1f ms; overhead %.1f ms "
          "| overhead <= 30 ms |" % (CRON_RUNS, ours * 1e3, floor * 1e3, (ours - floor) * 1e3))
    print("| 2. backfill, batch 1000, contacts on | %d tickets in %.2f s = %.0f tickets/s "
          "| >= 100 000/s |" % (fetched, seconds, fetched / seconds))
    print("| 2b. the store alone, the same changes and batches (its ceiling) | %s | |" % ceiling)
    print("| 3. peak RSS, one 10 000-ticket batch | %.1f MiB | <= 64 MiB |" % (rss / 1024))
    print("| 4. store size after the backfill | %.0f bytes per ticket (%d tickets, %.1f MiB) | |"
          % (size / stored_tickets, stored_tickets, size / 2**20))
    print("| 5a. replay 1 000 tickets, fresh store | %.1f ms; Python %.1f ms: %.1fx | >= 5x |"
          % (small[0] * 1e3, small[1] * 1e3, small[1] / small[0]))
    print("| 5b. replay 50 000 tickets, fresh store | %.2f s; Python %.2f s: %.1fx | >= 5x |"
          % (large[0], large[1], large[1] / large[0]))
    print_match_day(*matchday)


if __name__ == "__main__":
    main()
