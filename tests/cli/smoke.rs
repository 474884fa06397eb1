use crate::support;

use support::{API_KEY, Env, Feed, Simulator};

#[test]
fn a_sync_against_the_simulator_stores_a_batch_and_saves_the_key() {
    let sim = Simulator::start(Feed::generate(7, 300), API_KEY);
    let env = Env::new();
    let summary = env.sync(&sim).arg("--batch-size").arg("100").json();
    assert_eq!(summary["fetched"], 100);
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(
        env.stored_key().as_deref(),
        summary["next_pagination_key"].as_str()
    );
    let request = &sim.requests()[0];
    assert_eq!(request.header("x-api-key"), Some(API_KEY));
    assert_eq!(request.query_param("limit"), Some("100"));
    assert_eq!(request.query_param("paginationKey"), None);
}
