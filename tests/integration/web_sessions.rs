//! Browser sessions (SPEC 3): login, cookies, sliding expiry, logout.

use crate::support::{TestServer, count};

#[test]
fn login_creates_one_row_and_sets_a_hashed_key_cookie() {
    let server = TestServer::start();
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
    let key = server.login("root", "root-password");
    assert_eq!(key.len(), 64);
    let conn = server.conn();
    assert_eq!(count(&conn, "web_sessions"), 1);
    let stored: Vec<u8> =
        conn.query_row("SELECT key_hash FROM web_sessions", [], |r| r.get(0)).unwrap();
    assert_ne!(hex::encode(&stored), key, "the key itself is never stored");
    let home = server.get_with_cookie("/", &key);
    assert_eq!(home.status, 200);
    assert!(home.body.contains("root"));
}
