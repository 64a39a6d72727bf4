//! The `sessions list | revoke | end-user` commands (SPEC 1), run as the
//! built binary against a database made in a temp dir. The commands read the
//! real clock, so the rows are made relative to it.

use std::path::PathBuf;

use sessiond::jwt_sessions;
use sessiond::users::{self, Role, User};
use sessiond::web_sessions::{self, Lifetime};

use crate::support::Cli;

struct Db {
    dir: tempfile::TempDir,
    path: PathBuf,
    now: i64,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        crate::support::open_db(&path);
        Db { dir, path, now: chrono::Utc::now().timestamp() }
    }

    fn conn(&self) -> sessiond::db::Conn {
        crate::support::connect_db(&self.path)
    }

    fn user(&self, name: &str) -> User {
        users::create(&self.conn(), name, "", "a-password", Role::User, self.now).unwrap()
    }

    /// A web session that expires `expires_in` seconds from now; its key.
    fn web(&self, user: &User, expires_in: i64, agent: &str) -> String {
        let lifetime = Lifetime { idle: expires_in, absolute: 0 };
        web_sessions::create(&self.conn(), user, lifetime, self.now, "198.51.100.4", agent)
            .unwrap()
            .0
    }

    fn jwt(&self, jti: &str, user: &User, expires_in: i64) {
        jwt_sessions::create(
            &self.conn(),
            jti,
            user.id,
            self.now,
            self.now + expires_in,
            "",
            "curl/8",
        )
        .unwrap();
    }

    /// A run of the binary on this database with `args`.
    fn cli(&self, args: &[&str]) -> Cli {
        Cli::new(self.dir.path()).args(&["--db", self.path.to_str().unwrap()]).args(args)
    }

    #[track_caller]
    fn list_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["sessions", "list", "--json"];
        all.extend_from_slice(args);
        let stdout = self.cli(&all).run();
        let value: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON array");
        value.as_array().expect("an array").clone()
    }

    fn revoked_at(&self, jti: &str) -> (Option<i64>, Option<i64>) {
        self.conn()
            .query_row(
                "SELECT revoked_at, revoked_by FROM jwt_sessions WHERE jti = $1",
                [jti],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }
}

fn ids(items: &[serde_json::Value]) -> Vec<String> {
    items.iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn list_json_gives_every_field_and_names_web_sessions_by_hash() {
    let db = Db::new();
    let alice = db.user("alice");
    let key = db.web(&alice, 3600, "Firefox/1");
    db.jwt("5a4f0b8e-1111-4c2d-9e3f-000000000001", &alice, 900);
    let items = db.list_json(&[]);
    assert_eq!(items.len(), 2);
    let web = items.iter().find(|item| item["kind"] == "web").unwrap();
    assert_eq!(web["id"], web_sessions::hash_cookie_value(&key).unwrap().to_hex());
    assert_ne!(web["id"], key.as_str());
    assert_eq!(web["user"], "alice");
    assert_eq!(web["status"], "active");
    assert_eq!(web["client_addr"], "198.51.100.4");
    assert_eq!(web["user_agent"], "Firefox/1");
    assert_eq!(web["created"], sessiond::clock::rfc3339(db.now).as_str());
    assert_eq!(web["expires"], sessiond::clock::rfc3339(db.now + 3600).as_str());
    assert!(web["last_activity"].as_str().unwrap().ends_with('Z'));
    assert!(web.get("revoked_at").is_none());
    let jwt = items.iter().find(|item| item["kind"] == "jwt").unwrap();
    assert_eq!(jwt["id"], "5a4f0b8e-1111-4c2d-9e3f-000000000001");
    assert_eq!(jwt["revoked_at"], serde_json::Value::Null);
    assert_eq!(jwt["revoked_by"], serde_json::Value::Null);
    let text = db.cli(&["sessions", "list", "--json"]).run();
    assert!(!text.contains(&key), "the key is never printed");
}

#[test]
fn list_filters_by_kind_status_and_user() {
    let db = Db::new();
    let alice = db.user("alice");
    let bob = db.user("bob");
    let live = web_sessions::hash_cookie_value(&db.web(&alice, 3600, "")).unwrap().to_hex();
    let gone = web_sessions::hash_cookie_value(&db.web(&alice, -10, "")).unwrap().to_hex();
    let bobs = web_sessions::hash_cookie_value(&db.web(&bob, 3600, "")).unwrap().to_hex();
    db.jwt("alice-live", &alice, 900);
    db.jwt("alice-revoked", &alice, 900);
    jwt_sessions::revoke(&db.conn(), "alice-revoked", db.now, None).unwrap();

    assert_eq!(ids(&db.list_json(&["--kind", "web", "--status", "expired"])), vec![gone.clone()]);
    assert_eq!(
        ids(&db.list_json(&["--kind", "jwt", "--status", "revoked"])),
        vec!["alice-revoked"]
    );
    assert_eq!(
        ids(&db.list_json(&["--status", "active", "--user", "alice"])),
        vec![live.clone(), "alice-live".to_owned()]
    );
    assert_eq!(ids(&db.list_json(&["--user", "bob"])), vec![bobs]);
    let all = db.list_json(&["--kind", "web"]);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["id"], live.as_str(), "newest first");
}

#[test]
fn list_prints_a_table_with_fingerprints() {
    let db = Db::new();
    let alice = db.user("alice");
    let key = db.web(&alice, 3600, "Firefox/1");
    let text = db.cli(&["sessions", "list"]).run();
    assert!(text.contains(&web_sessions::hash_cookie_value(&key).unwrap().fingerprint()));
    assert!(text.contains("alice") && text.contains("active") && text.contains("Firefox/1"));
    assert!(!text.contains(&key));
    assert!(text.contains("1 session(s)."));
}

#[test]
fn list_for_an_unknown_user_exits_1_naming_them() {
    let db = Db::new();
    db.cli(&["sessions", "list", "--user", "nobody"]).status(1).stderr_contains("`nobody`").run();
}

#[test]
fn revoke_by_jti_revokes_without_an_actor() {
    let db = Db::new();
    let alice = db.user("alice");
    db.jwt("alice-live", &alice, 900);
    db.cli(&["sessions", "revoke", "alice-live"]).run();
    let (revoked_at, revoked_by) = db.revoked_at("alice-live");
    assert!(revoked_at.is_some());
    assert_eq!(revoked_by, None);
    assert_eq!(db.list_json(&["--status", "revoked"]).len(), 1);
}

#[test]
fn revoke_by_web_id_deletes_the_web_session() {
    let db = Db::new();
    let alice = db.user("alice");
    let key = db.web(&alice, 3600, "");
    let id = web_sessions::hash_cookie_value(&key).unwrap().to_hex();
    db.cli(&["sessions", "revoke", &id]).run();
    assert!(db.list_json(&["--kind", "web"]).is_empty());
}

#[test]
fn revoke_of_an_unknown_id_exits_1_naming_it() {
    let db = Db::new();
    db.cli(&["sessions", "revoke", "no-such-jti"]).status(1).stderr_contains("`no-such-jti`").run();
    let unknown_hash = "ab".repeat(32);
    let stderr = db.cli(&["sessions", "revoke", &unknown_hash]).status(1).output().stderr;
    assert!(stderr.contains("abababababab"), "{stderr}");
    assert!(!stderr.contains(&unknown_hash), "a 64-hex value is never printed whole");
}

#[test]
fn end_user_ends_every_session_of_that_user_only() {
    let db = Db::new();
    let alice = db.user("alice");
    let bob = db.user("bob");
    db.web(&alice, 3600, "");
    db.web(&alice, 3600, "");
    db.web(&bob, 3600, "");
    db.jwt("alice-live", &alice, 900);
    let stdout = db.cli(&["sessions", "end-user", "alice"]).run();
    assert!(
        stdout.contains("deleted 2 web session(s)") && stdout.contains("revoked 1"),
        "{stdout}"
    );
    assert!(db.list_json(&["--user", "alice", "--status", "active"]).is_empty());
    assert_eq!(db.list_json(&["--user", "bob"]).len(), 1);
    db.cli(&["sessions", "end-user", "nobody"]).status(1).run();
}
