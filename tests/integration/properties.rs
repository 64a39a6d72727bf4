//! Property tests (proptest) for every parser that sees client bytes:
//! cookies, forms, query strings, JSON and GraphQL bodies, tokens, `next`,
//! `X-Forwarded-For` and `.env` lines. Garbage, non-UTF-8 and extreme
//! lengths never panic, never answer 5xx, and never sign anyone in or change
//! stored data. Case counts stay modest so that `cargo test` stays fast.

use proptest::prelude::*;
use sessiond::http::next::safe_next;
use sessiond::http::request::{Method, Request, last_forwarded_addr};
use sessiond::web_sessions::{hash_cookie_value, parse_cookie_value};

use crate::support::{TestServer, count, parse_response, request, send_raw};

/// Text with control characters, non-ASCII and the separators parsers care
/// about, from empty to long.
fn nasty_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect()),
        proptest::collection::vec(
            prop_oneof![
                Just(";"),
                Just("="),
                Just(","),
                Just("%"),
                Just("/"),
                Just("\\"),
                Just("\""),
                Just(" "),
                Just("a"),
                Just("0"),
                Just("&"),
                Just(".")
            ],
            0..max
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// Header-safe text: printable ASCII without CR or LF.
fn header_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0x20u8..0x7f, 0..max)
        .prop_map(|bytes| String::from_utf8(bytes).unwrap())
}

fn pure_config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

fn http_config() -> ProptestConfig {
    ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(pure_config())]

    #[test]
    fn cookie_header_parsing_never_panics(header in nasty_text(300), name in nasty_text(20)) {
        let mut request = Request::new(Method::Get, "/");
        request.headers.push(("cookie".into(), header));
        let _ = request.cookie(&name);
        let _ = request.cookie("sessionid");
    }

    #[test]
    fn only_64_lowercase_hex_characters_hash_as_a_key(value in nasty_text(100)) {
        let well_formed = value.len() == 64 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        prop_assert_eq!(hash_cookie_value(&value).is_some(), well_formed);
    }

    #[test]
    fn a_row_id_before_the_key_is_digits_without_a_leading_zero_that_fit_an_i64(
        row in "[0-9+-]{0,21}",
        key in "[0-9a-fA-F]{63,65}",
    ) {
        let value = format!("{row}.{key}");
        let key_ok = key.len() == 64 && !key.bytes().any(|b| b.is_ascii_uppercase());
        let row_ok = row.bytes().all(|b| b.is_ascii_digit())
            && !row.starts_with('0')
            && row.parse::<i64>().is_ok();
        let parsed = parse_cookie_value(&value);
        prop_assert_eq!(parsed.is_some(), key_ok && row_ok, "{}", value);
        if let Some(cookie_key) = parsed {
            prop_assert_eq!(cookie_key.row_id, row.parse::<i64>().ok());
        }
    }

    #[test]
    fn forms_and_query_strings_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), name in nasty_text(10)) {
        let mut request = Request::new(Method::Post, "/login");
        request.query = String::from_utf8_lossy(&bytes).into_owned();
        request.body = bytes;
        let form = request.form();
        let _ = form.get(&name);
        let _ = form.get_all(&name).count();
        let _ = request.query_param(&name);
    }

    #[test]
    fn next_is_always_a_local_path(next in nasty_text(80)) {
        // Without a public URL or cookie domain no absolute URL is allowed.
        let settings = crate::support::settings_for(std::path::Path::new("unused.sqlite3"), &[]);
        let followed = safe_next(&next, &settings);
        prop_assert!(followed == "/" || followed == next);
        let bytes = followed.as_bytes();
        prop_assert_eq!(bytes[0], b'/');
        prop_assert!(!matches!(bytes.get(1), Some(b'/' | b'\\')));
        prop_assert!(bytes.iter().all(u8::is_ascii_graphic));
    }

    #[test]
    fn normalized_paths_are_stable_and_free_of_dot_segments(path in nasty_text(80)) {
        let path = format!("/{path}");
        if let Ok(normalized) = sessiond::access_rules::normalize_path(&path) {
            let again = sessiond::access_rules::normalize_path(&normalized);
            prop_assert_eq!(again.as_deref(), Ok(normalized.as_str()));
            prop_assert!(normalized.starts_with('/'));
            prop_assert!(!normalized.contains("//"));
            prop_assert!(normalized.split('/').all(|segment| segment != "." && segment != ".."));
        }
    }

    #[test]
    fn forwarded_for_yields_only_the_last_well_formed_address(value in nasty_text(120)) {
        if let Some(addr) = last_forwarded_addr(&value) {
            let last = value.rsplit(',').next().unwrap().trim();
            prop_assert_eq!(last.parse::<std::net::IpAddr>().ok(), Some(addr));
        }
    }

    #[test]
    fn garbage_tokens_never_verify(token in nasty_text(600)) {
        let key = jwt_simple::algorithms::HS256Key::from_bytes(b"0123456789abcdef0123456789abcdef");
        prop_assert!(sessiond::jwt::verify(&key, &token, crate::support::START).is_none());
    }

    #[test]
    fn tampered_tokens_never_verify(position in 0usize..400, replacement in any::<u8>()) {
        let key = jwt_simple::algorithms::HS256Key::from_bytes(b"0123456789abcdef0123456789abcdef");
        let user = sessiond::users::User {
            id: 7,
            username: "alice".into(),
            email: String::new(),
            role: sessiond::users::Role::User,
            is_active: true,
        };
        let now = crate::support::START;
        let token = sessiond::jwt::issue(&key, &user, "jti-1", now, now + 900).unwrap();
        let mut bytes = token.clone().into_bytes();
        let position = position % bytes.len();
        prop_assume!(bytes[position] != replacement);
        // The last character of a base64url part may carry spare bits: a
        // change there can decode to the same bytes, the same token.
        let last_of_part = position + 1 == bytes.len() || bytes[position + 1] == b'.';
        prop_assume!(!last_of_part);
        bytes[position] = replacement;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(sessiond::jwt::verify(&key, &tampered, now).is_none());
    }

    #[test]
    fn env_file_values_read_back_unchanged(value in nasty_text(60).prop_filter("no NUL", |v| !v.contains('\0'))) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "# kept\nOTHER=1\n").unwrap();
        sessiond::env_file::set(&path, "KEY", &value).unwrap();
        let pairs = sessiond::env_file::read(&path).unwrap();
        prop_assert_eq!(pairs, vec![("OTHER".to_owned(), "1".to_owned()), ("KEY".to_owned(), value)]);
    }

    #[test]
    fn env_file_reading_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, &bytes).unwrap();
        let _ = sessiond::env_file::read(&path);
    }
}

/// One server for all the cases of a property: a fresh one per case would
/// cost a password hash each.
fn shared_server() -> &'static TestServer {
    static SERVER: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(TestServer::start)
}

proptest! {
    #![proptest_config(http_config())]

    #[test]
    fn garbage_cookies_mean_not_signed_in(value in header_text(300)) {
        let server = shared_server();
        let before = count(&server.conn(), "web_sessions");
        let response = server.get("/api/whoami", &[("Cookie", &format!("sessionid={value}"))]);
        prop_assert_eq!(response.status, 401);
        let page = server.get("/", &[("Cookie", &format!("sessionid={value}; other={value}"))]);
        prop_assert_eq!(page.status, 303);
        prop_assert_eq!(count(&server.conn(), "web_sessions"), before);
    }

    #[test]
    fn garbage_bearer_tokens_get_401(value in header_text(600)) {
        let server = shared_server();
        let response = server.get("/api/whoami", &[("Authorization", &format!("Bearer {value}"))]);
        prop_assert_eq!(response.status, 401);
        let json = response.json();
        prop_assert_eq!(json["extensions"]["code"].as_str(), Some("AuthenticationInvalid"));
    }

    #[test]
    fn garbage_query_strings_never_fail(query in header_text(200).prop_map(|q| q.replace([' ', '#'], "_"))) {
        let server = shared_server();
        let response = server.get(&format!("/login?{query}"), &[]);
        prop_assert_eq!(response.status, 200);
    }

    #[test]
    fn garbage_login_forms_never_sign_in(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let server = shared_server();
        let before = count(&server.conn(), "web_sessions");
        let response = request(server.addr, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], &body);
        prop_assert!(matches!(response.status, 400 | 401 | 429), "{} {}", response.status, response.body);
        prop_assert_eq!(count(&server.conn(), "web_sessions"), before);
    }

    #[test]
    fn garbage_graphql_bodies_get_4xx(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let server = shared_server();
        let before = count(&server.conn(), "jwt_sessions");
        let response = request(server.addr, "POST", "/graphql", &[("Content-Type", "application/json")], &body);
        prop_assert!((400..500).contains(&response.status), "{} {}", response.status, response.body);
        prop_assert_eq!(count(&server.conn(), "jwt_sessions"), before);
    }

    #[test]
    fn garbage_graphql_queries_never_fail(query in nasty_text(200), variables in nasty_text(40)) {
        let server = shared_server();
        let before = count(&server.conn(), "jwt_sessions");
        let body = serde_json::json!({ "query": query, "variables": { "u": variables } });
        let response = server.post_json("/graphql", &body, &[]);
        prop_assert!(matches!(response.status, 200 | 400 | 401), "{} {}", response.status, response.body);
        prop_assert_eq!(count(&server.conn(), "jwt_sessions"), before);
    }

    #[test]
    fn raw_garbage_requests_never_get_5xx(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let server = shared_server();
        let mut raw = bytes;
        raw.extend_from_slice(b"\r\n\r\n");
        if let Some(response) = parse_response(&send_raw(server.addr, &raw)) {
            prop_assert!(response.status < 500, "{}", response.status);
        }
        prop_assert_eq!(server.get("/healthz", &[]).status, 200);
    }
}
