//! SPEC §4.4 through the real binary: statuses as TIXNGO sends them, milestones that clear,
//! S-360's distribution history columns, the holder's beneficiary fields, the field names the
//! mapping tolerates, the sentinel that names what it cannot use, and the generated organizer's
//! stories (re-injection, deactivation, legacy and sloppy statuses, V4 assignment) in the store.

use crate::support;

use serde_json::{Value, json};
use support::{API_KEY, Env, Feed, Simulator, ticket};

/// A ticket with an owner (so that no contact rule has anything to warn about).
fn owned(number: &str, status: &str, updated: &str) -> Value {
    let mut event = ticket(number, status, updated);
    event["spectatorDetails"] = json!({ "email": format!("{number}@example.org") });
    event
}

fn sim(events: Vec<Value>) -> Simulator {
    Simulator::start(Feed::from_events(events), API_KEY)
}

/// Syncs the whole feed, one ticket per batch, in one process; returns the `--json` summary.
fn sync_one_by_one(env: &Env, sim: &Simulator) -> Value {
    env.sync(sim)
        .args(&["--batch-size", "1", "--max-batches", "100"])
        .json()
}

/// A ticket's columns, as text.
fn row(env: &Env, number: &str, columns: &str) -> Vec<String> {
    env.rows(&format!(
        "SELECT {columns} FROM ticket WHERE ticket_number = '{number}'"
    ))
    .pop()
    .unwrap_or_else(|| panic!("ticket {number} is not stored"))
}

#[test]
fn statuses_are_stored_normalised_and_an_unknown_one_is_counted_named_and_warned_once() {
    let pending = |number: &str, status: &str, updated: &str| {
        let mut event = owned(number, status, updated);
        event["transfer"] = json!({ "recipientEmail": "bob@example.org" });
        event
    };
    let sim = sim(vec![
        owned("T1", " downloaded\t", "2026-03-01T08:00:00Z"),
        pending("T2", "Pending", "2026-03-01T08:01:00Z"),
        pending("T3", "PENDING_TRANFER", "2026-03-01T08:02:00Z"),
        owned("T4", "Suspended", "2026-03-01T08:03:00Z"),
        owned("T5", " SUSPENDED", "2026-03-01T08:04:00Z"),
        owned("T6", "TRANSFER_LOCKED", "2026-03-01T08:05:00Z"),
    ]);
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "1", "--max-batches", "100", "--json"])
        .run();
    let summary = ran.json();
    assert_eq!(summary["exit_code"], 0, "{summary}");
    assert_eq!(summary["fetched"], 6);
    assert!(summary["batches"].as_i64() >= Some(6), "{summary}");
    assert_eq!(
        summary["unknown_statuses"],
        json!({ "SUSPENDED": 2, "TRANSFER_LOCKED": 1 })
    );
    let warnings: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the whole run:\n{}",
        ran.stderr
    );
    assert!(warnings[0].contains("SUSPENDED (2), TRANSFER_LOCKED (1)"));
    assert_eq!(
        env.rows("SELECT mobile_status FROM ticket ORDER BY ticket_number"),
        [
            ["DOWNLOADED"],
            ["PENDING_TRANSFER"],
            ["PENDING_TRANSFER"],
            ["SUSPENDED"],
            ["SUSPENDED"],
            ["TRANSFER_LOCKED"]
        ]
    );
    assert_eq!(
        env.int("SELECT count(*) FROM distribution WHERE status = 'PENDING'"),
        2,
        "the legacy and the misspelt status are pending transfers"
    );
    assert_eq!(
        env.int(
            "SELECT count(*) FROM ticket_history WHERE mobile_status <> upper(trim(mobile_status))"
        ),
        0,
        "the history holds the normalised status too"
    );
    // The same status in another spelling is no change.
    let again = sim_again(&env, owned("T1", "DOWNLOADED", "2026-03-01T08:00:00Z"));
    assert_eq!(
        (again["stored"].as_i64(), again["unchanged"].as_i64()),
        (Some(0), Some(1))
    );
}

/// Syncs one more event from the start of a new feed, with `--pagination-key ''`.
fn sim_again(env: &Env, event: Value) -> Value {
    let sim = sim(vec![event]);
    env.sync(&sim).args(&["--pagination-key", ""]).json()
}

#[test]
fn an_explicit_null_milestone_clears_it_and_an_absent_one_keeps_it() {
    let mut activated = owned("T1", "ONLINE_ACTIVATED", "2026-03-01T08:00:00Z");
    activated["attributes"] = json!({
        "downloadedAt": "2026-03-01T07:00:00Z",
        "activatedAt": "2026-03-01T08:00:00Z",
        "deletedAt": "2026-02-01T00:00:00Z"
    });
    let mut deactivated = owned("T1", "DEACTIVATED", "2026-03-01T09:00:00Z");
    deactivated["attributes"] = json!({ "activatedAt": null, "deletedAt": null });
    let sim = sim(vec![activated, deactivated]);
    let env = Env::new();
    let summary = sync_one_by_one(&env, &sim);
    assert_eq!(summary["stored"], 2, "{summary}");
    assert_eq!(
        row(&env, "T1", "downloaded_at, activated_at, deleted_at"),
        ["2026-03-01T07:00:00.000Z", "NULL", "NULL"]
    );
}

#[test]
fn distribution_lines_name_the_operator_login_the_ticket_state_and_the_time_of_the_change() {
    let events = vec![
        owned("T1", "DOWNLOADED", "2026-03-01T08:00:00+01:00"),
        {
            let mut pending = owned("T1", "PENDING_TRANSFER", "2026-03-01T09:30:00+01:00");
            pending["transfer"] = json!({ "recipientEmail": "bob@example.org" });
            pending
        },
        {
            let mut pending = owned("T2", "PENDING_TRANSFER", "2026-03-01T09:40:00Z");
            pending["transfer"] = json!({ "recipientEmail": "bob@example.org" });
            pending.as_object_mut().unwrap().remove("lastUpdated");
            pending
        },
    ];
    let sim = sim(events);
    let env = Env::new();
    env.sync(&sim)
        .env("TIXNGO_OPERATOR_LOGIN", "ENV_LOGIN")
        .args(&["--operator-login", "FEEDBACK_NIGHT"])
        .run();
    let lines = env.rows(
        "SELECT ticket_number, status, operator_login, ticket_state, date_time = created_at
         FROM distribution ORDER BY id",
    );
    assert_eq!(
        lines,
        [
            ["T1", "PENDING", "FEEDBACK_NIGHT", "PRINTED", "0"],
            // Without lastUpdated, the time of the change is the run's.
            ["T2", "PENDING", "FEEDBACK_NIGHT", "PRINTED", "1"],
        ]
    );
    assert_eq!(
        env.text("SELECT date_time FROM distribution WHERE ticket_number = 'T1'"),
        Some("2026-03-01T08:30:00.000Z".into())
    );
    // The variable, then the default, when no flag says otherwise.
    for (login, expected) in [(Some("ENV_LOGIN"), "ENV_LOGIN"), (None, "TIXNGO_FEEDBACK")] {
        let env = Env::new();
        let mut run = env.sync(&sim);
        if let Some(login) = login {
            run = run.env("TIXNGO_OPERATOR_LOGIN", login);
        }
        run.run();
        assert_eq!(
            env.rows("SELECT DISTINCT operator_login FROM distribution"),
            [[expected]]
        );
    }
}

#[test]
fn the_migration_fills_the_distribution_history_columns_of_lines_written_before_it() {
    let mut pending = owned("T1", "PENDING_TRANSFER", "2026-03-01T09:30:00Z");
    pending["transfer"] = json!({ "recipientEmail": "bob@example.org" });
    let sim = sim(vec![pending]);
    let env = Env::new();
    env.sync(&sim).run();
    // Take the store back to the schema before this migration, as an older binary left it.
    let version = env.schema_version();
    env.execute(
        "ALTER TABLE distribution DROP COLUMN operator_login;
         ALTER TABLE distribution DROP COLUMN ticket_state;
         ALTER TABLE distribution DROP COLUMN date_time;
         ALTER TABLE ticket DROP COLUMN holder_birth_place;
         ALTER TABLE ticket DROP COLUMN holder_birth_region;
         ALTER TABLE ticket DROP COLUMN holder_country_code;
         ALTER TABLE sync_run DROP COLUMN unknown_fields;
         UPDATE distribution SET created_at = '2026-03-02T00:00:00.000Z';",
    );
    env.set_schema_version(version - 1);
    env.sync(&sim).arg("--dry-run").run();
    env.sync(&sim).run();
    assert_eq!(env.schema_version(), version);
    assert_eq!(
        env.rows("SELECT operator_login, ticket_state, date_time FROM distribution"),
        [["TIXNGO_FEEDBACK", "PRINTED", "2026-03-01T09:30:00.000Z"]],
        "the old line is filled from the history of the run that wrote it"
    );
    // Another S-360 tool that names only the columns it knows can still insert a line.
    env.execute(
        "INSERT INTO distribution (ticket_number, new_contact_id, status, created_at, updated_at)
         VALUES ('T1', 1, 'CANCELLED', '2026-03-03T00:00:00.000Z', '2026-03-03T00:00:00.000Z')",
    );
}

#[test]
fn the_holder_is_read_as_assignee_too_with_birth_place_region_and_country_code() {
    let mut assigned = owned("T1", "ASSIGNED", "2026-03-01T08:00:00Z");
    assigned["assignee"] = json!({
        "firstName": "Zoë", "lastName": "Müller", "birthPlace": "Genève",
        "birthRegion": "GE", "countryCode": "CH"
    });
    let mut dated = owned("T2", "DOWNLOADED", "2026-03-01T08:00:00Z");
    dated.as_object_mut().unwrap().remove("lastUpdated");
    dated["lastUpdate"] = json!("2026-03-01T10:00:00+02:00");
    let sim = sim(vec![assigned, dated]);
    let env = Env::new();
    let summary = env.sync(&sim).json();
    assert_eq!(summary["unknown_fields"], json!([]), "{summary}");
    assert_eq!(
        row(
            &env,
            "T1",
            "holder_first_name, holder_birth_place, holder_birth_region, holder_country_code"
        ),
        ["Zoë", "Genève", "GE", "CH"]
    );
    assert_eq!(
        row(&env, "T2", "tixngo_updated_at"),
        ["2026-03-01T08:00:00.000Z"]
    );
    // lastUpdate protects against stale states as lastUpdated does.
    let mut older = owned("T2", "INJECTED", "2026-03-01T07:00:00Z");
    older.as_object_mut().unwrap().remove("lastUpdated");
    older["lastUpdate"] = json!("2026-03-01T07:00:00Z");
    assert_eq!(sim_again(&env, older)["stale"], 1);
}

#[test]
fn fields_the_mapping_does_not_read_are_named_in_json_in_sync_run_in_the_log_and_in_status() {
    let mut event = owned("T1", "DOWNLOADED", "2026-03-01T08:00:00Z");
    event["eventName"] = json!("Final secret-venue");
    event["spectatorDetails"]["nickName"] = json!("secret-nick");
    let sim = sim(vec![event]);
    let env = Env::new();
    let ran = env.sync(&sim).args(&["--json", "-v"]).run();
    let summary = ran.json();
    let names = json!(["eventName", "spectatorDetails.nickName"]);
    assert_eq!(summary["unknown_fields"], names);
    assert!(
        ran.stderr.contains(
            "ticket fields the mapping does not read: eventName, spectatorDetails.nickName"
        ),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("secret") && !ran.stdout.contains("secret"));
    assert_eq!(
        env.text("SELECT unknown_fields FROM sync_run"),
        Some(names.to_string())
    );
    let status = env.cmd(&["status", "--json"]).run().json();
    assert_eq!(status["unknown_fields"], names);
    env.cmd(&["status"])
        .stdout_has(
            "ticket fields the mapping does not read (last sync or replay): eventName, \
             spectatorDetails.nickName",
        )
        .run();
    // Without -v the names are not logged: they are no warning.
    env.sync(&sim).arg("--pagination-key=").stderr_empty().run();
}

#[test]
fn batches_without_timestamps_owner_e_mails_or_any_mapped_field_are_warned_about_once() {
    let untimed = |number: &str| {
        let mut event = owned(number, "DOWNLOADED", "2026-03-01T08:00:00Z");
        event.as_object_mut().unwrap().remove("lastUpdated");
        event
    };
    let sim = sim(vec![untimed("T1"), untimed("T2"), untimed("T3")]);
    let env = Env::new();
    let ran = env
        .sync(&sim)
        .args(&["--batch-size", "1", "--max-batches", "10"])
        .run();
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(
            "3 of 3 batches: no ticket has a timestamp (looked for lastUpdated, lastUpdate): \
             stale protection is off for them"
        ),
        "{}",
        ran.stderr
    );
    let renamed = |number: &str| {
        json!({ "taxNumber": number, "status": "DOWNLOADED", "updatedAt": "2026-03-01T08:00:00Z",
                "owner": { "mail": "a@example.org" } })
    };
    let sim2 = Simulator::start(
        Feed::from_events(vec![renamed("T4"), renamed("T5")]),
        API_KEY,
    );
    let ran = Env::new().sync(&sim2).arg("--json").run();
    assert_eq!(ran.json()["unknown_fields"], json!(["owner", "updatedAt"]));
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("1 of 1 batches: no ticket has any field the mapping reads")
    );
    assert!(ran.stderr.contains("spectatorDetails"));
    // Tickets injected and not yet downloaded have no owner: the normal state, no warning.
    let injected = |number: &str| {
        let mut event = ticket(number, "INJECTED", "2026-03-01T08:00:00Z");
        event["barcode"] = json!("0001");
        event
    };
    let sim4 = Simulator::start(
        Feed::from_events(vec![injected("T7"), injected("T8")]),
        API_KEY,
    );
    Env::new()
        .sync(&sim4)
        .args(&["--batch-size", "1", "--max-batches", "10"])
        .stderr_empty()
        .run();
    let ownerless = ticket("T6", "DOWNLOADED", "2026-03-01T08:00:00Z");
    let sim3 = Simulator::start(Feed::from_events(vec![ownerless]), API_KEY);
    Env::new()
        .sync(&sim3)
        .stderr_has(
            "no ticket a spectator holds has an owner e-mail (looked for spectatorDetails.email)",
        )
        .run();
}

#[test]
fn a_ticket_dated_more_than_a_day_ahead_is_a_mapping_failure_and_never_makes_later_changes_stale() {
    let env = Env::new();
    let sim1 = sim(vec![
        owned("T1", "DOWNLOADED", "2026-03-01T08:00:00Z"),
        owned("T1", "ONLINE_ACTIVATED", "9999-12-31T00:00:00Z"),
    ]);
    let summary = env.sync(&sim1).code(2).json();
    assert_eq!(
        (summary["stored"].as_i64(), summary["failed"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        row(&env, "T1", "mobile_status, tixngo_updated_at"),
        ["DOWNLOADED", "2026-03-01T08:00:00.000Z"]
    );
    assert_eq!(
        env.text("SELECT reason FROM sync_error WHERE ticket_number = 'T1'"),
        Some("lastUpdated is more than 24 h ahead of this host's clock".into())
    );
    // The next real change is stored, and resolves the error.
    let summary = sim_again(&env, owned("T1", "CONTROLLED", "2026-03-02T08:00:00Z"));
    assert_eq!(summary["stored"], 1, "{summary}");
    assert_eq!(row(&env, "T1", "mobile_status"), ["CONTROLLED"]);
    assert_eq!(
        env.int("SELECT count(*) FROM sync_error WHERE resolved_at IS NULL"),
        0
    );
}

#[test]
fn the_diff_path_and_the_api_key_header_can_be_set_by_flag_or_variable() {
    let sim = Simulator::start(Feed::generate(5, 20), API_KEY);
    let env = Env::new();
    // The simulator serves /diff and wants x-api-key: another header is refused (77), another
    // path is not found (78), each as sent.
    env.sync(&sim)
        .args(&["--api-key-header", "X-Api-Token"])
        .code(77)
        .run();
    env.sync(&sim)
        .env("TIXNGO_DIFF_PATH", "/v2/diff")
        .code(78)
        .run();
    env.sync(&sim)
        .env("TIXNGO_API_KEY_HEADER", "X-API-KEY")
        .args(&["--diff-path", "/diff"])
        .run();
    let requests = sim.requests();
    assert_eq!(requests[0].header("x-api-token"), Some(API_KEY));
    assert_eq!(requests[0].header("x-api-key"), None);
    assert_eq!(requests[1].path, "/organizer/tickets/v2/diff");
    assert_eq!(requests[2].header("x-api-key"), Some(API_KEY));
    assert!(env.int("SELECT count(*) FROM ticket") > 0);
    for (flag, bad) in [
        ("--diff-path", "diff"),
        ("--diff-path", "/diff?limit=1"),
        ("--api-key-header", "x api key"),
        ("--api-key-header", "x-key:"),
    ] {
        env.sync(&sim)
            .args(&[flag, bad])
            .code(64)
            .stderr_has(flag)
            .run();
    }
    let bad_variable = env
        .sync(&sim)
        .env("TIXNGO_DIFF_PATH", "/diff#top")
        .code(64)
        .run();
    assert_eq!(
        bad_variable.stderr.lines().count(),
        1,
        "{}",
        bad_variable.stderr
    );
}

#[test]
fn a_clean_multi_batch_run_of_the_generated_organizer_prints_nothing_on_stderr() {
    let sim = Simulator::start(Feed::generate(3, 400), API_KEY);
    let env = Env::new();
    let summary = env
        .sync(&sim)
        .args(&["--batch-size", "100", "--max-batches", "100", "--json"])
        .stderr_empty()
        .run()
        .json();
    assert!(summary["batches"].as_i64() > Some(5), "{summary}");
    assert_eq!(summary["unknown_statuses"], json!({}));
    // With undocumented statuses, over many batches: one warning for the run.
    let sim = Simulator::start(Feed::generate_with_unknown_statuses(3, 400), API_KEY);
    let ran = Env::new()
        .sync(&sim)
        .args(&["--batch-size", "100", "--max-batches", "100", "--json"])
        .run();
    let summary = ran.json();
    let count = summary["unknown_statuses"][tixngo_sim::UNKNOWN_STATUS]
        .as_i64()
        .unwrap_or(0);
    assert!(count > 1, "{summary}");
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!("SUSPENDED ({count})")),
        "{}",
        ran.stderr
    );
}

#[test]
fn the_generated_stories_leave_the_store_as_the_rules_say() {
    let sim = Simulator::start(Feed::generate(17, 1200), API_KEY);
    let env = Env::new();
    env.sync(&sim)
        .args(&["--batch-size", "500", "--max-batches", "100"])
        .stderr_empty()
        .run();
    let count = |sql: &str| env.int(sql);
    // Every status stored is a documented one in its normal form; RESALE_PENDING is a deletion
    // reason, never a status, and the legacy PENDING is a pending transfer.
    assert_eq!(
        count(
            "SELECT count(*) FROM ticket WHERE mobile_status NOT IN ('INJECTED', 'DOWNLOADED',
             'ASSIGNED', 'CONTROLLED', 'PENDING_TRANSFER', 'FAILURE_TRANSFER', 'TRANSFERRED',
             'BT_ACTIVATED', 'MANUAL_ACTIVATED', 'OFFLINE_ACTIVATED', 'ONLINE_ACTIVATED',
             'DELETION_PENDING', 'DELETED', 'DEACTIVATED', 'FAILURE', 'NOT_DOWNLOADED')"
        ),
        0
    );
    // Re-injected tickets: seen deleted, now live again, no longer marked deleted.
    let reinjected = count(
        "SELECT count(*) FROM ticket t WHERE t.mobile_status IN ('INJECTED', 'DOWNLOADED')
         AND EXISTS (SELECT 1 FROM ticket_history h
                     WHERE h.ticket_number = t.ticket_number AND h.mobile_status = 'DELETED')",
    );
    assert!(reinjected > 0);
    assert_eq!(
        count(
            "SELECT count(*) FROM ticket t WHERE t.mobile_status IN ('INJECTED', 'DOWNLOADED')
             AND t.deleted_at IS NOT NULL"
        ),
        0
    );
    // Deactivated tickets are no longer activated; checked-out ones no longer controlled.
    assert!(count("SELECT count(*) FROM ticket WHERE mobile_status = 'DEACTIVATED'") > 0);
    assert_eq!(
        count(
            "SELECT count(*) FROM ticket WHERE mobile_status = 'DEACTIVATED' AND activated_at IS NOT NULL"
        ),
        0
    );
    assert!(
        count(
            "SELECT count(*) FROM ticket t WHERE t.mobile_status LIKE '%ACTIVATED'
             AND t.checked_at IS NOT NULL AND t.controlled_at IS NULL"
        ) > 0,
        "a check-out clears controlledAt and keeps checkedAt"
    );
    // The legacy PENDING made pending lines that the transfer then confirmed.
    assert!(
        count("SELECT count(*) FROM ticket_history WHERE mobile_status = 'PENDING_TRANSFER'") > 0
    );
    // Deleted while pending: the pending line is cancelled.
    assert_eq!(
        count(
            "SELECT count(*) FROM distribution d JOIN ticket t USING (ticket_number)
             WHERE d.status = 'PENDING' AND t.mobile_status <> 'PENDING_TRANSFER'"
        ),
        0
    );
    // A V4 assignment: a downloaded ticket with a holder.
    assert!(
        count(
            "SELECT count(*) FROM ticket WHERE mobile_status = 'DOWNLOADED'
             AND holder_first_name IS NOT NULL AND assigned_at IS NOT NULL"
        ) > 0
    );
    // Every line names the job's login, the ticket's state and the change's time.
    assert_eq!(
        count(
            "SELECT count(*) FROM distribution WHERE operator_login IS DISTINCT FROM 'TIXNGO_FEEDBACK'
             OR ticket_state IS DISTINCT FROM 'PRINTED' OR date_time IS NULL"
        ),
        0
    );
    assert!(count("SELECT count(*) FROM distribution") > 0);
}

/// A string holding a NUL character (JSON `\u0000`) fails its ticket alone, on either store:
/// PostgreSQL's `text` cannot hold one, so storing it would fail the whole batch run after run
/// (the feed stuck on one ticket), and SQLite must not keep what PostgreSQL cannot. A ticket
/// number with one leaves an unnumbered error.
#[test]
fn a_nul_character_in_a_string_fails_its_ticket_alone_on_either_store() {
    let env = Env::new();
    let mut in_a_name = owned("T2", "DOWNLOADED", "2026-03-01T08:00:00Z");
    in_a_name["spectatorDetails"]["firstName"] = json!("Ann\u{0}e");
    let in_the_number = owned("T\u{0}3", "DOWNLOADED", "2026-03-01T08:00:00Z");
    let mut events: Vec<Value> = (10..20)
        .map(|n| owned(&format!("T{n}"), "DOWNLOADED", "2026-03-01T08:00:00Z"))
        .collect();
    events.extend([in_a_name, in_the_number]);
    let summary = env.sync(&sim(events)).code(2).json();
    assert_eq!(
        (summary["stored"].as_i64(), summary["failed"].as_i64()),
        (Some(10), Some(2)),
        "{summary}"
    );
    let errors =
        env.rows("SELECT coalesce(ticket_number, '-'), reason FROM sync_error ORDER BY id");
    let numbers: Vec<&str> = errors.iter().map(|e| e[0].as_str()).collect();
    assert_eq!(numbers, ["T2", "-"]);
    for error in &errors {
        assert!(
            error[1]
                .starts_with("a string holding a NUL character (\\u0000), which no store keeps"),
            "{error:?}"
        );
    }
    assert_eq!(env.int("SELECT count(*) FROM ticket"), 10);
}

/// A ticket row another S-360 tool inserted without the feedback's sync times is updated like
/// any other, on either store: `first_synced_at` (set once) stays NULL, `last_synced_at` is set.
#[test]
fn a_row_another_tool_inserted_without_sync_times_is_updated_and_keeps_them_null_where_set_once() {
    let env = Env::new();
    let sim1 = sim(vec![owned("T1", "DOWNLOADED", "2026-03-01T08:00:00Z")]);
    env.sync(&sim1).run();
    env.execute(
        "INSERT INTO ticket (ticket_number, mobile_status, s360_state) VALUES ('T2', 'INJECTED', 'PRINTED')",
    );
    let summary = sim_again(&env, owned("T2", "DOWNLOADED", "2026-03-01T09:00:00Z"));
    assert_eq!(summary["stored"], 1, "{summary}");
    let set = |column: &str| format!("CASE WHEN {column} IS NULL THEN 'NULL' ELSE 'set' END");
    let columns = format!(
        "mobile_status, s360_state, {}, {}",
        set("first_synced_at"),
        set("last_synced_at")
    );
    assert_eq!(
        row(&env, "T2", &columns),
        ["DOWNLOADED", "PRINTED", "NULL", "set"]
    );
}
