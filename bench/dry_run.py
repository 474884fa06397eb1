#!/usr/bin/env python3
"""A 1 000-ticket `sync --dry-run` against a large store, beside a real sync of the same batch:

    cargo build --release --bin tixngo-feedback --example tixngo-sim
    python3 bench/dry_run.py [--tickets N] [--runs R] [--store PATH] [BINARY ...]

It builds a store of N synthetic tickets (default 1 000 000, about 600 MB: every ticket with its
owner's details, a contact for every other ticket, a history row for every ticket and a
distribution line for every fifth) in a temporary directory, through SQL into the schema the
binary creates, then, for each BINARY in turn (default target/release/tixngo-feedback), R times:
a dry run of the next 1 000-ticket batch of the simulator, then the real run of that same batch.
Each figure is process start to exit. The store is deleted at the end.
With --store PATH, the store is built there (kept, and reused if it is there already: each real
run adds its 1 000 tickets). Needs python3 and the store's size twice in free disk (a binary that copies the store for its dry
runs writes a temporary copy).
"""
import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMULATOR = os.path.join(ROOT, "target", "release", "examples", "tixngo-sim")
API_KEY = "bench-key"

# One row per ticket, its owner's details filled as TIXNGO sends them.
FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :contacts)
INSERT INTO contact (id, email, title, first_name, last_name, birth_date, nationality, phone,
    residence_country, language, accept_institution_email, accept_third_party_email,
    has_internet_account, created_at, updated_at)
SELECT i, 'spectator' || i || '@example.org', 'MR', 'First' || i, 'Last' || i, '1980-01-01',
    'CHE', '+4179' || printf('%07d', i), 'CHE', 'fr', 1, 0, 1,
    '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z' FROM n;

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :tickets)
INSERT INTO ticket (ticket_number, tixngo_ticket_id, barcode, event_id, s360_state, mobile_status,
    tixngo_updated_at, owner_email, owner_title, owner_first_name, owner_last_name,
    owner_birth_date, owner_nationality, owner_id_number, owner_phone, owner_residence_country,
    owner_language, holder_first_name, holder_last_name, holder_birth_date, holder_nationality,
    initial_owner_email, injected_at, downloaded_at, activated_at, cultural_contact_id,
    first_synced_at, last_synced_at)
SELECT printf('SYN-%08d', i), lower(hex(randomblob(16))), hex(randomblob(12)),
    'EVT-' || (i % 64), 'PRINTED', 'ACTIVATED', '2026-02-01T10:00:00.000Z',
    'spectator' || (1 + i % :contacts) || '@example.org', 'MR', 'First' || i, 'Last' || i,
    '1980-01-01', 'CHE', 'X' || printf('%09d', i), '+4179' || printf('%07d', i), 'CHE', 'fr',
    'First' || i, 'Last' || i, '1980-01-01', 'CHE',
    'spectator' || (1 + i % :contacts) || '@example.org', '2026-01-01T09:00:00.000Z',
    '2026-01-15T09:00:00.000Z', '2026-02-01T10:00:00.000Z', 1 + i % :contacts,
    '2026-01-01T09:05:00.000Z', '2026-02-01T10:05:00.000Z' FROM n;

INSERT INTO sync_run (id, command, started_at, finished_at, exit_code)
VALUES (1, 'sync', '2026-02-01T10:05:00.000Z', '2026-02-01T10:05:01.000Z', 0);

INSERT INTO ticket_history (ticket_number, mobile_status, owner_email, holder_first_name,
    holder_last_name, tixngo_updated_at, run_id, recorded_at)
SELECT ticket_number, mobile_status, owner_email, holder_first_name, holder_last_name,
    tixngo_updated_at, 1, last_synced_at FROM ticket;

INSERT INTO distribution (ticket_number, new_contact_id, status, created_at, updated_at, run_id,
    operator_login, ticket_state, date_time)
SELECT ticket_number, cultural_contact_id, 'CONFIRMED', last_synced_at, last_synced_at, 1,
    'TIXNGO_FEEDBACK', 'PRINTED', tixngo_updated_at FROM ticket WHERE rowid % 5 = 0;
"""


def build_store(binary, store, tickets):
    """The binary creates the store and its schema; SQL fills it."""
    for action in ("add", "remove"):
        subprocess.run([binary, "--store", store, "skip", action, "SYN-0"], check=True,
                       stdout=subprocess.DEVNULL)
    db = sqlite3.connect(store)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    with db:
        db.executescript(FILL.replace(":contacts", str(tickets // 2))
                         .replace(":tickets", str(tickets)))
    db.close()


def timed(command, env):
    """Runs a command; returns (seconds, stdout)."""
    started = time.perf_counter()
    process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             env=env, text=True)
    elapsed = time.perf_counter() - started
    if process.returncode not in (0, 2):
        sys.exit("failed (%d): %s" % (process.returncode, " ".join(command)))
    return elapsed, process.stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1000000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store")
    parser.add_argument("binaries", nargs="*",
                        default=[os.path.join(ROOT, "target", "release", "tixngo-feedback")])
    args = parser.parse_args()
    simulator = subprocess.Popen([SIMULATOR, "--tickets", "20000", "--api-key", API_KEY],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    env = {"PATH": os.environ.get("PATH", ""), "TIXNGO_API_KEY": API_KEY,
           "TIXNGO_API_URL": simulator.stdout.readline().strip()}
    try:
        with tempfile.TemporaryDirectory() as work:
            store = args.store or os.path.join(work, "store.db")
            if not os.path.exists(store):
                started = time.perf_counter()
                build_store(args.binaries[0], store, args.tickets)
                print("store built in %.0f s" % (time.perf_counter() - started))
            print("store: %.0f MB" % (os.path.getsize(store) / 1e6))
            for binary in args.binaries:
                sync = [binary, "--store", store, "sync", "--batch-size", "1000"]
                for run in range(1, args.runs + 1):
                    for label, command in (("dry run", sync + ["--dry-run"]), ("real run", sync)):
                        seconds, out = timed(command, env)
                        print("%s | run %d | %s | %.3f s | %s"
                              % (binary, run, label, seconds, out[:60]))
    finally:
        simulator.kill()
        simulator.wait()


if __name__ == "__main__":
    main()
