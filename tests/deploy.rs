//! The files of `deploy/`: the Prometheus alerting rules pass `promtool check rules` and their
//! unit tests (`promtool test rules`). Without promtool the test says loudly that it skipped;
//! with `TIXNGO_REQUIRE_PROMTOOL=1` (CI sets it) a missing promtool fails it.

use std::path::Path;
use std::process::Command;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// Runs promtool with `args` in `deploy/`; `None` when promtool is not installed.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(Path::new(DEPLOY))
        .output()
    {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

#[test]
fn the_alerting_rules_pass_promtool_check_and_their_unit_tests() {
    let required = std::env::var_os("TIXNGO_REQUIRE_PROMTOOL").is_some_and(|v| v == "1");
    for args in [
        &["check", "rules", "tixngo-feedback.rules.yml"][..],
        &["test", "rules", "tixngo-feedback.rules.test.yml"],
    ] {
        let Some(output) = promtool(args) else {
            assert!(
                !required,
                "TIXNGO_REQUIRE_PROMTOOL=1 but promtool is not installed"
            );
            eprintln!(
                "\n*** SKIPPED: promtool is not installed, the alerting rules in deploy/ were NOT \
                 checked (apt-get install prometheus, or set TIXNGO_REQUIRE_PROMTOOL=1 to fail) ***\n"
            );
            return;
        };
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
