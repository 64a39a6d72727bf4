//! What the threads of a running server share: [`App`].
//!
//! Invariant: this module knows nothing of HTTP or of the timer; both
//! take an `Arc<App>`, and `startup` (above all three) builds the app and
//! starts them. Everything here is read-only after start but for the
//! throttle, the counts cache, the slides' queue and the shutdown flag.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::clock::Clock;
use crate::secrets::Secrets;
use crate::settings::Settings;
use crate::throttle::Throttle;
use crate::users::DecoyHash;
use crate::web_sessions::Lifetime;

/// What every worker and the timer share. Read-only but for the throttle
/// and the shutdown flag.
pub struct App {
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub secrets: Secrets,
    /// Holds the HS256 key for login JWTs, made once from the secret: it
    /// verifies bearer tokens, remembering those that passed, and its key
    /// signs new ones.
    pub jwt_verifier: crate::jwt::Verifier,
    pub lifetime: Lifetime,
    pub throttle: Throttle,
    pub decoy: DecoyHash,
    /// The session counts of `/admin/`, reused for a few seconds.
    pub session_counts: crate::session_counts::CountsCache,
    /// This process's sliding-expiry writes, committed in groups on SQLite
    /// (see `slides`).
    pub slides: crate::slides::SlideQueue,
    /// The forward-auth rules, followed within a second of a change.
    pub access_rules: crate::access_rules::RuleCache,
    /// Set once to stop the workers and the timer.
    pub shutdown: Arc<AtomicBool>,
    /// This server's Prometheus metrics (the workers' request counts are
    /// their own; see `metrics`).
    pub metrics: crate::metrics::Metrics,
    /// The latest scheduled cleanup time the timer has dealt with: run it,
    /// found it claimed by another server, or failed. 0 before the first.
    pub timer_handled: std::sync::atomic::AtomicI64,
    /// The database file this server opened, to notice it deleted or
    /// replaced (`/healthz` answers 503 then).
    pub db_file: crate::db::FileWatch,
}
