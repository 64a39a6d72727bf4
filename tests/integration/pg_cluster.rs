//! A throwaway PostgreSQL cluster for the tests, from Debian's `postgresql`
//! package (the newest `/usr/lib/postgresql/*/bin`): `initdb` into a temp
//! folder as an unprivileged user (initdb and pg_ctl refuse to run as root,
//! and CI runs as root), `pg_ctl` on a free 127.0.0.1 port with its own
//! socket folder, trust authentication for the user `postgres`, and
//! `fsync=off` (a test cluster need not survive a power loss; nothing a test
//! checks depends on the disk flush). [`shared`] is the one cluster of the
//! test process, made on first use; [`Cluster::new_database`] gives each
//! test a database of its own; a test that stops its database's server
//! makes a cluster of its own with [`Cluster::start`].
//!
//! Statics have no destructor, so each cluster has a watchdog: a small
//! `sh` child in its own process group that stops the cluster and removes
//! its folder once the test process is gone, however it ended (passed,
//! panicked, killed). This module only makes clusters and databases; it
//! never reads or writes sessiond's tables, which the tests reach through
//! sessiond itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The unprivileged user that owns the clusters when the tests run as root.
const OWNER_WHEN_ROOT: &str = "nobody";

/// The folder of the newest installed PostgreSQL's programs, if any.
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether PostgreSQL is installed. `.ci/run` installs it, so with CI=true
/// a missing one fails the test; on a developer's machine `what` does not
/// run and says so loudly, past the harness's output capture.
#[track_caller]
pub fn installed(what: &str) -> bool {
    if bin_dir().is_some() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "PostgreSQL is missing on CI (no /usr/lib/postgresql/*/bin/initdb): .ci/run must \
             install it (`apt-get install -y postgresql`)"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! {what} did NOT run: PostgreSQL is not installed (no \
         /usr/lib/postgresql/*/bin/initdb). Install it with `apt-get install -y postgresql` \
         (as root) to run it; CI always does. !!!!!!!!\n"
    );
    false
}

/// The cluster every test of this process shares, started on first use.
/// Panics (with the server's log) when it cannot start; call [`installed`]
/// first.
#[track_caller]
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let cluster = SHARED.get_or_init(|| {
        let bin = bin_dir().ok_or_else(|| String::from("PostgreSQL is not installed"))?;
        Cluster::try_start(&bin, std::process::id())
    });
    match cluster {
        Ok(cluster) => cluster,
        Err(problem) => panic!("the shared PostgreSQL cluster did not start: {problem}"),
    }
}

/// One running PostgreSQL cluster in a temp folder (`data/`, `socket/`,
/// `server.log`); stopped and removed on drop, or by its watchdog.
pub struct Cluster {
    bin: PathBuf,
    folder: PathBuf,
    pub port: u16,
    next_database: AtomicU64,
}

impl Cluster {
    /// A cluster of the test's own, e.g. to stop under a running server.
    #[track_caller]
    pub fn start() -> Cluster {
        Cluster::start_watching(std::process::id())
    }

    /// A cluster whose watchdog waits for the process `pid` to be gone
    /// (rather than this one), so that a test can see the watchdog work.
    #[track_caller]
    pub fn start_watching(pid: u32) -> Cluster {
        let bin = bin_dir().expect("PostgreSQL is installed: call `pg_cluster::installed` first");
        Cluster::try_start(&bin, pid).unwrap_or_else(|problem| panic!("{problem}"))
    }

    fn try_start(bin: &Path, watched: u32) -> Result<Cluster, String> {
        let folder = tempfile::Builder::new()
            .prefix("sessiond-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a temp folder: {e}"))?
            .keep();
        watch_over(&folder, watched);
        if running_as_root() {
            let status = Command::new("chown")
                .arg(format!("{OWNER_WHEN_ROOT}:"))
                .arg(&folder)
                .status()
                .map_err(|e| format!("cannot run chown: {e}"))?;
            if !status.success() {
                return Err(format!("`chown {OWNER_WHEN_ROOT}: {}` failed", folder.display()));
            }
        }
        let mut cluster =
            Cluster { bin: bin.to_path_buf(), folder, port: 0, next_database: AtomicU64::new(0) };
        let data = cluster.data_dir();
        let initdb = cluster.as_owner(&cluster.bin.join("initdb")).then(|command| {
            command.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ])
        });
        check("initdb", &initdb)?;
        let socket = cluster.socket_dir();
        std::fs::create_dir(&socket).map_err(|e| format!("cannot make the socket folder: {e}"))?;
        if running_as_root() {
            let _ = Command::new("chown").arg(format!("{OWNER_WHEN_ROOT}:")).arg(&socket).status();
        }
        // A port that was free a moment ago may be taken by the time the
        // server binds it: try a few.
        let mut last_problem = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(problem) => last_problem = problem,
            }
        }
        Err(last_problem)
    }

    /// A new, empty database on this cluster; returns its URL.
    pub fn new_database(&self) -> String {
        let number = self.next_database.fetch_add(1, Ordering::SeqCst);
        let name = format!("t_{number}");
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of a database on this cluster, as `--db` takes it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The URL of a database on this cluster through its Unix socket, as a
    /// server on the same machine is best reached.
    pub fn socket_url(&self, database: &str) -> String {
        let folder = self.socket_dir();
        let folder = folder.to_str().expect("a UTF-8 socket folder");
        format!("postgres:///{database}?host={folder}&port={}&user=postgres", self.port)
    }

    /// Runs one SQL statement with psql (over the cluster's own socket) and
    /// returns what it printed, unaligned and without headers.
    #[track_caller]
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", database])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        check("psql", &Ok(output.clone())).unwrap_or_else(|problem| panic!("{sql}: {problem}"));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops the server as an operator would (`pg_ctl stop -m fast`):
    /// connections are closed, the port refuses.
    #[track_caller]
    pub fn stop(&self) {
        let stop = self.as_owner(&self.bin.join("pg_ctl")).then(|command| {
            command.arg("-D").arg(self.data_dir()).args(["-m", "fast", "-w", "-t", "30", "stop"])
        });
        check("pg_ctl stop", &stop).unwrap_or_else(|problem| panic!("{problem}"));
    }

    /// Freezes every process of the server (SIGSTOP), as when its host
    /// hangs: the kernel still accepts connections and acknowledges what is
    /// sent, but nothing answers.
    pub fn freeze(&self) {
        self.signal_all("STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal_all("CONT");
    }

    /// Sends `signal` to the postmaster and its children (a cluster that is
    /// not running has no `postmaster.pid`: nothing to do).
    fn signal_all(&self, signal: &str) {
        let Ok(pid_file) = std::fs::read_to_string(self.data_dir().join("postmaster.pid")) else {
            return;
        };
        let pid = pid_file.lines().next().unwrap_or("").trim().to_owned();
        // The children first, so that none is left running while its
        // postmaster is frozen (or frozen while it runs).
        let _ = Command::new("pkill").args([&format!("-{signal}"), "-P", &pid]).status();
        let _ = Command::new("kill").args(["-s", signal, &pid]).status();
    }

    /// Starts the stopped server again on the same port.
    #[track_caller]
    pub fn start_again(&self) {
        self.pg_ctl_start().unwrap_or_else(|problem| panic!("{problem}"));
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=500",
            self.port,
            self.socket_dir().display()
        );
        let start = self.as_owner(&self.bin.join("pg_ctl")).then(|command| {
            command
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.folder.join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"])
        });
        check("pg_ctl start", &start).map_err(|problem| {
            let log = std::fs::read_to_string(self.folder.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{problem}\n--- server.log (end):\n{}", tail.join("\n"))
        })
    }

    /// Restarts the server with TLS on and plain TCP connections refused
    /// (`hostnossl ... reject`; its socket still takes psql). Its
    /// certificate, for `127.0.0.1`, is signed by a CA made here with the
    /// `openssl` command; returns the CA certificate's PEM file.
    #[track_caller]
    pub fn require_tls(&self) -> PathBuf {
        let tls = self.folder.join("tls");
        std::fs::create_dir(&tls).expect("make the TLS folder");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl").current_dir(&tls).args(args).output();
            check("openssl", &output).unwrap_or_else(|problem| panic!("{problem}"));
        };
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca = ["req", "-x509", "-days", "2", "-subj", "/CN=sessiond test CA"];
        openssl(&[&ca[..], &key[..], &["-keyout", "ca.key", "-out", "ca.pem"]].concat());
        let request = ["req", "-subj", "/CN=127.0.0.1"];
        openssl(
            &[&request[..], &key[..], &["-keyout", "server.key", "-out", "server.csr"]].concat(),
        );
        std::fs::write(
            tls.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("write the certificate's extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", &format!("{OWNER_WHEN_ROOT}:")])
                .arg(&tls)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the TLS folder failed");
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .expect("open postgresql.conf");
        writeln!(
            conf,
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
            tls.join("server.crt").display(),
            tls.join("server.key").display()
        )
        .expect("write postgresql.conf");
        let hba = self.data_dir().join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(&hba, format!("hostnossl all all 0.0.0.0/0 reject\n{rules}"))
            .expect("write pg_hba.conf");
        self.stop();
        self.start_again();
        tls.join("ca.pem")
    }

    /// The cluster's temp folder (gone once it is stopped for good).
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    fn data_dir(&self) -> PathBuf {
        self.folder.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.folder.join("socket")
    }

    /// A command that runs `program` as the cluster's owner.
    fn as_owner(&self, program: &Path) -> OwnerCommand {
        let command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", OWNER_WHEN_ROOT, "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        OwnerCommand(command)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A frozen server would take the stop's signal only once thawed.
        self.thaw();
        let _stopped = self.as_owner(&self.bin.join("pg_ctl")).then(|command| {
            command.arg("-D").arg(self.data_dir()).args(["-m", "immediate", "-w", "stop"])
        });
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A command being built for the cluster's owner; `then` adds the
/// arguments and runs it.
struct OwnerCommand(Command);

impl OwnerCommand {
    fn then(mut self, build: impl FnOnce(&mut Command) -> &mut Command) -> std::io::Result<Output> {
        build(&mut self.0).stdin(Stdio::null()).output()
    }
}

/// `Ok` when the program ran and exited 0, else what it said.
fn check(what: &str, output: &std::io::Result<Output>) -> Result<(), String> {
    match output {
        Err(e) => Err(format!("cannot run {what}: {e}")),
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a local address").port()
}

/// Starts the watchdog of the cluster in `folder`: once the process
/// `watched` (the test process) is gone it stops the server (immediate shutdown, by the pid in
/// `postmaster.pid`) and removes the folder. Its own process group keeps a
/// Ctrl-C meant for the tests from stopping it before it has cleaned up.
fn watch_over(folder: &Path, watched: u32) {
    use std::os::unix::process::CommandExt;
    const WATCHDOG: &str = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        pid_file="$2/data/postmaster.pid"
        if [ -f "$pid_file" ]; then kill -QUIT "$(head -n 1 "$pid_file")" 2>/dev/null; fi
        i=0
        while [ -f "$pid_file" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        rm -rf "$2"
    "#;
    let spawned = Command::new("sh")
        .args(["-c", WATCHDOG, "sessiond-pg-watchdog"])
        .arg(watched.to_string())
        .arg(folder)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    // Not waited for: it outlives this process by design.
    drop(spawned.expect("start the cluster's watchdog"));
}
