//! The Prometheus metrics of one server (SPEC 10): what is counted, how it
//! is counted without a lock on the request path, and the exposition.
//!
//! Each `App` owns one [`Metrics`], so two servers in one
//! process (the integration tests) count apart. Requests are counted per
//! worker: every worker owns a [`WorkerRecorder`], the only writer of
//! its own fixed arrays of atomics (one slot per route pattern, method and
//! status, and a duration histogram per route), so recording a request is a
//! few relaxed loads and stores on memory no other worker writes. The rare
//! events (logins, forward-auth decisions, cleanup runs) are atomics shared
//! by the workers: an atomic add, never a lock. A scrape sums the workers'
//! arrays; only then (and when a worker starts) is a mutex taken, the one
//! that holds the list of workers.
//!
//! Label values come from fixed sets only: [`ROUTES`] (an unknown path is
//! [`UNMATCHED`], never the path itself), the methods, the numeric status,
//! and the kinds and outcomes named here. This module encodes with
//! `prometheus-client`'s Prometheus text format (0.0.4) from a snapshot taken
//! at scrape time. [`scrape`] gathers what the database adds (the session
//! counts the admin overview caches, the last successful cleanup from the
//! run records) through the modules that own them; this module runs no SQL,
//! reads no clock and knows no HTTP.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;

use crate::clock::UnixTime;
use crate::session_counts::SessionCounts;

/// The exposition of a scrape at `now`: the counters of `metrics`, the
/// cached session counts (taken again when older than 5 s) and the last
/// successful cleanup from the records. A database error leaves those out
/// of this scrape and is logged; the counters are still answered.
pub fn scrape(
    metrics: &Metrics,
    session_counts: &crate::session_counts::CountsCache,
    conn: &crate::db::Conn,
    now: UnixTime,
) -> String {
    let sessions = match session_counts.get(conn, now) {
        Ok(counts) => Some(counts),
        Err(error) => {
            eprintln!("error: metrics: failed to count the sessions: {error}");
            None
        }
    };
    let last_cleanup_success = crate::cleanup::last_success_started(conn).unwrap_or_else(|error| {
        eprintln!("error: metrics: failed to read the cleanup runs: {error}");
        None
    });
    metrics.render(&Scraped { sessions, last_cleanup_success })
}

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `route` value of every path the router does not know.
pub const UNMATCHED: &str = "unmatched";

/// Every route pattern the router answers, and [`UNMATCHED`] last. A route
/// added to the router belongs here too, or it is counted as unmatched.
pub const ROUTES: &[&str] = &[
    "/",
    "/login",
    "/logout",
    "/api/whoami",
    "/healthz",
    "/static/style.css",
    "/graphql",
    "/auth/forward",
    "/auth/request",
    "/account/sessions",
    "/account/sessions/end",
    "/account/sessions/revoke",
    "/account/sessions/end-others",
    "/admin",
    "/admin/",
    "/admin/sessions/web",
    "/admin/sessions/jwt",
    "/admin/sessions/web/delete",
    "/admin/sessions/jwt/revoke",
    "/admin/sessions/jwt/delete",
    "/admin/users/end-sessions",
    "/admin/cleanup",
    "/admin/schedule",
    "/admin/access",
    "/admin/access/add",
    "/admin/access/remove",
    UNMATCHED,
];

/// A route pattern, as an index into [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(usize);

impl Route {
    /// The route of a request path: the pattern it matches, else
    /// [`UNMATCHED`]. Every route of sessiond is a fixed path.
    pub fn of_path(path: &str) -> Route {
        let unmatched = ROUTES.len() - 1;
        Route(ROUTES[..unmatched].iter().position(|route| *route == path).unwrap_or(unmatched))
    }

    pub fn unmatched() -> Route {
        Route(ROUTES.len() - 1)
    }

    pub fn as_str(self) -> &'static str {
        ROUTES[self.0]
    }
}

/// The `method` label's values; any method but these three is `other`.
pub const METHODS: [&str; 4] = ["GET", "HEAD", "POST", "other"];

/// The statuses that get a slot of their own in each worker's arrays: every
/// status sessiond or its HTTP layer sends. Any other is counted in a small
/// map beside them (a lock of that worker's own, taken only for such a
/// status and by the scrape).
const SLOTTED_STATUSES: [u16; 23] = [
    200, 204, 301, 302, 303, 304, 400, 401, 403, 404, 405, 408, 411, 413, 414, 415, 417, 429, 431,
    500, 501, 503, 505,
];

/// The upper bounds of the request-duration histogram's buckets, in
/// seconds: from the 50 µs of a cookie request to the ~0.5 s of a password
/// check under load.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The same bounds in nanoseconds, compared on the request path.
const DURATION_BUCKETS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Which login a count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    /// The form at `POST /login`.
    Web,
    /// The GraphQL `login` mutation.
    Jwt,
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    /// Wrong credentials, or a user who cannot sign in.
    Failure,
    /// Refused by the throttle before the password was checked.
    Throttled,
}

impl LoginOutcome {
    /// The outcome of a run of the login sequence.
    pub fn of<T>(login: &crate::accounts::Login<T>) -> LoginOutcome {
        match login {
            crate::accounts::Login::Started(_) => LoginOutcome::Success,
            crate::accounts::Login::Refused => LoginOutcome::Failure,
            crate::accounts::Login::Throttled { .. } => LoginOutcome::Throttled,
        }
    }
}

/// What forward auth answered (SPEC 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardAuthDecision {
    /// Signed in with a role the rule allows: 200 with the user headers.
    Allow,
    /// A `deny` rule, or signed in below the rule's role: 403.
    Deny,
    /// Not signed in where the rule needs it: 401 or the redirect to login.
    Unauthenticated,
    /// A `bypass` rule, signed in or not.
    Bypass,
}

/// What started a cleanup this server ran. (A `sessiond` command's run is
/// another process's.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupTrigger {
    Timer,
    Admin,
}

const LOGIN_KINDS: [&str; 2] = ["web", "jwt"];
const LOGIN_OUTCOMES: [&str; 3] = ["success", "failure", "throttled"];
const DECISIONS: [&str; 4] = ["allow", "deny", "unauthenticated", "bypass"];
const TRIGGERS: [&str; 2] = ["timer", "admin"];
const CLEANUP_OUTCOMES: [&str; 2] = ["ok", "failed"];
const SESSION_KINDS: [&str; 2] = ["web", "jwt"];

/// The metrics of one server.
pub struct Metrics {
    /// Every worker's recorder, for the scrape to sum.
    workers: Mutex<Vec<Arc<WorkerCounts>>>,
    logins: [[AtomicU64; 3]; 2],
    forward_auth: [AtomicU64; 4],
    cleanup_runs: [[AtomicU64; 2]; 2],
    cleanup_deleted: [AtomicU64; 2],
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            workers: Mutex::new(Vec::new()),
            logins: Default::default(),
            forward_auth: Default::default(),
            cleanup_runs: Default::default(),
            cleanup_deleted: Default::default(),
        }
    }

    /// A recorder for one more worker; it alone writes its counts.
    pub fn worker_recorder(&self) -> WorkerRecorder {
        let counts = Arc::new(WorkerCounts::new());
        self.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(counts.clone());
        WorkerRecorder { counts }
    }

    /// Counts one login by where it came from and how it ended.
    pub fn record_login(&self, kind: LoginKind, outcome: LoginOutcome) {
        let kind = match kind {
            LoginKind::Web => 0,
            LoginKind::Jwt => 1,
        };
        let outcome = match outcome {
            LoginOutcome::Success => 0,
            LoginOutcome::Failure => 1,
            LoginOutcome::Throttled => 2,
        };
        self.logins[kind][outcome].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one forward-auth answer.
    pub fn record_forward_auth(&self, decision: ForwardAuthDecision) {
        let index = match decision {
            ForwardAuthDecision::Allow => 0,
            ForwardAuthDecision::Deny => 1,
            ForwardAuthDecision::Unauthenticated => 2,
            ForwardAuthDecision::Bypass => 3,
        };
        self.forward_auth[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one cleanup run of this server: `deleted` is `Some((web, jwt))`
    /// for a run that finished, `None` for one that failed (what a failed
    /// run deleted before its error is in its record, not here).
    pub fn record_cleanup(&self, trigger: CleanupTrigger, deleted: Option<(usize, usize)>) {
        let trigger = match trigger {
            CleanupTrigger::Timer => 0,
            CleanupTrigger::Admin => 1,
        };
        let outcome = usize::from(deleted.is_none());
        self.cleanup_runs[trigger][outcome].fetch_add(1, Ordering::Relaxed);
        if let Some((web, jwt)) = deleted {
            let as_u64 = |count: usize| u64::try_from(count).unwrap_or(u64::MAX);
            self.cleanup_deleted[0].fetch_add(as_u64(web), Ordering::Relaxed);
            self.cleanup_deleted[1].fetch_add(as_u64(jwt), Ordering::Relaxed);
        }
    }

    /// The exposition: every metric of SPEC 10 in the Prometheus text
    /// format, with what the scrape read from the database.
    pub fn render(&self, scraped: &Scraped) -> String {
        let snapshot = Snapshot {
            requests: self.sum_requests(),
            durations: self.sum_durations(),
            logins: load_2d(&self.logins),
            forward_auth: self.forward_auth.each_ref().map(|count| count.load(Ordering::Relaxed)),
            cleanup_runs: load_2d(&self.cleanup_runs),
            cleanup_deleted: self
                .cleanup_deleted
                .each_ref()
                .map(|count| count.load(Ordering::Relaxed)),
            scraped: scraped.clone(),
            process: ProcessStats::read(),
        };
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(snapshot));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String does not fail");
        text
    }

    fn workers(&self) -> Vec<Arc<WorkerCounts>> {
        self.workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Every worker's request counts added up, by (route, method, status).
    fn sum_requests(&self) -> BTreeMap<(usize, usize, u16), u64> {
        let mut sums = BTreeMap::new();
        for worker in self.workers() {
            for (slot, count) in worker.requests.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let (route, method, status) = unslot(slot);
                    *sums.entry((route, method, SLOTTED_STATUSES[status])).or_insert(0) += count;
                }
            }
            let other =
                worker.other_statuses.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for (key, count) in other.iter() {
                *sums.entry(*key).or_insert(0) += count;
            }
        }
        sums
    }

    /// Every worker's duration histogram added up, per route that was seen.
    fn sum_durations(&self) -> Vec<(usize, RouteHistogram)> {
        let mut sums: Vec<RouteHistogram> = vec![RouteHistogram::default(); ROUTES.len()];
        for worker in self.workers() {
            for (route, histogram) in worker.durations.iter().enumerate() {
                let sum = &mut sums[route];
                for (bucket, count) in histogram.buckets.iter().enumerate() {
                    sum.buckets[bucket] += count.load(Ordering::Relaxed);
                }
                sum.sum_nanos += histogram.sum_nanos.load(Ordering::Relaxed);
            }
        }
        sums.into_iter().enumerate().filter(|(_, histogram)| histogram.count() > 0).collect()
    }
}

/// What a scrape read from the database for the exposition.
#[derive(Debug, Clone, Default)]
pub struct Scraped {
    /// The `/admin/` counts (cached for at most 5 s), when they could be read.
    pub sessions: Option<SessionCounts>,
    /// When the last successful cleanup run (of any trigger, any process)
    /// started, from the run records; `None` when there is none.
    pub last_cleanup_success: Option<UnixTime>,
}

/// The counting side of one worker. Not `Clone`: one recorder, one writer
/// at a time (a worker moves between threads only through the pool's
/// lock), which is what lets it count with plain loads and stores.
pub struct WorkerRecorder {
    counts: Arc<WorkerCounts>,
}

impl WorkerRecorder {
    /// Counts one answered request and its duration.
    pub fn record_request(&self, route: Route, method: &str, status: u16, duration: Duration) {
        let method = METHODS.iter().position(|known| *known == method).unwrap_or(3);
        match SLOTTED_STATUSES.iter().position(|known| *known == status) {
            Some(status) => bump(&self.counts.requests[slot(route.0, method, status)], 1),
            None => {
                let mut other = self
                    .counts
                    .other_statuses
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                *other.entry((route.0, method, status)).or_insert(0) += 1;
            }
        }
        let histogram = &self.counts.durations[route.0];
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(DURATION_BUCKETS_NANOS.len());
        bump(&histogram.buckets[bucket], 1);
        bump(&histogram.sum_nanos, nanos);
    }
}

/// Adds to a counter that only the calling worker writes: a load and a
/// store, without the locked read-modify-write of `fetch_add` (the scrape
/// only reads).
fn bump(counter: &AtomicU64, amount: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(amount), Ordering::Relaxed);
}

/// One worker's counts, written by its recorder only.
struct WorkerCounts {
    /// One counter per (route, method, slotted status).
    requests: Box<[AtomicU64]>,
    /// Counts for statuses without a slot.
    other_statuses: Mutex<BTreeMap<(usize, usize, u16), u64>>,
    durations: Box<[WorkerHistogram]>,
}

impl WorkerCounts {
    fn new() -> WorkerCounts {
        let slots = ROUTES.len() * METHODS.len() * SLOTTED_STATUSES.len();
        WorkerCounts {
            requests: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            other_statuses: Mutex::new(BTreeMap::new()),
            durations: (0..ROUTES.len()).map(|_| WorkerHistogram::default()).collect(),
        }
    }
}

fn slot(route: usize, method: usize, status: usize) -> usize {
    (route * METHODS.len() + method) * SLOTTED_STATUSES.len() + status
}

fn unslot(slot: usize) -> (usize, usize, usize) {
    let status = slot % SLOTTED_STATUSES.len();
    let rest = slot / SLOTTED_STATUSES.len();
    (rest / METHODS.len(), rest % METHODS.len(), status)
}

/// One route's durations in one worker: a count per bucket (not
/// cumulative; the last is above every bound) and the sum.
#[derive(Default)]
struct WorkerHistogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// One route's durations summed over the workers.
#[derive(Debug, Clone, Default)]
struct RouteHistogram {
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum_nanos: u64,
}

impl RouteHistogram {
    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

fn load_2d<const N: usize, const M: usize>(counts: &[[AtomicU64; M]; N]) -> [[u64; M]; N] {
    counts.each_ref().map(|row| row.each_ref().map(|count| count.load(Ordering::Relaxed)))
}

/// Everything one scrape exposes, taken before encoding.
#[derive(Debug)]
struct Snapshot {
    requests: BTreeMap<(usize, usize, u16), u64>,
    durations: Vec<(usize, RouteHistogram)>,
    logins: [[u64; 3]; 2],
    forward_auth: [u64; 4],
    cleanup_runs: [[u64; 2]; 2],
    cleanup_deleted: [u64; 2],
    scraped: Scraped,
    process: Option<ProcessStats>,
}

/// No exemplars anywhere; this names their type for the encoder.
const NO_EXEMPLAR: Option<&Exemplar<NoLabelSet, u64>> = None;

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "sessiond_http_requests",
            "HTTP requests answered, by route pattern, method and status code.",
            None,
            MetricType::Counter,
        )?;
        for ((route, method, status), count) in &self.requests {
            let status = status.to_string();
            let labels =
                [("route", ROUTES[*route]), ("method", METHODS[*method]), ("status", &status)];
            family.encode_family(&labels)?.encode_counter(count, NO_EXEMPLAR)?;
        }

        let mut family = encoder.encode_descriptor(
            "sessiond_http_request_duration_seconds",
            "Time from a request read to its answer ready, by route pattern.",
            None,
            MetricType::Histogram,
        )?;
        for (route, histogram) in &self.durations {
            let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
                .iter()
                .copied()
                .zip(histogram.buckets.iter().copied())
                .chain([(f64::INFINITY, histogram.buckets[DURATION_BUCKETS.len()])])
                .collect();
            let sum = histogram.sum_nanos as f64 / 1e9;
            family.encode_family(&[("route", ROUTES[*route])])?.encode_histogram::<NoLabelSet>(
                sum,
                histogram.count(),
                &buckets,
                None,
            )?;
        }

        let mut family = encoder.encode_descriptor(
            "sessiond_logins",
            "Login attempts, by kind (web form, GraphQL) and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (kind, outcomes) in LOGIN_KINDS.iter().zip(&self.logins) {
            for (outcome, count) in LOGIN_OUTCOMES.iter().zip(outcomes) {
                family
                    .encode_family(&[("kind", *kind), ("outcome", *outcome)])?
                    .encode_counter(count, NO_EXEMPLAR)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "sessiond_forward_auth_decisions",
            "Forward-auth answers, by decision.",
            None,
            MetricType::Counter,
        )?;
        for (decision, count) in DECISIONS.iter().zip(&self.forward_auth) {
            family.encode_family(&[("decision", *decision)])?.encode_counter(count, NO_EXEMPLAR)?;
        }

        if let Some(sessions) = &self.scraped.sessions {
            let mut family = encoder.encode_descriptor(
                "sessiond_sessions",
                "Sessions in the database, by kind and status (the admin overview's counts, at most 5 s old).",
                None,
                MetricType::Gauge,
            )?;
            let rows = [
                ("web", "active", sessions.web.active),
                ("web", "expired", sessions.web.expired),
                ("jwt", "active", sessions.jwt.active),
                ("jwt", "revoked", sessions.jwt.revoked),
                ("jwt", "expired", sessions.jwt.expired),
            ];
            for (kind, status, count) in rows {
                family
                    .encode_family(&[("kind", kind), ("status", status)])?
                    .encode_gauge(&count)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "sessiond_cleanup_runs",
            "Cleanup runs this server made, by trigger and outcome.",
            None,
            MetricType::Counter,
        )?;
        for (trigger, outcomes) in TRIGGERS.iter().zip(&self.cleanup_runs) {
            for (outcome, count) in CLEANUP_OUTCOMES.iter().zip(outcomes) {
                family
                    .encode_family(&[("trigger", *trigger), ("outcome", *outcome)])?
                    .encode_counter(count, NO_EXEMPLAR)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "sessiond_cleanup_deleted_rows",
            "Expired sessions deleted by this server's finished cleanup runs, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (kind, count) in SESSION_KINDS.iter().zip(&self.cleanup_deleted) {
            family.encode_family(&[("kind", *kind)])?.encode_counter(count, NO_EXEMPLAR)?;
        }

        if let Some(started) = self.scraped.last_cleanup_success {
            encoder
                .encode_descriptor(
                    "sessiond_cleanup_last_success_timestamp_seconds",
                    "When the last successful cleanup run (any trigger, any process) started, in Unix seconds.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&started)?;
        }

        encoder
            .encode_descriptor(
                "sessiond_build_info",
                "The running build; the value is always 1.",
                None,
                MetricType::Gauge,
            )?
            .encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
            .encode_gauge(&1_i64)?;

        if let Some(process) = &self.process {
            process.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// The standard process metrics, read from `/proc/self` as Prometheus'
/// Go client does (`process_*`). `None` where `/proc` is missing.
#[derive(Debug, Clone, Copy)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_memory_bytes: u64,
    virtual_memory_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time_seconds: f64,
}

/// Clock ticks per second of `/proc`'s times: USER_HZ, which Linux fixes
/// at 100 for user space on every architecture (Go's procfs assumes it too).
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name, in parentheses, may hold spaces: count fields
        // from after its closing parenthesis (field 3, the state, comes first).
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |number: usize| -> Option<f64> { fields.get(number - 3)?.parse().ok() };
        let cpu_seconds = (field(14)? + field(15)?) / USER_HZ;
        let start_ticks = field(22)?;
        let virtual_memory_bytes = fields.get(23 - 3)?.parse().ok()?;
        let boot_time: f64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let resident_kib: u64 = std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
            limits
                .lines()
                .find_map(|line| line.strip_prefix("Max open files"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        Some(ProcessStats {
            cpu_seconds,
            resident_memory_bytes: resident_kib * 1024,
            virtual_memory_bytes,
            open_fds,
            max_fds,
            start_time_seconds: boot_time + start_ticks / USER_HZ,
        })
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encoder
            .encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?
            .encode_counter(&self.cpu_seconds, NO_EXEMPLAR)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                self.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                self.virtual_memory_bytes,
            ),
            ("process_open_fds", "Number of open file descriptors.", self.open_fds),
        ];
        for (name, help, value) in gauges {
            encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)?;
        }
        encoder
            .encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&self.start_time_seconds)?;
        if let Some(max_fds) = self.max_fds {
            encoder
                .encode_descriptor(
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&max_fds)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_maps_to_its_route_or_to_unmatched() {
        assert_eq!(Route::of_path("/api/whoami").as_str(), "/api/whoami");
        assert_eq!(Route::of_path("/api/whoami/secret-token").as_str(), UNMATCHED);
        assert_eq!(Route::of_path(UNMATCHED).as_str(), UNMATCHED);
    }

    #[test]
    fn slots_round_trip() {
        for route in [0, 3, ROUTES.len() - 1] {
            for method in 0..METHODS.len() {
                for status in [0, 5, SLOTTED_STATUSES.len() - 1] {
                    assert_eq!(unslot(slot(route, method, status)), (route, method, status));
                }
            }
        }
    }

    #[test]
    fn buckets_agree_in_both_units() {
        for (seconds, nanos) in DURATION_BUCKETS.iter().zip(DURATION_BUCKETS_NANOS) {
            assert_eq!((seconds * 1e9).round() as u64, nanos);
        }
    }

    #[test]
    fn requests_of_every_worker_are_summed_and_odd_statuses_kept() {
        let metrics = Metrics::new();
        let one = metrics.worker_recorder();
        let two = metrics.worker_recorder();
        let whoami = Route::of_path("/api/whoami");
        one.record_request(whoami, "GET", 200, Duration::from_micros(50));
        two.record_request(whoami, "GET", 200, Duration::from_millis(30));
        two.record_request(whoami, "GET", 418, Duration::from_millis(30));
        let text = metrics.render(&Scraped::default());
        assert!(
            text.contains(
                "sessiond_http_requests_total{route=\"/api/whoami\",method=\"GET\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("status=\"418\"} 1\n"), "{text}");
        assert!(
            text.contains(
                "sessiond_http_request_duration_seconds_bucket{route=\"/api/whoami\",le=\"0.0001\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "sessiond_http_request_duration_seconds_count{route=\"/api/whoami\"} 3\n"
            ),
            "{text}"
        );
    }
}
