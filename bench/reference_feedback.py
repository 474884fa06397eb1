#!/usr/bin/env python3
"""The feedback job as an operations engineer would script it in Python: json + sqlite3, one
transaction, the same tables and the same rules (SPEC §4.4 mapping, §4.5 contacts). It exists
only as the benchmark's point of comparison (`bench/bench.py`), replaying a saved diff response:

    python3 bench/reference_feedback.py STORE FILE

The schema is read from src/store/sqlite/schema.rs, so both programs always write the same tables.
"""
import datetime
import json
import os
import re
import sqlite3
import sys

GRAMMAR = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")
OWNER = [("title", "title"), ("firstName", "first_name"), ("lastName", "last_name"),
         ("dateOfBirth", "birth_date"), ("email", "email"), ("nationality", "nationality"),
         ("idCardNumber", "id_number"), ("phoneNumber", "phone"),
         ("residenceCountry", "residence_country"), ("language", "language")]
HOLDER = [("firstName", "first_name"), ("lastName", "last_name"), ("dateOfBirth", "birth_date"),
          ("idCardNumber", "id_number"), ("nationality", "nationality")]
ATTRIBUTES = [("injectedAt", "injected_at"), ("downloadedAt", "downloaded_at"),
              ("assignedAt", "assigned_at"), ("activatedAt", "activated_at"),
              ("checkedAt", "checked_at"), ("controlledAt", "controlled_at"),
              ("deletedAt", "deleted_at")]
COLUMNS = (["ticket_number", "tixngo_ticket_id", "barcode", "event_id", "s360_state",
            "mobile_status", "tixngo_updated_at"]
           + ["owner_email", "owner_title", "owner_first_name", "owner_last_name",
              "owner_birth_date", "owner_nationality", "owner_id_number", "owner_phone",
              "owner_residence_country", "owner_language"]
           + ["holder_" + c for _, c in HOLDER]
           + ["previous_owner_email", "initial_owner_email"]
           + [c for _, c in ATTRIBUTES]
           + ["cultural_contact_id", "first_synced_at", "last_synced_at"])


def schema():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "src", "store", "sqlite", "schema.rs"), encoding="utf-8") as f:
        return re.search(r'const V1: &str = r#"(.*?)"#;', f.read(), re.S).group(1)


def utc(text):
    if not isinstance(text, str):
        raise ValueError("not a string")
    moment = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("no offset")
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def key(email):
    if not isinstance(email, str):
        return None
    email = email.strip(" \t\r\n")
    return email.lower() if email else None


def now():
    return utc(datetime.datetime.now(datetime.timezone.utc).isoformat())


def find_contact(db, email_key):
    return db.execute(
        "SELECT id, coalesce(temporary, 0) FROM contact WHERE email_key = ? ORDER BY"
        " coalesce(has_internet_account, 0) DESC, CASE kind WHEN 'individual' THEN 0 ELSE 1 END, id"
        " LIMIT 1", (email_key,)).fetchone()


def owner_contact(db, owner, stamp, counters):
    found = find_contact(db, key(owner.get("email")))
    prefs = owner.get("organizerSpectatorPreference") or {}
    details = [owner.get(k) for k, _ in OWNER if k != "email"] + [
        prefs.get("allowPromoEmail"), prefs.get("allowThirdPartyEmail")]
    if found is None:
        cur = db.execute(
            "INSERT INTO contact (email, title, first_name, last_name, birth_date, nationality,"
            " id_number, phone, residence_country, language, accept_institution_email,"
            " accept_third_party_email, temporary, has_internet_account, kind, created_at,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,1,'individual',?,?)",
            [owner["email"].strip()] + details + [stamp, stamp])
        counters["contacts_created"] += 1
        return cur.lastrowid
    if found[1]:
        db.execute(
            "UPDATE contact SET title=?, first_name=?, last_name=?, birth_date=?, nationality=?,"
            " id_number=?, phone=?, residence_country=?, language=?, accept_institution_email=?,"
            " accept_third_party_email=?, temporary=0, has_internet_account=1, updated_at=?"
            " WHERE id=?", details + [stamp, found[0]])
        counters["contacts_updated"] += 1
    return found[0]


def set_status(db, line_ids, status, stamp, counters):
    for line_id in line_ids:
        db.execute("UPDATE distribution SET status=?, updated_at=? WHERE id=?", (status, stamp, line_id))
        counters["distributions_updated"] += 1


def add_line(db, number, old, new, status, stamp, run_id, counters):
    db.execute("INSERT INTO distribution (ticket_number, old_contact_id, new_contact_id, action,"
               " status, created_at, updated_at, run_id) VALUES (?,?,?,'DISTRIBUTE',?,?,?,?)",
               (number, old, new, status, stamp, stamp, run_id))
    counters["distributions_created"] += 1


def contacts(db, stored, row, ticket, stamp, run_id, counters):
    """SPEC §4.5: the seed rule, then the first matching transfer rule. Returns the lines to add
    once the ticket row exists."""
    owner = ticket.get("spectatorDetails") or {}
    owner_key = key(owner.get("email"))
    status = ticket["status"]
    number = row["ticket_number"]
    lines = [] if stored is None else db.execute(
        "SELECT id, new_contact_id FROM distribution WHERE ticket_number=? AND status='PENDING'"
        " ORDER BY id", (number,)).fetchall()
    to_add = []
    cache = {}

    def mine():
        if "owner" not in cache:
            cache["owner"] = owner_contact(db, owner, stamp, counters)
        return cache["owner"]

    if row["cultural_contact_id"] is None and owner_key:
        row["cultural_contact_id"] = mine()
        if stored is None and status == "TRANSFERRED":
            return to_add
    old_key = key(stored["owner_email"]) if stored else None
    changed = bool(old_key and owner_key and old_key != owner_key)
    recipient = key((ticket.get("transfer") or {}).get("recipientEmail"))
    if status == "PENDING_TRANSFER":
        if not recipient:
            return to_add
        found = find_contact(db, recipient)
        if found:
            r_id = found[0]
        elif recipient == owner_key:
            r_id = mine()
        else:
            r_id = db.execute(
                "INSERT INTO contact (email, first_name, last_name, temporary, has_internet_account,"
                " kind, created_at, updated_at) VALUES (?, 'Pending', 'CREATION', 1, 0,"
                " 'individual', ?, ?)",
                (ticket["transfer"]["recipientEmail"].strip(" \t\r\n"), stamp, stamp)).lastrowid
            counters["contacts_created"] += 1
        set_status(db, [l[0] for l in lines if l[1] != r_id], "CANCELLED", stamp, counters)
        if not any(l[1] == r_id for l in lines):
            to_add.append((row["cultural_contact_id"], r_id, "PENDING"))
    elif status in ("FAILURE", "FAILURE_TRANSFER"):
        if recipient:
            found = find_contact(db, recipient)
            lines = [l for l in lines if found and l[1] == found[0]]
        set_status(db, [l[0] for l in lines], "CANCELLED", stamp, counters)
    elif status == "TRANSFERRED" or changed:
        if not owner_key:
            return to_add
        c_id = mine()
        if row["cultural_contact_id"] == c_id:
            return to_add
        confirm = [l[0] for l in lines if l[1] == c_id][:1]
        if confirm:
            set_status(db, confirm, "CONFIRMED", stamp, counters)
        else:
            to_add.append((row["cultural_contact_id"], c_id, "CONFIRMED"))
        set_status(db, [l[0] for l in lines if l[0] not in confirm], "CANCELLED", stamp, counters)
        row["cultural_contact_id"] = c_id
    else:
        set_status(db, [l[0] for l in lines], "CANCELLED", stamp, counters)
    return to_add


def decode(ticket):
    if not isinstance(ticket, dict):
        raise ValueError("the ticket is not a JSON object")
    number, status = ticket.get("taxNumber"), ticket.get("status")
    if not isinstance(number, str) or not GRAMMAR.match(number):
        raise ValueError("taxNumber is missing or invalid")
    if not isinstance(status, str) or not status.strip():
        raise ValueError("status is missing")
    updated = utc(ticket["lastUpdated"]) if ticket.get("lastUpdated") is not None else None
    attributes = {c: utc(v) for k, c in ATTRIBUTES
                  if (v := (ticket.get("attributes") or {}).get(k)) is not None}
    return updated, attributes


def main(store, path):
    new = not os.path.exists(store)
    db = sqlite3.connect(store, isolation_level=None)
    if new:
        os.chmod(store, 0o600)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    if db.execute("PRAGMA user_version").fetchone()[0] == 0:
        db.executescript("BEGIN;" + schema() + "PRAGMA user_version = 1; COMMIT;")
    with open(path, "rb") as f:
        document = json.loads(f.read().decode("utf-8"))
    tickets = document.get("result") or document.get("tickets") or document.get("items")
    if not isinstance(tickets, list):
        sys.exit("bad data: no ticket list")
    skip = {r[0] for r in db.execute("SELECT ticket_number FROM skip_ticket")}
    counters = dict.fromkeys(["fetched", "stored", "unchanged", "skipped", "stale", "failed",
                              "contacts_created", "contacts_updated", "distributions_created",
                              "distributions_updated"], 0)
    counters["fetched"] = len(tickets)
    stamp = now()
    db.execute("BEGIN IMMEDIATE")
    run_id = db.execute("INSERT INTO sync_run (command, started_at) VALUES ('replay', ?)",
                        (stamp,)).lastrowid
    select = "SELECT %s FROM ticket WHERE ticket_number = ?" % ", ".join(COLUMNS)
    upsert = ("INSERT INTO ticket (%s) VALUES (%s) ON CONFLICT (ticket_number) DO UPDATE SET %s"
              % (", ".join(COLUMNS), ", ".join("?" * len(COLUMNS)),
                 ", ".join("%s = excluded.%s" % (c, c) for c in COLUMNS
                           if c not in ("ticket_number", "s360_state", "first_synced_at"))))
    for ticket in tickets:
        number = ticket.get("taxNumber") if isinstance(ticket, dict) else None
        if number in skip:
            counters["skipped"] += 1
            continue
        try:
            updated, attributes = decode(ticket)
        except (ValueError, TypeError, AttributeError) as error:
            counters["failed"] += 1
            db.execute("INSERT INTO sync_error (run_id, ticket_number, reason, payload)"
                       " VALUES (?,?,?,?)", (run_id, number if isinstance(number, str) else None,
                                             str(error), json.dumps(ticket)))
            continue
        found = db.execute(select, (number,)).fetchone()
        stored = dict(zip(COLUMNS, found)) if found else None
        if stored and updated and stored["tixngo_updated_at"] and stored["tixngo_updated_at"] > updated:
            counters["stale"] += 1
            continue
        row = dict(stored) if stored else dict.fromkeys(COLUMNS)
        if not stored:
            row.update(ticket_number=number, s360_state="PRINTED", first_synced_at=stamp)
        row["mobile_status"] = ticket["status"]
        for field, column in [("ticketId", "tixngo_ticket_id"), ("barcode", "barcode"),
                              ("eventId", "event_id")]:
            if ticket.get(field) is not None:
                row[column] = ticket[field]
        if updated:
            row["tixngo_updated_at"] = updated
        for field, column in OWNER:
            value = (ticket.get("spectatorDetails") or {}).get(field)
            if value is not None:
                row["owner_" + column] = value
        if "holder" in ticket and ticket["holder"] is None:
            for _, column in HOLDER:
                row["holder_" + column] = None
        for field, column in HOLDER:
            value = (ticket.get("holder") or {}).get(field)
            if value is not None:
                row["holder_" + column] = value
        for field, column in [("previousOwner", "previous_owner_email"),
                              ("initialOwner", "initial_owner_email")]:
            value = (ticket.get(field) or {}).get("email")
            if value is not None:
                row[column] = value
        row.update(attributes)
        changed = stored is None or row != stored
        history = stored is None or any(
            row[c] != stored[c] for c in ("mobile_status", "holder_first_name", "holder_last_name")
        ) or key(row["owner_email"]) != key(stored["owner_email"])
        to_add = contacts(db, stored, row, ticket, stamp, run_id, counters)
        row["last_synced_at"] = stamp
        db.execute(upsert, [row[c] for c in COLUMNS])
        if history:
            db.execute("INSERT INTO ticket_history (ticket_number, mobile_status, owner_email,"
                       " holder_first_name, holder_last_name, tixngo_updated_at, run_id,"
                       " recorded_at) VALUES (?,?,?,?,?,?,?,?)",
                       (number, row["mobile_status"], row["owner_email"], row["holder_first_name"],
                        row["holder_last_name"], row["tixngo_updated_at"], run_id, stamp))
        for old, new_id, status in to_add:
            add_line(db, number, old, new_id, status, stamp, run_id, counters)
        counters["stored" if changed else "unchanged"] += 1
    db.execute("UPDATE sync_run SET finished_at=?, fetched=?, stored=?, unchanged=?, skipped=?,"
               " stale=?, failed=?, contacts_created=?, contacts_updated=?,"
               " distributions_created=?, distributions_updated=?, exit_code=? WHERE id=?",
               [now()] + list(counters.values()) + [2 if counters["failed"] else 0, run_id])
    db.execute("COMMIT")
    db.close()
    print("replay: " + ", ".join("%d %s" % (v, k) for k, v in counters.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
