//! JWT sessions (SPEC 5): the tokens `login` issues, the rows behind them,
//! bearer authentication on `/graphql` and `/api/whoami`, revocation, expiry,
//! and tokens forged in each way RFC 8725 warns about (each refused with the
//! fixed 401 body, changing nothing).

use jwt_simple::algorithms::{HS256Key, HS384Key, HS512Key, MACLike};
use jwt_simple::claims::JWTClaims;
use jwt_simple::common::HeaderOptions;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use serde_json::{Map, Value, json};
use sessiond::users::Role;

use crate::support::{Response, START, TestServer, assert_invalid_token, jwt_login, post_graphql};

/// The JWT key the servers of these tests are configured with, so that the
/// tests can sign tokens the way an attacker who had it (or not) would.
const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";

const WHOAMI: &str = "{ whoami { username role expires } }";

fn start() -> TestServer {
    TestServer::start_with(&[("DJANGO_JWT_SECRET_KEY", JWT_SECRET)])
}

fn api_whoami(server: &TestServer, token: &str) -> Response {
    server.get("/api/whoami", &[("Authorization", &format!("Bearer {token}"))])
}

/// Every row of `jwt_sessions`, every column, for before/after comparisons.
fn jwt_rows(server: &TestServer) -> Vec<Vec<Value>> {
    let conn = server.conn();
    let mut statement = conn
        .prepare(
            "SELECT jti, user_id, created, last_activity, expires_at, revoked_at, revoked_by,
                    client_addr, user_agent FROM jwt_sessions ORDER BY seq",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            let mut values = Vec::new();
            for index in 0..9 {
                let value: rusqlite::types::Value = row.get(index)?;
                values.push(match value {
                    rusqlite::types::Value::Null => Value::Null,
                    rusqlite::types::Value::Integer(n) => json!(n),
                    rusqlite::types::Value::Text(text) => json!(text),
                    other => json!(format!("{other:?}")),
                });
            }
            Ok(values)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn decode_part(part: &str) -> Value {
    let bytes = Base64UrlSafeNoPadding::decode_to_vec(part, None).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

fn encode_part(value: &Value) -> String {
    Base64UrlSafeNoPadding::encode_to_string(value.to_string()).unwrap()
}

/// The header and claims of a token, decoded without verifying it.
#[track_caller]
fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS in compact form");
    (decode_part(parts[0]), decode_part(parts[1]))
}

fn jwt_claims(claims: &Value) -> JWTClaims<Map<String, Value>> {
    serde_json::from_value(claims.clone()).expect("claims")
}

fn header_options(typ: &str) -> HeaderOptions {
    HeaderOptions { signature_type: Some(typ.to_owned()), content_type: None }
}

/// Signs `claims` with HS256 and `key`, with the given `typ`.
fn sign_hs256(key: &[u8], typ: &str, claims: &Value) -> String {
    HS256Key::from_bytes(key)
        .authenticate_with_options(jwt_claims(claims), &header_options(typ))
        .unwrap()
}

/// Signs `claims` as the server would, with its key.
fn sign(claims: &Value) -> String {
    sign_hs256(JWT_SECRET.as_bytes(), "sessiond-user+jwt", claims)
}

/// Asserts that a token is refused by `/api/whoami`, by the `whoami` query
/// and by the `logout` mutation, and that `jwt_sessions` is left as it was.
#[track_caller]
fn assert_refused_and_nothing_changed(server: &TestServer, token: &str) {
    let before = jwt_rows(server);
    assert_invalid_token(&api_whoami(server, token));
    assert_invalid_token(&post_graphql(server, WHOAMI, json!({}), Some(token)));
    assert_invalid_token(&post_graphql(server, "mutation { logout }", json!({}), Some(token)));
    assert_eq!(jwt_rows(server), before, "a refused token changed `jwt_sessions`");
}

/// Logs root in and returns the token with its decoded claims.
fn root_token(server: &TestServer) -> (String, Value) {
    let token = jwt_login(server, "root", "root-password");
    let (_, claims) = decode(&token);
    (token, claims)
}

#[test]
fn login_token_has_the_header_and_claims_of_spec_5() {
    let server = start();
    let response = server.post_json(
        "/graphql",
        &json!({"query": "mutation { login(username: \"root\", password: \"root-password\") { token expires } }"}),
        &[("User-Agent", "test-client/1.0")],
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let login = &response.json()["data"]["login"];
    assert_eq!(login["expires"], "2026-11-27T12:15:00Z");
    let token = login["token"].as_str().unwrap();
    let (header, claims) = decode(token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "sessiond-user+jwt");
    let root_id =
        server
            .conn()
            .query_row("SELECT id FROM users WHERE username = 'root'", [], |r| r.get::<_, i64>(0));
    assert_eq!(claims["sub"], root_id.unwrap().to_string());
    assert_eq!(claims["sub_name"], "root");
    assert_eq!(claims["sub_email"], "root@example.com");
    assert_eq!(claims["aud"], "sessiond");
    assert_eq!(claims["iat"], START);
    assert_eq!(claims["exp"], START + 900);
    let jti = claims["jti"].as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(jti).expect("jti is a UUID");
    assert_eq!(parsed.get_version_num(), 4);

    let rows = jwt_rows(&server);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row[0], jti, "the row's id is the token's jti");
    assert_eq!(row[2], START, "created");
    assert_eq!(row[4], START + 900, "expires_at");
    assert_eq!(row[5], Value::Null, "revoked_at");
    assert_eq!(row[7], "127.0.0.1", "client address");
    assert_eq!(row[8], "test-client/1.0", "user agent");
}

#[test]
fn login_token_answers_graphql_whoami() {
    let server = start();
    server.create_user("mia", "mia-password", Role::Manager);
    let token = jwt_login(&server, "mia", "mia-password");
    let response = post_graphql(&server, WHOAMI, json!({}), Some(&token));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"data": {"whoami": {"username": "mia", "role": "manager", "expires": "2026-11-27T12:15:00Z"}}})
    );
}

#[test]
fn login_token_answers_api_whoami_with_auth_jwt() {
    let server = start();
    let (token, _) = root_token(&server);
    let response = api_whoami(&server, &token);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"username": "root", "role": "admin", "auth": "jwt", "expires": "2026-11-27T12:15:00Z"})
    );
}

#[test]
fn bearer_requests_write_nothing() {
    let server = start();
    let (token, _) = root_token(&server);
    let before = jwt_rows(&server);
    server.advance(30);
    assert_eq!(api_whoami(&server, &token).status, 200);
    assert_eq!(post_graphql(&server, WHOAMI, json!({}), Some(&token)).status, 200);
    assert_eq!(jwt_rows(&server), before);
}

#[test]
fn logout_revokes_the_calling_token_and_the_next_call_is_refused() {
    let server = start();
    let (token, claims) = root_token(&server);
    let (other_token, _) = root_token(&server);
    server.advance(10);
    let response = post_graphql(&server, "mutation { logout }", json!({}), Some(&token));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"data": {"logout": true}}));

    let row = jwt_rows(&server).into_iter().find(|row| row[0] == claims["jti"]).unwrap();
    assert_eq!(row[5], START + 10, "revoked_at");
    assert_eq!(row[6], claims["sub"].as_str().unwrap().parse::<i64>().unwrap(), "revoked_by");
    assert_invalid_token(&post_graphql(&server, WHOAMI, json!({}), Some(&token)));
    assert_invalid_token(&api_whoami(&server, &token));
    assert_eq!(api_whoami(&server, &other_token).status, 200, "only the calling token ends");
}

#[test]
fn token_expires_after_jwt_lifetime_without_leeway() {
    let server = TestServer::start_with(&[
        ("DJANGO_JWT_SECRET_KEY", JWT_SECRET),
        ("SESSIOND_JWT_LIFETIME", "60"),
    ]);
    let (token, claims) = root_token(&server);
    assert_eq!(claims["exp"], START + 60);
    server.advance(59);
    assert_eq!(api_whoami(&server, &token).status, 200);
    server.advance(1);
    assert_refused_and_nothing_changed(&server, &token);
}

#[test]
fn revocation_by_another_connection_counts_on_the_next_request() {
    let server = start();
    let (token, claims) = root_token(&server);
    assert_eq!(api_whoami(&server, &token).status, 200);
    let jti = claims["jti"].as_str().unwrap();
    assert!(sessiond::jwt_sessions::revoke(&server.conn(), jti, START, None).unwrap());
    assert_refused_and_nothing_changed(&server, &token);
}

#[test]
fn deleted_row_rejects_its_token() {
    let server = start();
    let (token, claims) = root_token(&server);
    assert_eq!(api_whoami(&server, &token).status, 200);
    assert!(
        sessiond::jwt_sessions::delete(&server.conn(), claims["jti"].as_str().unwrap()).unwrap()
    );
    assert_refused_and_nothing_changed(&server, &token);
}

#[test]
fn password_change_revokes_the_users_tokens() {
    let server = start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let token = jwt_login(&server, "alice", "alice-password");
    let (root, _) = root_token(&server);
    assert_eq!(api_whoami(&server, &token).status, 200);
    sessiond::accounts::change_password(&server.conn(), &alice, "new-password", START).unwrap();
    assert_refused_and_nothing_changed(&server, &token);
    assert_eq!(api_whoami(&server, &root).status, 200, "other users keep their tokens");
    assert!(!jwt_login(&server, "alice", "new-password").is_empty());
}

#[test]
fn deactivation_revokes_the_users_tokens() {
    let server = start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let token = jwt_login(&server, "alice", "alice-password");
    sessiond::accounts::set_active(&server.conn(), &alice, false, START).unwrap();
    assert_refused_and_nothing_changed(&server, &token);
}

#[test]
fn token_of_an_inactive_user_is_refused_even_with_a_live_row() {
    let server = start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let token = jwt_login(&server, "alice", "alice-password");
    // Only the flag, not the revocation `accounts` also does.
    assert!(sessiond::users::set_active(&server.conn(), alice.id, false).unwrap());
    let revoked: Option<i64> = server
        .conn()
        .query_row("SELECT revoked_at FROM jwt_sessions", [], |row| row.get(0))
        .unwrap();
    assert_eq!(revoked, None);
    assert_refused_and_nothing_changed(&server, &token);
}

#[test]
fn alg_none_token_is_refused() {
    let server = start();
    let (_, claims) = root_token(&server);
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "sessiond-user+jwt"});
        let token = format!("{}.{}.", encode_part(&header), encode_part(&claims));
        assert_refused_and_nothing_changed(&server, &token);
    }
}

#[test]
fn token_of_another_hmac_algorithm_with_the_right_key_is_refused() {
    let server = start();
    let (_, claims) = root_token(&server);
    let key = JWT_SECRET.as_bytes();
    let options = header_options("sessiond-user+jwt");
    let hs384 = HS384Key::from_bytes(key).authenticate_with_options(jwt_claims(&claims), &options);
    let hs512 = HS512Key::from_bytes(key).authenticate_with_options(jwt_claims(&claims), &options);
    for token in [hs384.unwrap(), hs512.unwrap()] {
        assert_ne!(decode(&token).0["alg"], "HS256");
        assert_refused_and_nothing_changed(&server, &token);
    }
}

#[test]
fn token_signed_with_another_key_is_refused() {
    let server = start();
    let (_, claims) = root_token(&server);
    let token =
        sign_hs256(b"another-secret-0123456789abcdef0123456789", "sessiond-user+jwt", &claims);
    assert_refused_and_nothing_changed(&server, &token);
}

#[test]
fn token_with_a_tampered_payload_is_refused() {
    let server = start();
    let (token, mut claims) = root_token(&server);
    // Used once first, so that the server has seen the untampered token.
    assert_eq!(api_whoami(&server, &token).status, 200);
    claims["sub_name"] = json!("someone-else");
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], encode_part(&claims), parts[2]);
    assert_refused_and_nothing_changed(&server, &forged);
}

#[test]
fn token_with_a_wrong_audience_is_refused() {
    let server = start();
    let (_, mut claims) = root_token(&server);
    for audience in [json!("someone-else"), json!(["other"]), json!("Sessiond")] {
        claims["aud"] = audience;
        assert_refused_and_nothing_changed(&server, &sign(&claims));
    }
    claims.as_object_mut().unwrap().remove("aud");
    assert_refused_and_nothing_changed(&server, &sign(&claims));
}

#[test]
fn token_with_a_wrong_typ_is_refused() {
    let server = start();
    let (_, claims) = root_token(&server);
    for typ in ["JWT", "at+jwt", "sessiond-admin+jwt"] {
        assert_refused_and_nothing_changed(
            &server,
            &sign_hs256(JWT_SECRET.as_bytes(), typ, &claims),
        );
    }
}

#[test]
fn token_whose_exp_has_passed_is_refused_while_its_row_lives() {
    let server = start();
    let (_, mut claims) = root_token(&server);
    for exp in [START - 1, START] {
        claims["exp"] = json!(exp);
        assert_refused_and_nothing_changed(&server, &sign(&claims));
    }
}

#[test]
fn token_without_exp_is_refused() {
    let server = start();
    let (_, mut claims) = root_token(&server);
    claims.as_object_mut().unwrap().remove("exp");
    assert_refused_and_nothing_changed(&server, &sign(&claims));
}

#[test]
fn token_with_an_unknown_jti_is_refused() {
    let server = start();
    let (_, mut claims) = root_token(&server);
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    assert_refused_and_nothing_changed(&server, &sign(&claims));
    claims.as_object_mut().unwrap().remove("jti");
    assert_refused_and_nothing_changed(&server, &sign(&claims));
}

#[test]
fn token_whose_sub_does_not_own_its_row_is_refused() {
    let server = start();
    let alice = server.create_user("alice", "alice-password", Role::User);
    let (_, mut claims) = root_token(&server);
    for sub in [json!(alice.id.to_string()), json!(format!("0{}", claims["sub"].as_str().unwrap()))]
    {
        claims["sub"] = sub;
        assert_refused_and_nothing_changed(&server, &sign(&claims));
    }
    claims.as_object_mut().unwrap().remove("sub");
    assert_refused_and_nothing_changed(&server, &sign(&claims));
}

#[test]
fn garbage_and_empty_bearer_tokens_are_refused() {
    let server = start();
    root_token(&server);
    for token in ["garbage", "a.b.c", "..", "e30.e30.", "%00", "Bearer"] {
        assert_refused_and_nothing_changed(&server, token);
    }
    for header in ["Bearer", "Bearer ", "Basic cm9vdDpyb290LXBhc3N3b3Jk", ""] {
        let before = jwt_rows(&server);
        assert_invalid_token(&server.get("/api/whoami", &[("Authorization", header)]));
        let response =
            server.post_json("/graphql", &json!({ "query": WHOAMI }), &[("Authorization", header)]);
        assert_invalid_token(&response);
        assert_eq!(jwt_rows(&server), before);
    }
}

#[test]
fn overlong_token_is_refused() {
    let server = start();
    let (_, mut claims) = root_token(&server);
    claims["padding"] = json!("x".repeat(9 * 1024));
    assert_refused_and_nothing_changed(&server, &sign(&claims));
}

#[test]
fn well_formed_forgery_control_is_accepted() {
    // The forgeries above are refused for what they change, not for being
    // signed by the test: the same signing of the original claims passes.
    let server = start();
    let (_, claims) = root_token(&server);
    assert_eq!(api_whoami(&server, &sign(&claims)).status, 200);
}
