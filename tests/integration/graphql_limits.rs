//! GraphQL requests refused before anything runs (SPEC 5): more than one
//! `login` in the operation (no row stored, nothing counted), and
//! `variables` that is not an object or `operationName` that is not a
//! string (400, where juniper alone would run the query as if they were
//! absent).

use sessiond::users::Role;

use crate::support::{TestServer, count, post_graphql, request};

const LOGIN: &str = "login(username: \"alice\", password: \"alice-password\") { token }";

#[test]
fn two_logins_in_one_operation_are_refused_before_anything_is_written() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    for query in [
        format!("mutation {{ a: {LOGIN} b: {LOGIN} }}"),
        format!("mutation {{ ...Twice a: {LOGIN} }} fragment Twice on Mutation {{ b: {LOGIN} }}"),
        format!("mutation {{ ... on Mutation {{ a: {LOGIN} }} b: {LOGIN} }}"),
    ] {
        let response = post_graphql(&server, &query, serde_json::json!({}), None);
        assert_eq!(response.status, 400, "{query}: {}", response.body);
        let body = response.json();
        assert_eq!(body["errors"][0]["message"], "at most one `login` per operation");
        assert!(body.get("data").is_none(), "{body}");
        assert_eq!(count(&server.conn(), "jwt_sessions"), 0, "{query}: no row stored");
    }
    // The controls: one login per operation, also in a document that holds
    // two operations and names the one to run.
    let one =
        post_graphql(&server, &format!("mutation {{ {LOGIN} }}"), serde_json::json!({}), None);
    assert_eq!(one.status, 200, "{}", one.body);
    let two_operations = serde_json::json!({
        "query": format!("mutation A {{ {LOGIN} }} mutation B {{ {LOGIN} }}"),
        "operationName": "B",
    });
    let named = server.post_json("/graphql", &two_operations, &[]);
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(count(&server.conn(), "jwt_sessions"), 2);
}

#[test]
fn refused_double_logins_do_not_count_against_the_throttle() {
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let wrong = "login(username: \"alice\", password: \"wrong\") { token }";
    for _ in 0..6 {
        let query = format!("mutation {{ a: {wrong} b: {wrong} }}");
        assert_eq!(post_graphql(&server, &query, serde_json::json!({}), None).status, 400);
    }
    server.login("alice", "alice-password");
}

#[test]
fn variables_that_are_not_an_object_and_an_operation_name_that_is_not_a_string_get_400() {
    let server = TestServer::start();
    let send = |body: serde_json::Value| {
        request(
            server.addr,
            "POST",
            "/graphql",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let query = "query { __typename }";
    for variables in [
        serde_json::json!([1]),
        serde_json::json!("x"),
        serde_json::json!(5),
        serde_json::json!(true),
    ] {
        let response = send(serde_json::json!({ "query": query, "variables": variables }));
        assert_eq!(response.status, 400, "variables {variables}: {}", response.body);
        assert!(response.body.contains("`variables`"), "{}", response.body);
    }
    for name in [serde_json::json!(5), serde_json::json!({}), serde_json::json!(["A"])] {
        let response = send(serde_json::json!({ "query": query, "operationName": name }));
        assert_eq!(response.status, 400, "operationName {name}: {}", response.body);
        assert!(response.body.contains("`operationName`"), "{}", response.body);
    }
    // The controls: null, absent, an object and a string are fine.
    for body in [
        serde_json::json!({ "query": query, "variables": null, "operationName": null }),
        serde_json::json!({ "query": query }),
        serde_json::json!({ "query": "query Q { __typename }", "variables": {}, "operationName": "Q" }),
    ] {
        let response = send(body.clone());
        assert_eq!(response.status, 200, "{body}: {}", response.body);
    }
}
