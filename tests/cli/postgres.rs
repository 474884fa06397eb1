//! The PostgreSQL store (SPEC §10), against the throwaway cluster of `support::pg`.

use crate::support::pg;

#[test]
fn the_test_cluster_takes_password_logins_over_tcp() {
    let Some(cluster) = pg::cluster() else { return };
    let (role, password) = cluster.role();
    let mut client = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user(&role)
        .password(&password)
        .dbname("postgres")
        .connect(postgres::NoTls)
        .expect("a password login over TCP");
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, role);
    let wrong = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user(&role)
        .password("wrong")
        .dbname("postgres")
        .connect(postgres::NoTls);
    assert!(wrong.is_err(), "a wrong password was accepted");
}
