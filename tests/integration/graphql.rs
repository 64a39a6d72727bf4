//! The GraphQL endpoint (SPEC 5) as an ordinary GraphQL client sees it:
//! variables, `operationName`, aliases, fragments, `__typename`,
//! introspection, the error codes of `login`, the 401 of `whoami` and
//! `logout` without a token, and bad bodies answered with 4xx, never 500.

use serde_json::{Value, json};

use crate::support::{
    Response, TestServer, assert_invalid_token, count, jwt_login, post_graphql, request,
};

const LOGIN: &str = "mutation Login($u: String!, $p: String!) { login(username: $u, password: $p) { token expires } }";

fn login(server: &TestServer, username: &str, password: &str) -> Response {
    post_graphql(server, LOGIN, json!({ "u": username, "p": password }), None)
}

fn post_body(server: &TestServer, body: &[u8]) -> Response {
    request(server.addr, "POST", "/graphql", &[("Content-Type", "application/json")], body)
}

/// The `extensions.code` of the first error.
fn first_error_code(response: &Response) -> Value {
    response.json()["errors"][0]["extensions"]["code"].clone()
}

#[test]
fn login_with_variables_returns_token_and_expiry() {
    let server = TestServer::start();
    let response = login(&server, "root", "root-password");
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["login"]["expires"], "2026-11-27T12:15:00Z");
    assert_eq!(body["data"]["login"]["token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(count(&server.conn(), "jwt_sessions"), 1);
}

#[test]
fn fields_are_answered_in_the_order_asked() {
    let server = TestServer::start();
    let token = jwt_login(&server, "root", "root-password");
    let response =
        post_graphql(&server, "{ whoami { username role expires } }", json!({}), Some(&token));
    assert_eq!(
        response.body,
        r#"{"data":{"whoami":{"username":"root","role":"admin","expires":"2026-11-27T12:15:00Z"}}}"#
    );
}

#[test]
fn operation_name_picks_the_operation_to_run() {
    let server = TestServer::start();
    let token = jwt_login(&server, "root", "root-password");
    let document = "query Me { whoami { username } } query Kind { whoami { role } }";
    let body = json!({ "query": document, "operationName": "Kind" });
    let response =
        server.post_json("/graphql", &body, &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"data": {"whoami": {"role": "admin"}}}));
}

#[test]
fn aliases_fragments_and_typename_work() {
    let server = TestServer::start();
    let token = jwt_login(&server, "root", "root-password");
    let query = "query { __typename me: whoami { ...Who } again: whoami { __typename role } }
                 fragment Who on Whoami { name: username expires }";
    let response = post_graphql(&server, query, json!({}), Some(&token));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"data": {
            "__typename": "Query",
            "me": {"name": "root", "expires": "2026-11-27T12:15:00Z"},
            "again": {"__typename": "Whoami", "role": "admin"}
        }})
    );
}

#[test]
fn introspection_describes_the_schema_of_spec_5() {
    let server = TestServer::start();
    let query = r#"{
        __schema { queryType { name } mutationType { name } subscriptionType { name } }
        mutation: __type(name: "Mutation") {
            fields { name type { kind ofType { name } }
                     args { name type { kind ofType { name } } } }
        }
        whoami: __type(name: "Whoami") { fields { name type { kind ofType { name } } } }
        login: __type(name: "LoginResponse") { fields { name } }
    }"#;
    let response = post_graphql(&server, query, json!({}), None);
    assert_eq!(response.status, 200, "{}", response.body);
    let data = &response.json()["data"];
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert_eq!(data["__schema"]["mutationType"]["name"], "Mutation");
    let non_null = |name: &str| json!({"kind": "NON_NULL", "ofType": {"name": name}});
    assert_eq!(
        data["mutation"]["fields"],
        json!([
            {"name": "login", "type": non_null("LoginResponse"), "args": [
                {"name": "username", "type": non_null("String")},
                {"name": "password", "type": non_null("String")}
            ]},
            {"name": "logout", "type": non_null("Boolean"), "args": []}
        ])
    );
    assert_eq!(
        data["whoami"]["fields"],
        json!([
            {"name": "username", "type": non_null("String")},
            {"name": "role", "type": non_null("String")},
            {"name": "expires", "type": non_null("String")}
        ])
    );
    assert_eq!(data["login"]["fields"], json!([{"name": "token"}, {"name": "expires"}]));
}

#[test]
fn wrong_password_is_invalid_credentials_and_stores_nothing() {
    let server = TestServer::start();
    let response = login(&server, "root", "wrong-password");
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"][0]["message"], "Invalid credentials");
    assert_eq!(first_error_code(&response), "InvalidCredentials");
    assert_eq!(count(&server.conn(), "jwt_sessions"), 0);
}

#[test]
fn unknown_and_inactive_users_get_the_same_invalid_credentials() {
    let server = TestServer::start();
    let alice = server.create_user("alice", "alice-password", sessiond::users::Role::User);
    sessiond::users::set_active(&server.conn(), alice.id, false).unwrap();
    let long_name = "x".repeat(100_000);
    for (username, password) in
        [("nobody", "root-password"), ("alice", "alice-password"), (&long_name, "password")]
    {
        let response = login(&server, username, password);
        assert_eq!(response.json()["errors"][0]["message"], "Invalid credentials");
        assert_eq!(first_error_code(&response), "InvalidCredentials");
    }
    assert_eq!(count(&server.conn(), "jwt_sessions"), 0);
}

#[test]
fn five_failures_throttle_login_with_429_and_retry_after() {
    let server = TestServer::start();
    for _ in 0..5 {
        assert_eq!(first_error_code(&login(&server, "root", "wrong")), "InvalidCredentials");
    }
    server.advance(60);
    let response = login(&server, "root", "root-password");
    assert_eq!(response.status, 429, "{}", response.body);
    assert_eq!(response.header("retry-after"), Some("840"));
    assert_eq!(first_error_code(&response), "Throttled");
    assert_eq!(count(&server.conn(), "jwt_sessions"), 0, "even the right password is refused");
    server.advance(840);
    assert_eq!(login(&server, "root", "root-password").status, 200);
}

#[test]
fn graphql_login_shares_the_throttle_of_the_sign_in_form() {
    let server = TestServer::start();
    for _ in 0..5 {
        let response =
            server.post_form("/login", &[("username", "root"), ("password", "wrong")], &[]);
        assert_eq!(response.status, 401);
    }
    let response = login(&server, "root", "root-password");
    assert_eq!(response.status, 429, "{}", response.body);
    assert_eq!(first_error_code(&response), "Throttled");
}

#[test]
fn only_one_login_runs_per_request() {
    // Refused before anything runs (issue 14; see `graphql_limits`): once it
    // ran the first and stored a row whose token nobody received.
    let server = TestServer::start();
    let query = r#"mutation {
        a: login(username: "root", password: "root-password") { token }
        b: login(username: "root", password: "root-password") { token }
    }"#;
    let response = post_graphql(&server, query, json!({}), None);
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.json()["errors"].as_array().unwrap().len(), 1);
    assert_eq!(count(&server.conn(), "jwt_sessions"), 0);
}

#[test]
fn fragments_on_mutation_work() {
    let server = TestServer::start();
    let token = jwt_login(&server, "root", "root-password");
    let query = "mutation { ...Out } fragment Out on Mutation { __typename bye: logout }";
    let response = post_graphql(&server, query, json!({}), Some(&token));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"data": {"__typename": "Mutation", "bye": true}}));
}

#[test]
fn whoami_and_logout_without_a_token_get_the_fixed_401() {
    let server = TestServer::start();
    assert_invalid_token(&post_graphql(&server, "{ whoami { username } }", json!({}), None));
    assert_invalid_token(&post_graphql(&server, "mutation { logout }", json!({}), None));
}

#[test]
fn login_ignores_a_stale_bearer_token() {
    let server = TestServer::start();
    let token = jwt_login(&server, "root", "root-password");
    post_graphql(&server, "mutation { logout }", json!({}), Some(&token));
    let response =
        post_graphql(&server, LOGIN, json!({"u": "root", "p": "root-password"}), Some(&token));
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.json()["data"]["login"]["token"].is_string());
}

#[test]
fn a_refused_operation_keeps_no_row_from_its_login() {
    let server = TestServer::start();
    let query =
        r#"mutation { login(username: "root", password: "root-password") { token } logout }"#;
    assert_invalid_token(&post_graphql(&server, query, json!({}), None));
    assert_eq!(count(&server.conn(), "jwt_sessions"), 0);
}

#[test]
fn bodies_that_are_not_a_graphql_request_get_400() {
    let server = TestServer::start();
    let bodies: [&[u8]; 9] = [
        b"",
        b"not json",
        b"{\"query\": ",
        b"[{\"query\": \"{ __typename }\"}]",
        b"{}",
        b"{\"query\": 5}",
        b"{\"query\": null}",
        b"{\"query\": \"{ __typename }\", \"operationName\": 7}",
        b"{\"query\": \"\xff\xfe\"}",
    ];
    for body in bodies {
        let response = post_body(&server, body);
        assert_eq!(response.status, 400, "{:?}: {}", String::from_utf8_lossy(body), response.body);
    }
    assert_eq!(count(&server.conn(), "jwt_sessions"), 0);
}

#[test]
fn queries_that_fail_to_parse_or_validate_get_graphql_errors() {
    let server = TestServer::start();
    let documents = [
        "{ whoami { username }",
        "",
        "{ nosuchfield }",
        "mutation { login(username: \"root\") { token } }",
        "mutation ($u: String!) { login(username: $u, password: \"x\") { token } }",
        "query A { __typename } query B { __typename }",
        "{ ...F } fragment F on Query { ...F }",
        &format!("{}{}", "{ whoami ".repeat(200), "}".repeat(200)),
    ];
    for document in documents {
        let response = post_graphql(&server, document, json!({}), None);
        assert_eq!(response.status, 400, "{document}: {}", response.body);
        let errors = &response.json()["errors"];
        assert!(errors[0]["message"].is_string(), "{document}: {}", response.body);
    }
    let wrong_type = post_graphql(
        &server,
        "mutation ($u: String!) { login(username: $u, password: \"x\") { token } }",
        json!({"u": 5}),
        None,
    );
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.body);
    assert_eq!(count(&server.conn(), "jwt_sessions"), 0);
}

#[test]
fn graphql_answers_post_only() {
    let server = TestServer::start();
    let response = server.get("/graphql?query=%7B__typename%7D", &[]);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
}
