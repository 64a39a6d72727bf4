//! Nothing secret in the server's output (SPEC 8): a full flow against a real
//! `sessiond serve` process, with its stdout and stderr captured, shows no
//! cookie value, token, submitted password or configured key. The first-run
//! admin password is the one secret ever printed, once.

use crate::support::{ServeProcess, prepare_database};

const LOGIN: &str =
    "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";

#[test]
fn a_full_flow_leaves_no_secret_in_the_output() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let secret_key = "configured-secret-key-that-must-stay-unprinted";
    let jwt_key = "configured-jwt-key-of-more-than-32-bytes-0123456789";
    let env = [("DJANGO_SECRET_KEY", secret_key), ("DJANGO_JWT_SECRET_KEY", jwt_key)];
    let mut server = ServeProcess::start(dir.path(), &env);

    let mut secrets: Vec<String> = vec![secret_key.into(), jwt_key.into()];
    // Web login, a page, logout.
    let login =
        server.post_form("/login", &[("username", "alice"), ("password", "alice-password")], &[]);
    assert_eq!(login.status, 303);
    let cookie = login.cookie_value("sessionid").expect("a session cookie");
    let cookie_header = format!("sessionid={cookie}");
    assert_eq!(server.get("/", &[("Cookie", &cookie_header)]).status, 200);
    // API login, a call, revoke by logout.
    let api =
        server.post_graphql(LOGIN, serde_json::json!({ "u": "bob", "p": "bob-password" }), None);
    let token = api.json()["data"]["login"]["token"].as_str().expect("a token").to_owned();
    assert_eq!(
        server.get("/api/whoami", &[("Authorization", &format!("Bearer {token}"))]).status,
        200
    );
    let logout = server.post_graphql("mutation { logout }", serde_json::json!({}), Some(&token));
    assert_eq!(logout.status, 200, "{}", logout.body);
    assert_eq!(
        server.get("/api/whoami", &[("Authorization", &format!("Bearer {token}"))]).status,
        401
    );
    assert_eq!(server.post_form("/logout", &[], &[("Cookie", &cookie_header)]).status, 303);
    // Failed logins, web and API, with passwords worth leaking.
    let wrong = "wrong-password-that-must-stay-unprinted";
    for user in ["alice", "nobody-at-all"] {
        let failed = server.post_form("/login", &[("username", user), ("password", wrong)], &[]);
        assert_eq!(failed.status, 401);
        let failed = server.post_graphql(LOGIN, serde_json::json!({ "u": user, "p": wrong }), None);
        assert_eq!(failed.status, 200);
    }
    // A bad cookie and a bad token.
    let bad_cookie = "f".repeat(64);
    assert_eq!(
        server.get("/api/whoami", &[("Cookie", &format!("sessionid={bad_cookie}"))]).status,
        401
    );
    let bad_token = format!("{token}x");
    assert_eq!(
        server.get("/api/whoami", &[("Authorization", &format!("Bearer {bad_token}"))]).status,
        401
    );

    let output = server.signal_and_wait("TERM");
    assert!(output.contains("listening on http://"), "{output}");
    secrets.extend([
        cookie,
        token.clone(),
        bad_cookie,
        String::from("alice-password"),
        String::from("bob-password"),
        wrong.to_owned(),
    ]);
    // Each part of the token too: its signature alone is a secret.
    secrets.extend(token.split('.').map(str::to_owned));
    for secret in &secrets {
        assert!(!output.contains(secret.as_str()), "`{secret}` appears in the output:\n{output}");
    }
}

#[test]
fn the_first_run_admin_password_is_printed_once_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServeProcess::start(dir.path(), &[]);
    let output = server.output();
    let line = output
        .lines()
        .find(|line| line.contains("created the first superuser `admin`"))
        .expect("the first-run line");
    let password = line
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("a password in the line")
        .to_owned();
    let login = server.post_form("/login", &[("username", "admin"), ("password", &password)], &[]);
    assert_eq!(login.status, 303);
    let output = server.signal_and_wait("TERM");
    assert_eq!(output.matches(password.as_str()).count(), 1, "{output}");
    // A second start prints no password.
    let mut again = ServeProcess::start(dir.path(), &[]);
    let output = again.signal_and_wait("TERM");
    assert!(!output.contains(password.as_str()) && !output.contains("created the first"));
}
