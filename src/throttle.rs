//! The login throttle: too many failed logins for one username, or from one
//! client address, and every further attempt is refused for a while.
//!
//! The rule (SPEC 3): after 5 failures for one username within 15 minutes,
//! or 50 from one client address, further attempts, correct or not, get 429
//! with `Retry-After` until the window passes. The web form and the GraphQL
//! `login` share one throttle. It lives in the server's memory: a restart
//! forgets it, and two servers on one file each count their own failures.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::clock::UnixTime;

pub const WINDOW_SECONDS: i64 = 15 * 60;
pub const USERNAME_LIMIT: usize = 5;
pub const ADDRESS_LIMIT: usize = 50;

/// How many usernames and addresses are tracked at most; beyond this the
/// ones whose failures have all left the window are forgotten first.
const MAX_TRACKED: usize = 100_000;

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub i64);

#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    by_username: HashMap<String, VecDeque<UnixTime>>,
    by_address: HashMap<String, VecDeque<UnixTime>>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle::default()
    }

    /// Whether a login attempt may go ahead now.
    pub fn check(&self, username: &str, address: &str, now: UnixTime) -> Result<(), RetryAfter> {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let by_username =
            retry_after(state.by_username.get(&username_key(username)), USERNAME_LIMIT, now);
        let by_address = retry_after(state.by_address.get(address), ADDRESS_LIMIT, now);
        match by_username.max(by_address) {
            Some(seconds) => Err(RetryAfter(seconds)),
            None => Ok(()),
        }
    }

    /// Counts one failed attempt against the username and the address.
    pub fn record_failure(&self, username: &str, address: &str, now: UnixTime) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        record(&mut state.by_username, username_key(username), USERNAME_LIMIT, now);
        record(&mut state.by_address, address.to_owned(), ADDRESS_LIMIT, now);
    }

    /// A successful login clears the username's failures (not the address's).
    pub fn record_success(&self, username: &str) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.by_username.remove(&username_key(username));
    }
}

fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// Seconds until the attempts in the window fall below `limit`, if they
/// have reached it.
fn retry_after(failures: Option<&VecDeque<UnixTime>>, limit: usize, now: UnixTime) -> Option<i64> {
    let failures = failures?;
    let in_window: Vec<UnixTime> =
        failures.iter().copied().filter(|time| *time > now - WINDOW_SECONDS).collect();
    if in_window.len() < limit {
        return None;
    }
    // The attempt that must leave the window before one more is allowed.
    let gate = in_window[in_window.len() - limit];
    Some((gate + WINDOW_SECONDS - now).max(1))
}

fn record(map: &mut HashMap<String, VecDeque<UnixTime>>, key: String, limit: usize, now: UnixTime) {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        map.retain(|_, failures| failures.back().is_some_and(|last| *last > now - WINDOW_SECONDS));
    }
    let failures = map.entry(key).or_default();
    failures.push_back(now);
    // Only the last `limit` failures can decide anything.
    while failures.len() > limit {
        failures.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifth_failure_blocks_until_the_window_passes() {
        let throttle = Throttle::new();
        for second in 0..5 {
            assert!(throttle.check("alice", "a", 1000 + second).is_ok());
            throttle.record_failure("alice", "a", 1000 + second);
        }
        assert_eq!(throttle.check("Alice", "b", 1010), Err(RetryAfter(890)));
        assert!(throttle.check("bob", "a", 1010).is_ok());
        assert!(throttle.check("alice", "a", 1000 + WINDOW_SECONDS).is_ok());
    }

    #[test]
    fn fifty_failures_from_one_address_block_it() {
        let throttle = Throttle::new();
        for n in 0..50 {
            throttle.record_failure(&format!("user{n}"), "10.0.0.1", 5000);
        }
        assert!(throttle.check("someone", "10.0.0.1", 5001).is_err());
        assert!(throttle.check("someone", "10.0.0.2", 5001).is_ok());
    }
}
