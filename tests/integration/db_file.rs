//! The database file itself: several servers starting at once on a new
//! file (SPEC 11), a running server noticing that its file was deleted or
//! replaced (SPEC 8's `/healthz`), and commands that refuse a database that
//! does not exist instead of creating an empty one.

use std::path::Path;

use crate::support::{ServeProcess, graphql_request, request};

/// Starts `count` `sessiond serve` processes on the same new file at the
/// same moment.
fn start_at_once(dir: &Path, count: usize) -> Vec<ServeProcess> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(count));
    let starts: Vec<_> = (0..count)
        .map(|_| {
            let dir = dir.to_path_buf();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                ServeProcess::start(&dir, &[])
            })
        })
        .collect();
    starts.into_iter().map(|start| start.join().expect("every server starts")).collect()
}

/// The first-run admin password from a server's output, if it made one.
fn first_admin_password(output: &str) -> Option<String> {
    let line = output.lines().find(|line| line.contains("created the first superuser"))?;
    let rest = line.split(" with password ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

#[test]
fn three_servers_starting_at_once_on_a_new_file_agree() {
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let servers = start_at_once(dir.path(), 3);
        let outputs: Vec<String> = servers.iter().map(ServeProcess::output).collect();
        let passwords: Vec<String> =
            outputs.iter().filter_map(|output| first_admin_password(output)).collect();
        assert_eq!(passwords.len(), 1, "round {round}: one first-run admin: {outputs:#?}");
        let conn = sessiond::db::connect(&dir.path().join("sessiond.sqlite3")).unwrap();
        assert_eq!(crate::support::count(&conn, "users"), 1, "round {round}");

        // They share the generated signing key: a token from one server is
        // honoured by the others.
        let login = graphql_request(
            servers[0].addr,
            "mutation ($p: String!) { login(username: \"admin\", password: $p) { token } }",
            serde_json::json!({ "p": passwords[0] }),
            None,
        );
        assert_eq!(login.status, 200, "{}", login.body);
        let token = login.json()["data"]["login"]["token"].as_str().unwrap().to_owned();
        for server in &servers[1..] {
            let bearer = format!("Bearer {token}");
            let whoami =
                request(server.addr, "GET", "/api/whoami", &[("Authorization", &bearer)], b"");
            assert_eq!(whoami.status, 200, "round {round}: {}", whoami.body);
        }
    }
}
