//! The login throttle counts only wrong credentials (issue 14): a login
//! that fails because the database cannot take the write (a full disk)
//! answers 503, says so, and counts neither against the username nor
//! against the client address, so nobody is locked out once space is back.
//!
//! A full disk needs a small file system of its own: a tmpfs mounted for the
//! test (CI runs as root). Where mounting is not possible the test says
//! loudly that it did not run, and fails when `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sessiond::users::Role;

use crate::support::{TestServer, post_graphql};

/// A tmpfs of a few MiB, unmounted on drop.
struct SmallDisk {
    mount_point: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let mount_point = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
            .arg(mount_point.path())
            .status()
            .is_ok_and(|status| status.success());
        if mounted {
            return Some(SmallDisk { mount_point });
        }
        let message = "cannot mount a tmpfs (needs root): the full-disk throttle test DID NOT RUN";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        eprintln!("\n!!!!!!!! {message} !!!!!!!!\n");
        None
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Fills the file system until a write fails; returns the filler file.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // The last bytes that fit.
        while file.write_all(&chunk[..512]).is_ok() {}
        let _ = file.flush();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.mount_point.path()).status();
    }
}

#[test]
fn logins_that_fail_for_a_full_disk_do_not_count_as_failures() {
    crate::support::sqlite_only!("the SQLite file on a full tmpfs");
    let Some(disk) = SmallDisk::mount() else { return };
    let server_dir = tempfile::tempdir_in(disk.path()).unwrap();
    let server = TestServer::start_in(server_dir, &[]);
    server.create_user("alice", "alice-password", Role::User);
    server.create_user("bob", "bob-password", Role::User);
    // The WAL emptied, so that the next commit must grow the file.
    server.conn().query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let filler = disk.fill();

    // More than both limits (5 per username, 50 per address), all with the
    // right password.
    let right = [("username", "alice"), ("password", "alice-password")];
    for attempt in 0..52 {
        let response = server.post_form("/login", &right, &[]);
        assert_eq!(response.status, 503, "attempt {attempt}: {}", response.body);
        assert!(response.body.contains("database"), "the answer says why: {}", response.body);
    }
    let graphql = post_graphql(
        &server,
        "mutation { login(username: \"alice\", password: \"alice-password\") { token } }",
        serde_json::json!({}),
        None,
    );
    assert_eq!(graphql.status, 503, "{}", graphql.body);
    assert!(graphql.body.contains("database"), "the answer says why: {}", graphql.body);

    std::fs::remove_file(filler).unwrap();
    // Space is back: neither alice nor the address is locked out.
    server.login("alice", "alice-password");

    // The control: wrong passwords still count.
    for _ in 0..5 {
        let wrong = server.post_form("/login", &[("username", "bob"), ("password", "x")], &[]);
        assert_eq!(wrong.status, 401);
    }
    let locked =
        server.post_form("/login", &[("username", "bob"), ("password", "bob-password")], &[]);
    assert_eq!(locked.status, 429);
}

#[test]
fn two_servers_on_one_file_share_the_throttle_counts() {
    let first = TestServer::start();
    let second = first.another_on_the_same_file();
    first.create_user("alice", "alice-password", Role::User);
    first.create_user("bob", "bob-password", Role::User);
    let wrong = [("username", "alice"), ("password", "guess")];
    for server in [&first, &first, &first, &second, &second] {
        assert_eq!(server.post_form("/login", &wrong, &[]).status, 401);
    }
    // Five failures in all: both servers refuse alice now, even with the
    // right password.
    let right = [("username", "alice"), ("password", "alice-password")];
    for server in [&first, &second] {
        let response = server.post_form("/login", &right, &[]);
        assert_eq!(response.status, 429, "{}", response.body);
        assert!(response.header("retry-after").is_some());
    }
    // The controls: bob is not locked, and the window passes for alice.
    second.login("bob", "bob-password");
    for server in [&first, &second] {
        server.advance(sessiond::throttle::WINDOW_SECONDS);
    }
    second.login("alice", "alice-password");
}
