//! The throwaway PostgreSQL cluster of the tests (`pg_cluster`) on its own,
//! before any of sessiond runs on it: databases apart from each other, a
//! cluster stopped and started again on its port, and the watchdog that
//! removes a cluster whose test process was killed. Each test says loudly
//! that it did not run where PostgreSQL is not installed (and fails on CI).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg_cluster::{self, Cluster};

/// Set for the child run of [`a_cluster_of_a_killed_test_process_is_stopped_and_removed`].
const CHILD: &str = "SESSIOND_TEST_PG_WATCHDOG_CHILD";

/// What the child prints before its cluster's port and folder (libtest may
/// have written the test's name on the same line).
const MARK: &str = "watchdog-test-cluster: ";

#[test]
fn each_new_database_is_empty_and_apart_from_the_others() {
    if !pg_cluster::installed("each_new_database_is_empty_and_apart_from_the_others") {
        return;
    }
    let cluster = pg_cluster::shared();
    let first = cluster.new_database();
    let second = cluster.new_database();
    assert_ne!(first, second);
    assert!(first.starts_with("postgres://postgres@127.0.0.1:"), "{first}");
    let name = |url: &str| url.rsplit('/').next().unwrap().to_owned();
    cluster.psql(&name(&first), "CREATE TABLE marker (n integer)");
    cluster.psql(&name(&first), "INSERT INTO marker VALUES (7)");
    assert_eq!(cluster.psql(&name(&first), "SELECT n FROM marker").trim(), "7");
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(cluster.psql(&name(&second), tables).trim(), "0", "the second is untouched");
    // Reached over TCP on 127.0.0.1 too, the way sessiond connects.
    let tcp = Command::new(pg_cluster::bin_dir().unwrap().join("psql"))
        .args(["-X", "-A", "-t", "-c", "SELECT n FROM marker", &first])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(tcp.status.success(), "{}", String::from_utf8_lossy(&tcp.stderr));
    assert_eq!(String::from_utf8_lossy(&tcp.stdout).trim(), "7");
}

#[test]
fn a_cluster_of_its_own_stops_and_starts_again_on_its_port() {
    if !pg_cluster::installed("a_cluster_of_its_own_stops_and_starts_again_on_its_port") {
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.new_database();
    let database = url.rsplit('/').next().unwrap().to_owned();
    cluster.psql(&database, "CREATE TABLE kept (n integer)");
    cluster.psql(&database, "INSERT INTO kept VALUES (1)");
    cluster.stop();
    let refused = std::net::TcpStream::connect(("127.0.0.1", cluster.port));
    assert!(refused.is_err(), "the port refuses while the cluster is stopped");
    cluster.start_again();
    assert_eq!(cluster.psql(&database, "SELECT n FROM kept").trim(), "1", "the data stayed");
    let folder = cluster.folder().to_path_buf();
    drop(cluster);
    assert!(!folder.exists(), "dropped: its folder is removed");
}

/// The child's half of the watchdog test: starts a cluster, prints where it
/// is, and waits to be killed. Run alone (without [`CHILD`]) it does
/// nothing, which is why its name says it is a helper.
#[test]
fn helper_for_the_watchdog_test_waits_to_be_killed() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let cluster = Cluster::start();
    println!("\n{MARK}{} {}", cluster.port, cluster.folder().display());
    std::mem::forget(cluster);
    loop {
        std::thread::park();
    }
}

#[test]
fn a_cluster_of_a_killed_test_process_is_stopped_and_removed() {
    if !pg_cluster::installed("a_cluster_of_a_killed_test_process_is_stopped_and_removed") {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "postgres_cluster::helper_for_the_watchdog_test_waits_to_be_killed"])
        .args(["--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| Some(line.split_once(MARK)?.1.to_owned()))
        .expect("the child started a cluster");
    let mut words = line.split(' ');
    let port: u16 = words.next().unwrap().parse().unwrap();
    let folder = std::path::PathBuf::from(words.next().unwrap());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the cluster runs");
    assert!(folder.exists());

    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while folder.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the watchdog left {} running", folder.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}
