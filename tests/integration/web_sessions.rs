//! Browser sessions (SPEC 3): login, the cookie, sliding and absolute
//! expiry, logout, bad cookies, the login throttle and `next`.

use sessiond::users::Role;

use crate::support::{START, TestServer, count, request};

fn stored_expiry(server: &TestServer) -> i64 {
    server.conn().query_row("SELECT expire_date FROM web_sessions", [], |r| r.get(0)).unwrap()
}

fn assert_signed_out(server: &TestServer, key: &str) {
    let home = server.get_with_cookie("/", key);
    assert_eq!(home.status, 303, "expected a redirect to login: {}", home.body);
    assert_eq!(home.header("location"), Some("/login?next=%2F"));
}

#[track_caller]
fn assert_deletion_cookie(response: &crate::support::Response) {
    let cookie = response.set_cookie("sessionid").expect("a deletion cookie");
    assert!(cookie.starts_with("sessionid=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert!(cookie.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
}

#[test]
fn login_creates_one_row_and_stores_only_a_hash_of_the_key() {
    let server = TestServer::start();
    let cookie = server.login("root", "root-password");
    // The row id, a dot, and the key: 32 bytes in 64 hex characters.
    let (row, key) = cookie.split_once('.').expect("`ROW.KEY`");
    assert_eq!(key.len(), 64);
    let conn = server.conn();
    assert_eq!(count(&conn, "web_sessions"), 1);
    let (stored_row, stored): (i64, Vec<u8>) = conn
        .query_row("SELECT id, key_hash FROM web_sessions", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(row, stored_row.to_string());
    assert_ne!(hex::encode(&stored), key, "the key itself is never stored");
    let dump: String = conn
        .query_row(
            conn.by_engine(
                "SELECT group_concat(hex(key_hash) || client_addr || user_agent) FROM web_sessions",
                "SELECT string_agg(encode(key_hash, 'hex') || client_addr || user_agent, ',')
                 FROM web_sessions",
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!dump.to_lowercase().contains(key), "the key appears nowhere in the row");
    let home = server.get_with_cookie("/", &cookie);
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Signed in as root"), "{}", home.body);
}

#[test]
fn anonymous_visits_create_no_row_and_no_cookie() {
    let server = TestServer::start();
    for path in ["/", "/login", "/api/whoami", "/healthz"] {
        let response = server.get(path, &[]);
        assert_eq!(response.set_cookie("sessionid"), None, "{path}");
    }
    assert_eq!(server.get("/", &[]).header("location"), Some("/login?next=%2F"));
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
}

#[test]
fn login_always_issues_a_new_key_and_ends_the_old_session() {
    let server = TestServer::start();
    let first = server.login("root", "root-password");
    let cookie = format!("sessionid={first}");
    let again = server.post_form(
        "/login",
        &[("username", "root"), ("password", "root-password")],
        &[("Cookie", &cookie)],
    );
    assert_eq!(again.status, 303);
    let second = again.cookie_value("sessionid").unwrap();
    assert_ne!(first, second);
    assert_eq!(count(&server.conn(), "web_sessions"), 1, "the old row is gone");
    assert_signed_out(&server, &first);
    assert_eq!(server.get_with_cookie("/", &second).status, 200);
}

#[test]
fn a_key_the_server_did_not_issue_is_never_adopted() {
    let server = TestServer::start();
    let planted = "ab".repeat(32);
    let cookie = format!("sessionid={planted}");
    let response = server.post_form(
        "/login",
        &[("username", "root"), ("password", "root-password")],
        &[("Cookie", &cookie)],
    );
    let issued = response.cookie_value("sessionid").unwrap();
    assert_ne!(issued, planted);
    assert_signed_out(&server, &planted);
}

#[test]
fn cookie_has_the_documented_attributes_and_no_lifetime_by_default() {
    let server = TestServer::start();
    let response =
        server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    let cookie = response.set_cookie("sessionid").unwrap();
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    for expected in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&expected), "{cookie}");
    }
    assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[test]
fn secure_flag_and_cookie_name_follow_the_settings() {
    let server = TestServer::start_with(&[
        ("DJANGO_SESSION_COOKIE_SECURE", "yes"),
        ("DJANGO_SESSION_COOKIE_NAME", "gw_session"),
    ]);
    let response =
        server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    let cookie = response.set_cookie("gw_session").expect("cookie under the configured name");
    assert!(cookie.split("; ").any(|part| part == "Secure"), "{cookie}");
    assert_eq!(response.set_cookie("sessionid"), None);
}

#[test]
fn persistent_cookie_max_age_and_expires_match_the_stored_expiry() {
    let server = TestServer::start_with(&[
        ("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE", "false"),
        ("DJANGO_SESSION_COOKIE_AGE", "3600"),
    ]);
    let key = server.login("root", "root-password");
    server.advance(1000);
    let response = server.get_with_cookie("/", &key);
    let cookie = response.set_cookie("sessionid").unwrap();
    let stored = stored_expiry(&server);
    let now = server.clock_now();
    let attributes: Vec<&str> = cookie.split("; ").collect();
    let max_age = format!("Max-Age={}", stored - now);
    assert!(attributes.contains(&max_age.as_str()), "{cookie} vs stored {stored}");
    let expires =
        chrono::DateTime::from_timestamp(stored, 0).unwrap().format("%a, %d %b %Y %H:%M:%S GMT");
    assert!(attributes.contains(&format!("Expires={expires}").as_str()), "{cookie}");
    assert!(stored >= now + 3600 - 36, "stored expiry lags at most 1% of the age");
}

#[test]
fn activity_slides_the_expiry_past_the_cookie_age() {
    let server = TestServer::start_with(&[("DJANGO_SESSION_COOKIE_AGE", "1000")]);
    let key = server.login("root", "root-password");
    for _ in 0..5 {
        server.advance(900);
        let home = server.get_with_cookie("/", &key);
        assert_eq!(home.status, 200, "still signed in while active");
        assert!(home.set_cookie("sessionid").is_some(), "every request re-sends the cookie");
        let lag = server.clock_now() + 1000 - stored_expiry(&server);
        assert!((0..=10).contains(&lag), "stored expiry lags by {lag} s (at most 1% of 1000)");
    }
    assert!(server.clock_now() > START + 1000 * 4);
}

/// With COOKIE_AGE 7200 the stored expiry may lag 60 s (SPEC 3): a request
/// writes once it lags more than 30 s, not before.
#[test]
fn a_request_within_half_the_allowed_lag_does_not_write() {
    let server = TestServer::start_with(&[("DJANGO_SESSION_COOKIE_AGE", "7200")]);
    let key = server.login("root", "root-password");
    let at_login = stored_expiry(&server);
    server.advance(30);
    assert_eq!(server.get_with_cookie("/api/whoami", &key).status, 200);
    assert_eq!(stored_expiry(&server), at_login, "a 30 s lag is not written");
    server.advance(1);
    assert_eq!(server.get_with_cookie("/api/whoami", &key).status, 200);
    assert_eq!(stored_expiry(&server), server.clock_now() + 7200, "a 31 s lag is");
}

/// Between half and the whole of the allowed lag, a request does not wait
/// for another writer: it answers at once with the stored expiry in its
/// cookie, and a later request writes the slide.
#[test]
fn a_slide_within_the_allowed_lag_is_put_off_while_another_writer_holds_the_lock() {
    crate::support::sqlite_only!("SQLite's single writer held with `BEGIN IMMEDIATE`");
    let server = TestServer::start_with(&[
        ("DJANGO_SESSION_COOKIE_AGE", "7200"),
        ("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE", "false"),
    ]);
    let key = server.login("root", "root-password");
    let at_login = stored_expiry(&server);
    server.advance(45);
    let holder = server.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let response = server.get_with_cookie("/api/whoami", &key);

    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(stored_expiry(&server), at_login, "the write was put off");
    let cookie = response.set_cookie("sessionid").expect("the cookie is sent again");
    let max_age = at_login - server.clock_now();
    assert!(cookie.contains(&format!("Max-Age={max_age};")), "{cookie} vs stored {at_login}");
    assert_eq!(response.json()["expires"], sessiond::clock::rfc3339(at_login));

    assert_eq!(server.get_with_cookie("/api/whoami", &key).status, 200);
    assert_eq!(stored_expiry(&server), server.clock_now() + 7200, "the next request wrote it");
}

/// Past the allowed lag the slide must be written: the request waits for
/// the other writer and then writes. A request that did not wait would
/// answer while the lock is held, as the put-off one above does at once.
#[test]
fn a_slide_past_the_allowed_lag_waits_for_the_lock_and_is_written() {
    crate::support::sqlite_only!("SQLite's single writer held with `BEGIN IMMEDIATE`");
    use std::sync::mpsc::RecvTimeoutError;
    let server = TestServer::start_with(&[("DJANGO_SESSION_COOKIE_AGE", "7200")]);
    let key = server.login("root", "root-password");
    let at_login = stored_expiry(&server);
    server.advance(61);
    let holder = server.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let (answered, answer) = std::sync::mpsc::channel();
    let (addr, cookie) = (server.addr, format!("sessionid={key}"));
    std::thread::spawn(move || {
        let response = request(addr, "GET", "/api/whoami", &[("Cookie", &cookie)], b"");
        let _ = answered.send(response);
    });
    // Far longer than a request takes here, far shorter than the busy
    // timeout: an answer now is one that did not wait.
    match answer.recv_timeout(std::time::Duration::from_secs(1)) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(response) => panic!("answered while the lock was held: {response:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("the request thread failed"),
    }
    assert_eq!(stored_expiry(&server), at_login, "nothing was written yet");
    holder.execute_batch("COMMIT").unwrap();

    let response = answer.recv_timeout(std::time::Duration::from_secs(30)).expect("an answer");
    assert_eq!(response.status, 200);
    assert_eq!(stored_expiry(&server), server.clock_now() + 7200);
    assert_eq!(response.json()["expires"], sessiond::clock::rfc3339(server.clock_now() + 7200));
}

#[test]
fn idle_past_the_cookie_age_signs_out() {
    let server = TestServer::start_with(&[("DJANGO_SESSION_COOKIE_AGE", "1000")]);
    let key = server.login("root", "root-password");
    server.advance(999);
    assert_eq!(server.get_with_cookie("/api/whoami", &key).status, 200);
    server.advance(1000);
    let response = server.get_with_cookie("/", &key);
    assert_eq!(response.status, 303);
    assert_deletion_cookie(&response);
}

#[test]
fn without_save_every_request_requests_neither_write_nor_send_the_cookie() {
    let server = TestServer::start_with(&[
        ("DJANGO_SESSION_COOKIE_AGE", "1000"),
        ("DJANGO_SESSION_SAVE_EVERY_REQUEST", "off"),
    ]);
    let key = server.login("root", "root-password");
    let before = stored_expiry(&server);
    server.advance(600);
    let home = server.get_with_cookie("/", &key);
    assert_eq!(home.status, 200);
    assert_eq!(home.set_cookie("sessionid"), None);
    assert_eq!(stored_expiry(&server), before, "no write");
    server.advance(500);
    assert_signed_out(&server, &key);
}

#[test]
fn the_absolute_age_caps_an_active_session() {
    let server = TestServer::start_with(&[
        ("DJANGO_SESSION_COOKIE_AGE", "1000"),
        ("SESSIOND_SESSION_ABSOLUTE_AGE", "2500"),
    ]);
    let key = server.login("root", "root-password");
    server.advance(900);
    assert_eq!(server.get_with_cookie("/", &key).status, 200);
    server.advance(900);
    assert_eq!(server.get_with_cookie("/", &key).status, 200);
    assert_eq!(stored_expiry(&server), START + 2500, "capped at login + absolute age");
    server.advance(700);
    assert_signed_out(&server, &key);
}

#[test]
fn bad_cookies_mean_signed_out_and_are_deleted() {
    let server = TestServer::start();
    let key = server.login("root", "root-password");
    let overlong = "a".repeat(5000);
    let unknown = "cd".repeat(32);
    let uppercase = key.to_uppercase();
    for bad in ["garbage", "", overlong.as_str(), unknown.as_str(), uppercase.as_str(), "%00%ff"] {
        let page = server.get_with_cookie("/", bad);
        assert_eq!(page.status, 303, "page with cookie {bad:.20}");
        let api = server.get_with_cookie("/api/whoami", bad);
        assert_eq!(api.status, 401, "api with cookie {bad:.20}");
        assert_eq!(api.json()["extensions"]["code"], "AuthenticationInvalid");
        if !bad.is_empty() {
            assert_deletion_cookie(&api);
        }
    }
    assert_eq!(count(&server.conn(), "web_sessions"), 1, "no row created or removed");
}

#[test]
fn expired_cookie_is_deleted_and_creates_nothing() {
    let server = TestServer::start_with(&[("DJANGO_SESSION_COOKIE_AGE", "100")]);
    let key = server.login("root", "root-password");
    server.advance(101);
    let response = server.get_with_cookie("/api/whoami", &key);
    assert_eq!(response.status, 401);
    assert_deletion_cookie(&response);
    assert_eq!(count(&server.conn(), "web_sessions"), 1, "the expired row waits for cleanup");
}

#[test]
fn logout_deletes_row_and_cookie() {
    let server = TestServer::start();
    let key = server.login("root", "root-password");
    let cookie = format!("sessionid={key}");
    let response = server.post_form("/logout", &[], &[("Cookie", &cookie)]);
    assert_eq!(response.status, 303);
    assert_deletion_cookie(&response);
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
    assert_signed_out(&server, &key);
    assert_eq!(
        count(&server.conn(), "web_sessions"),
        0,
        "a late request never brings the row back"
    );
}

#[test]
fn pages_are_private_and_vary_on_cookie() {
    let server = TestServer::start();
    let key = server.login("root", "root-password");
    for response in [
        server.get_with_cookie("/", &key),
        server.get("/login", &[]),
        server.get_with_cookie("/api/whoami", &key),
    ] {
        assert_eq!(response.header("vary"), Some("Cookie"));
        assert_eq!(response.header("cache-control"), Some("private, no-store"));
    }
}

#[test]
fn failed_login_says_the_same_for_unknown_user_and_wrong_password() {
    let server = TestServer::start();
    let wrong_password =
        server.post_form("/login", &[("username", "root"), ("password", "nope")], &[]);
    let unknown_user =
        server.post_form("/login", &[("username", "nobody"), ("password", "nope")], &[]);
    for response in [&wrong_password, &unknown_user] {
        assert_eq!(response.status, 401);
        assert!(response.body.contains("Please enter a correct username and password."));
        assert_eq!(response.set_cookie("sessionid"), None);
    }
    assert_eq!(
        wrong_password.body.replace("value=\"root\"", "value=\"nobody\""),
        unknown_user.body,
        "no hint which part was wrong"
    );
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
}

#[test]
fn inactive_user_cannot_sign_in() {
    let server = TestServer::start();
    let user = server.create_user("carol", "carol-password", Role::User);
    sessiond::users::set_active(&server.conn(), user.id, false).unwrap();
    let response =
        server.post_form("/login", &[("username", "carol"), ("password", "carol-password")], &[]);
    assert_eq!(response.status, 401);
}

#[test]
fn five_failures_lock_the_username_until_the_window_passes() {
    let server = TestServer::start();
    for _ in 0..5 {
        let response =
            server.post_form("/login", &[("username", "root"), ("password", "bad")], &[]);
        assert_eq!(response.status, 401);
    }
    let locked =
        server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    assert_eq!(locked.status, 429, "even the right password is refused");
    // Every failure was at START: the window ends 15 minutes after it.
    assert_eq!(locked.header("retry-after"), Some("900"));
    assert_eq!(count(&server.conn(), "web_sessions"), 0);
    server.advance(899);
    let still =
        server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    assert_eq!(still.status, 429, "locked until the window passes");
    assert_eq!(still.header("retry-after"), Some("1"));
    server.advance(1);
    server.login("root", "root-password");
}

#[test]
fn fifty_failures_from_one_address_lock_that_address() {
    let server = TestServer::start();
    for n in 0..50 {
        let user = format!("user{n}");
        let response = server.post_form("/login", &[("username", &user), ("password", "bad")], &[]);
        assert_eq!(response.status, 401);
    }
    let locked =
        server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    assert_eq!(locked.status, 429);
    assert!(locked.header("retry-after").is_some());
}

#[test]
fn next_is_followed_only_to_local_paths() {
    let server = TestServer::start();
    let cases = [
        ("/account/sessions", "/account/sessions"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
    ];
    for (next, expected) in cases {
        let response = server.post_form(
            "/login",
            &[("username", "root"), ("password", "root-password"), ("next", next)],
            &[],
        );
        assert_eq!(response.header("location"), Some(expected), "next={next}");
    }
}

#[test]
fn login_form_keeps_a_local_next_and_drops_a_foreign_one() {
    let server = TestServer::start();
    let local = server.get("/login?next=%2Faccount%2Fsessions", &[]);
    assert!(local.body.contains("value=\"/account/sessions\""), "{}", local.body);
    let foreign = server.get("/login?next=%2F%2Fevil.example", &[]);
    assert_eq!(foreign.status, 200);
    assert!(foreign.body.contains(r#"name="next""#), "{}", foreign.body);
    assert!(!foreign.body.contains("evil.example"));
}

#[test]
fn whoami_answers_for_a_cookie_and_slides_the_expiry() {
    let server = TestServer::start_with(&[("DJANGO_SESSION_COOKIE_AGE", "1000")]);
    let key = server.login("root", "root-password");
    server.advance(500);
    let response = server.get_with_cookie("/api/whoami", &key);
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["username"], "root");
    assert_eq!(body["role"], "admin");
    assert_eq!(body["auth"], "session");
    assert_eq!(stored_expiry(&server), START + 500 + 1000);
    assert_eq!(body["expires"], sessiond::clock::rfc3339(START + 1500));
    assert!(response.set_cookie("sessionid").is_some());
}

#[test]
fn password_change_and_deactivation_end_web_sessions() {
    let server = TestServer::start();
    let user = server.create_user("dave", "dave-password", Role::User);
    let key = server.login("dave", "dave-password");
    let conn = server.conn();
    sessiond::accounts::change_password(&conn, &user, "new-password", server.clock_now()).unwrap();
    assert_signed_out(&server, &key);
    let key = server.login("dave", "new-password");
    sessiond::accounts::set_active(&conn, &user, false, server.clock_now()).unwrap();
    assert_signed_out(&server, &key);
    assert_eq!(count(&conn, "web_sessions"), 0);
}

#[test]
fn healthz_answers_ok() {
    let server = TestServer::start();
    let response = server.get("/healthz", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), serde_json::json!({"status": "ok"}));
}

#[test]
fn the_cookie_reads_exactly_as_the_spec_writes_it() {
    let server = TestServer::start();
    let response =
        server.post_form("/login", &[("username", "root"), ("password", "root-password")], &[]);
    let key = response.cookie_value("sessionid").unwrap();
    assert_eq!(
        response.set_cookie("sessionid"),
        Some(format!("sessionid={key}; Path=/; HttpOnly; SameSite=Lax").as_str())
    );
}

#[test]
fn the_401_body_is_byte_for_byte_the_documented_one() {
    let server = TestServer::start();
    let response = server.get("/api/whoami", &[]);
    assert_eq!(response.status, 401);
    assert_eq!(
        response.body,
        r#"{"message":"Received invalid authentication token","extensions":{"code":"AuthenticationInvalid"}}"#
    );
}

#[test]
fn parallel_guesses_cannot_outrun_the_throttle() {
    let server = TestServer::start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    server
                        .post_form("/login", &[("username", "root"), ("password", "guess")], &[])
                        .status
                })
            })
            .collect();
        guesses.into_iter().map(|guess| guess.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");
}

#[test]
fn a_failed_login_deletes_a_stale_cookie() {
    let server = TestServer::start();
    let stale = format!("sessionid={}", "bb".repeat(32));
    let response = server.post_form(
        "/login",
        &[("username", "root"), ("password", "wrong")],
        &[("Cookie", &stale)],
    );
    assert_eq!(response.status, 401);
    assert_deletion_cookie(&response);
}

#[test]
fn a_login_verified_before_a_password_change_cannot_start_a_session_after_it() {
    let server = TestServer::start();
    let user = server.create_user("gina", "gina-password", Role::User);
    let conn = server.conn();
    let decoy = sessiond::users::DecoyHash::new();
    let verified =
        sessiond::users::authenticate(&conn, &decoy, "gina", "gina-password").unwrap().unwrap();
    let other = server.conn();
    sessiond::accounts::change_password(&other, &user, "gina-new", server.clock_now()).unwrap();
    let client = sessiond::accounts::Client { addr: "127.0.0.1", user_agent: "test" };
    let lifetime = sessiond::web_sessions::Lifetime { idle: 100, absolute: 0 };
    let started = sessiond::accounts::start_web_session(
        &conn,
        &verified,
        None,
        lifetime,
        server.clock_now(),
        &client,
    )
    .unwrap();
    assert!(started.is_none());
    let stored = sessiond::accounts::start_jwt_session(
        &conn,
        &verified,
        "jti-1",
        server.clock_now(),
        server.clock_now() + 60,
        &client,
    )
    .unwrap();
    assert!(!stored);
    assert_eq!(count(&conn, "web_sessions") + count(&conn, "jwt_sessions"), 0);
}

/// The schema just before cookies carried their session's row id
/// (migration 8, which dropped the index on the key hashes).
const BEFORE_ROW_IDS_IN_COOKIES: usize = 7;

#[test]
fn a_cookie_issued_before_row_ids_still_signs_in_and_a_new_one_names_its_row() {
    crate::support::sqlite_only!("a SQLite file at an old `user_version`");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    // A database as the sessiond before migration 8 left it: `alice` with a
    // browser session whose cookie is its key alone.
    std::fs::write(&path, b"").unwrap();
    let mut conn = sessiond::db::connect(&path).unwrap();
    sessiond::db::migrate_to(&mut conn, BEFORE_ROW_IDS_IN_COOKIES).unwrap();
    let alice =
        sessiond::users::create(&conn, "alice", "", "alice-password", Role::User, START).unwrap();
    let (old_key, old_hash) = sessiond::web_sessions::new_key();
    conn.execute(
        "INSERT INTO web_sessions (key_hash, user_id, created, last_activity, expire_date)
         VALUES ($1, $2, $3, $3, $4)",
        sessiond::db::params![&old_hash.0[..], alice.id, START, START + 3600],
    )
    .unwrap();
    drop(conn);

    let server = TestServer::start_on_file(&path, &[]);
    let whoami = server.get_with_cookie("/api/whoami", &old_key);
    assert_eq!(whoami.status, 200, "the old cookie still signs in: {}", whoami.body);
    assert_eq!(whoami.json()["username"], "alice");
    assert_eq!(whoami.cookie_value("sessionid").as_deref(), Some(old_key.as_str()));

    // A new login's cookie is `ROW.KEY`, and only its own row answers it.
    let new_cookie = server.login("alice", "alice-password");
    let (row, key) = new_cookie.split_once('.').expect("a row id, a dot, the key");
    assert_eq!(key.len(), 64);
    let conn = server.conn();
    let stored_row: i64 = conn
        .query_row(
            "SELECT id FROM web_sessions WHERE key_hash = $1",
            sessiond::db::params![&sessiond::web_sessions::hash_cookie_value(key).unwrap().0[..]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(row, stored_row.to_string());
    assert_eq!(server.get_with_cookie("/api/whoami", &new_cookie).status, 200);
    for wrong in [format!("{}.{key}", stored_row - 1), format!("{}.{key}", stored_row + 1)] {
        let refused = server.get_with_cookie("/api/whoami", &wrong);
        assert_eq!(refused.status, 401, "another row id with the right key: {wrong}");
    }
    // The new session's key alone names no session: only rows from before
    // migration 8 (or imported) are found by their hash.
    assert_eq!(server.get_with_cookie("/api/whoami", key).status, 401);

    // The old cookie signs out like any other.
    let logout = server.post_form("/logout", &[], &[("Cookie", &format!("sessionid={old_key}"))]);
    assert_eq!(logout.status, 303, "{}", logout.body);
    assert_eq!(server.get_with_cookie("/api/whoami", &old_key).status, 401);
    assert_eq!(count(&conn, "web_sessions"), 1, "the old row went, the new one stays");
}
