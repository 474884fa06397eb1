//! The store's schema, as forward migrations: `MIGRATIONS[n]` takes `PRAGMA user_version` from n
//! to n + 1. Never edit a released migration; append a new one.
//!
//! Other S-360 tools insert rows naming only the columns of SPEC §4.3, so every column added
//! beyond those is nullable, has a default or is generated, and `contact.email_key` (the look-up
//! key) is generated from `email` alone.

pub(crate) const MIGRATIONS: &[&str] = &[V1, V2_ERROR_TRIAGE, V3_FEED_POSITION, V4_DOMAIN];

const V1: &str = r#"
CREATE TABLE contact (
    id                       INTEGER PRIMARY KEY,
    email                    TEXT NOT NULL,
    title                    TEXT,
    first_name               TEXT,
    last_name                TEXT,
    birth_date               TEXT,
    nationality              TEXT,
    id_number                TEXT,
    phone                    TEXT,
    residence_country        TEXT,
    language                 TEXT,
    accept_institution_email INTEGER CHECK (accept_institution_email IN (0, 1)),
    accept_third_party_email INTEGER CHECK (accept_third_party_email IN (0, 1)),
    temporary                INTEGER DEFAULT 0 CHECK (temporary IN (0, 1)),
    has_internet_account     INTEGER DEFAULT 0 CHECK (has_internet_account IN (0, 1)),
    kind                     TEXT DEFAULT 'individual' CHECK (kind IN ('individual', 'relay')),
    created_at               TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at               TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- The look-up key: trimmed and ASCII-lowercased, as the feedback compares e-mails.
    email_key                TEXT GENERATED ALWAYS AS (lower(trim(email, ' ' || char(9, 10, 13)))) VIRTUAL
);
CREATE INDEX contact_by_email_key ON contact (email_key);

CREATE TABLE sync_run (
    id                    INTEGER PRIMARY KEY,
    command               TEXT NOT NULL,
    started_at            TEXT NOT NULL,
    finished_at           TEXT,
    key_before            TEXT,
    key_after             TEXT,
    fetched               INTEGER NOT NULL DEFAULT 0,
    stored                INTEGER NOT NULL DEFAULT 0,
    unchanged             INTEGER NOT NULL DEFAULT 0,
    skipped               INTEGER NOT NULL DEFAULT 0,
    stale                 INTEGER NOT NULL DEFAULT 0,
    failed                INTEGER NOT NULL DEFAULT 0,
    contacts_created      INTEGER NOT NULL DEFAULT 0,
    contacts_updated      INTEGER NOT NULL DEFAULT 0,
    distributions_created INTEGER NOT NULL DEFAULT 0,
    distributions_updated INTEGER NOT NULL DEFAULT 0,
    exit_code             INTEGER,
    error                 TEXT
);

CREATE TABLE ticket (
    ticket_number           TEXT PRIMARY KEY NOT NULL,
    tixngo_ticket_id        TEXT,
    barcode                 TEXT,
    event_id                TEXT,
    s360_state              TEXT,
    mobile_status           TEXT NOT NULL,
    tixngo_updated_at       TEXT,
    owner_email             TEXT,
    owner_title             TEXT,
    owner_first_name        TEXT,
    owner_last_name         TEXT,
    owner_birth_date        TEXT,
    owner_nationality       TEXT,
    owner_id_number         TEXT,
    owner_phone             TEXT,
    owner_residence_country TEXT,
    owner_language          TEXT,
    holder_first_name       TEXT,
    holder_last_name        TEXT,
    holder_birth_date       TEXT,
    holder_id_number        TEXT,
    holder_nationality      TEXT,
    previous_owner_email    TEXT,
    initial_owner_email     TEXT,
    injected_at             TEXT,
    downloaded_at           TEXT,
    assigned_at             TEXT,
    activated_at            TEXT,
    checked_at              TEXT,
    controlled_at           TEXT,
    deleted_at              TEXT,
    cultural_contact_id     INTEGER REFERENCES contact (id),
    first_synced_at         TEXT,
    last_synced_at          TEXT
);
CREATE INDEX ticket_by_cultural_contact ON ticket (cultural_contact_id);

CREATE TABLE ticket_history (
    id                INTEGER PRIMARY KEY,
    ticket_number     TEXT NOT NULL REFERENCES ticket (ticket_number),
    mobile_status     TEXT NOT NULL,
    owner_email       TEXT,
    holder_first_name TEXT,
    holder_last_name  TEXT,
    tixngo_updated_at TEXT,
    run_id            INTEGER REFERENCES sync_run (id),
    recorded_at       TEXT NOT NULL
);
CREATE INDEX ticket_history_by_ticket ON ticket_history (ticket_number);

CREATE TABLE distribution (
    id             INTEGER PRIMARY KEY,
    ticket_number  TEXT NOT NULL REFERENCES ticket (ticket_number),
    old_contact_id INTEGER REFERENCES contact (id),
    new_contact_id INTEGER NOT NULL REFERENCES contact (id),
    action         TEXT NOT NULL DEFAULT 'DISTRIBUTE',
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'CANCELLED', 'CONFIRMED')),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    run_id         INTEGER REFERENCES sync_run (id)
);
CREATE INDEX distribution_by_ticket ON distribution (ticket_number, status);

CREATE TABLE sync_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pagination_key TEXT,
    updated_at     TEXT
);
INSERT INTO sync_state (id, pagination_key, updated_at) VALUES (1, NULL, NULL);

CREATE TABLE skip_ticket (
    ticket_number TEXT PRIMARY KEY NOT NULL,
    reason        TEXT,
    added_at      TEXT NOT NULL
);

CREATE TABLE sync_error (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER REFERENCES sync_run (id),
    ticket_number TEXT,
    reason        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    resolved_at   TEXT
);
CREATE INDEX sync_error_unresolved ON sync_error (ticket_number) WHERE resolved_at IS NULL;
"#;

/// `errors dismiss` keeps its reason on the error (`resolution`, NULL when a later run resolved
/// it), and `errors list` shows when an error was first seen: `run_id` moves to the latest run
/// that failed the ticket again. Older errors take their run's start as the nearest known time.
const V2_ERROR_TRIAGE: &str = r#"
ALTER TABLE sync_error ADD COLUMN resolution TEXT;
ALTER TABLE sync_error ADD COLUMN first_seen_at TEXT;
UPDATE sync_error SET first_seen_at = (SELECT started_at FROM sync_run WHERE sync_run.id = sync_error.run_id);
CREATE TRIGGER sync_error_first_seen AFTER INSERT ON sync_error WHEN NEW.first_seen_at IS NULL
BEGIN
    UPDATE sync_error SET first_seen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
"#;

/// Where each batch of a live sync left the feed, for `status` and the metrics: whether it caught
/// up, the newest `lastUpdated` it stored, how far behind the feed it ended and how many runs in
/// a row have ended behind. NULL on rows older than this migration, on failed runs and on runs
/// that do not move the live key.
const V3_FEED_POSITION: &str = r#"
ALTER TABLE sync_run ADD COLUMN caught_up INTEGER CHECK (caught_up IN (0, 1));
ALTER TABLE sync_run ADD COLUMN newest_change_at TEXT;
ALTER TABLE sync_run ADD COLUMN feed_lag_seconds REAL;
ALTER TABLE sync_run ADD COLUMN runs_behind INTEGER;
"#;

/// The holder's birth place, birth region and country code (S-360's beneficiary fields); the
/// columns of S-360's distribution history that say who wrote a line, in which state the ticket
/// was and when TIXNGO changed it (filled for the lines written before, from what the store
/// knows of them); and the ticket fields a batch held that the mapping does not read.
const V4_DOMAIN: &str = r#"
ALTER TABLE ticket ADD COLUMN holder_birth_place TEXT;
ALTER TABLE ticket ADD COLUMN holder_birth_region TEXT;
ALTER TABLE ticket ADD COLUMN holder_country_code TEXT;

ALTER TABLE distribution ADD COLUMN operator_login TEXT;
ALTER TABLE distribution ADD COLUMN ticket_state TEXT;
ALTER TABLE distribution ADD COLUMN date_time TEXT;
UPDATE distribution SET
    operator_login = 'TIXNGO_FEEDBACK',
    ticket_state = coalesce(
        (SELECT t.s360_state FROM ticket t WHERE t.ticket_number = distribution.ticket_number),
        'PRINTED'),
    date_time = coalesce(
        (SELECT max(h.tixngo_updated_at) FROM ticket_history h
         WHERE h.ticket_number = distribution.ticket_number AND h.run_id = distribution.run_id),
        created_at);

-- A JSON array of names, NULL when the batch held none.
ALTER TABLE sync_run ADD COLUMN unknown_fields TEXT;
"#;
