//! Starting and stopping the whole server, above everything it starts.
//!
//! [`start`] opens and migrates the database, settles the secrets, creates
//! the first superuser on an empty database, builds the shared [`App`],
//! binds the listener (and the metrics listener when it is configured) and
//! starts the workers and the cleanup timer. Tests
//! call it in-process with a manual clock and `127.0.0.1:0`; `sessiond
//! serve` calls it and then waits for SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::app::App;
use crate::clock::{Clock, SystemClock};
use crate::http::access_log::Destination;
use crate::http::server::{HttpServer, MetricsServer};
use crate::settings::Settings;
use crate::throttle::Throttle;
use crate::users::{self, DecoyHash, Role};
use crate::web_sessions::Lifetime;

/// How to start: the clock and the number of workers.
pub struct StartOptions {
    pub clock: Arc<dyn Clock>,
    pub workers: usize,
    /// The flag that stops the server; `serve` hands in the one its signal
    /// handlers set.
    pub shutdown: Arc<AtomicBool>,
    /// Where the access log goes (when `SESSIOND_ACCESS_LOG` is on):
    /// stderr, or memory for in-process tests.
    pub access_log: Destination,
}

impl Default for StartOptions {
    fn default() -> StartOptions {
        StartOptions {
            clock: Arc::new(SystemClock),
            workers: default_workers(),
            shutdown: Arc::new(AtomicBool::new(false)),
            access_log: Destination::Stderr,
        }
    }
}

/// Enough workers that a slow password check does not stall other requests.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(4, 16)
}

/// A started server.
pub struct Running {
    app: Arc<App>,
    http: Option<HttpServer>,
    metrics_http: Option<MetricsServer>,
    timer: Option<JoinHandle<()>>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

/// Starts the server.
pub fn start(settings: Settings, options: StartOptions) -> anyhow::Result<Running> {
    let conn = crate::db::open(&settings.db)?;
    let db_file = crate::db::FileWatch::new(&settings.db);
    let secrets = crate::secrets::resolve(&conn, &settings)?;
    let now = options.clock.now();
    create_first_admin(&conn, now)?;
    drop(conn);
    let lifetime =
        Lifetime { idle: settings.session_cookie_age, absolute: settings.session_absolute_age };
    let bind = settings.bind;
    let jwt_key = jwt_simple::algorithms::HS256Key::from_bytes(secrets.jwt_secret_key.as_bytes());
    let app = Arc::new(App {
        settings,
        clock: options.clock,
        jwt_verifier: crate::jwt::Verifier::new(jwt_key),
        secrets,
        lifetime,
        throttle: Throttle::new(),
        decoy: DecoyHash::new(),
        session_counts: Default::default(),
        slides: crate::slides::SlideQueue::new(options.workers),
        access_rules: Default::default(),
        shutdown: options.shutdown,
        timer_handled: Default::default(),
        db_file,
        metrics: crate::metrics::Metrics::new(),
    });
    let mut running = Running {
        app: Arc::clone(&app),
        http: None,
        metrics_http: None,
        timer: None,
        addr: bind,
        metrics_addr: None,
    };
    // On an error, dropping `running` stops whatever had started.
    let http = HttpServer::start(Arc::clone(&app), bind, options.workers, &options.access_log)?;
    running.addr = http.addr();
    running.http = Some(http);
    if let Some(metrics_bind) = app.settings.metrics_bind {
        let metrics_http = MetricsServer::start(Arc::clone(&app), metrics_bind)?;
        running.metrics_addr = Some(metrics_http.addr());
        running.metrics_http = Some(metrics_http);
    }
    running.timer = crate::schedule::spawn_timer(Arc::clone(&app))?;
    Ok(running)
}

/// On a database without users, creates the superuser `admin` with a random
/// password and prints it once. Two servers starting on one new file agree:
/// the check and the insert share one transaction.
fn create_first_admin(conn: &crate::db::Conn, now: crate::clock::UnixTime) -> anyhow::Result<()> {
    let tx = conn.transaction(crate::db::Behavior::Immediate)?;
    if !users::none_exist(&tx)? {
        return Ok(());
    }
    let password = crate::random::password();
    users::create(&tx, "admin", "", &password, Role::Admin, now)?;
    tx.commit()?;
    eprintln!(
        "created the first superuser `admin` with password {password} (shown only this once; change it with `sessiond changepassword admin`)"
    );
    Ok(())
}

impl Running {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the metrics listener, when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Blocks until the shutdown flag is set, then stops.
    pub fn wait(mut self) {
        while !self.app.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.stop_now();
    }

    /// Stops accepting, finishes requests in flight and joins every thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.app.shutdown.store(true, Ordering::SeqCst);
        let was_running = self.http.is_some();
        if let Some(http) = self.http.take() {
            http.join();
        }
        if let Some(metrics_http) = self.metrics_http.take() {
            metrics_http.join();
        }
        if let Some(timer) = self.timer.take() {
            let _ = timer.join();
        }
        if was_running {
            // Every thread and its connection has stopped: fold the WAL
            // into the file (see `db::connect` for why they did not).
            crate::db::checkpoint(&self.app.settings.db);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_now();
    }
}
