//! The throwaway PostgreSQL cluster of the tests (`pg_cluster`) on its own,
//! before any of sessiond runs on it: databases apart from each other, a
//! cluster stopped and started again on its port, and the watchdog that
//! removes a cluster whose test process was killed. Each test says loudly
//! that it did not run where PostgreSQL is not installed (and fails on CI).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg_cluster::{self, Cluster};

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

#[test]
fn a_cluster_whose_test_process_was_killed_is_stopped_and_removed() {
    if !pg_cluster::installed("a_cluster_whose_test_process_was_killed_is_stopped_and_removed") {
        return;
    }
    // A stand-in for a test process: the cluster's watchdog waits for it,
    // and it is killed as a test process can be.
    let mut stand_in = Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().unwrap();
    let cluster = Cluster::start_watching(stand_in.id());
    let (port, folder) = (cluster.port, cluster.folder().to_path_buf());
    // Only the watchdog may clean up now, as after a kill nothing else runs.
    std::mem::forget(cluster);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "the cluster runs");
    assert!(folder.exists());

    stand_in.kill().unwrap();
    stand_in.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while folder.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the watchdog left {} running", folder.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}
