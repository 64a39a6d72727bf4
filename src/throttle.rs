//! The login throttle: too many failed logins for one username, or from one
//! client address, and every further attempt is refused for a while.
//!
//! The rule (SPEC 3): after 5 failures for one username within 15 minutes,
//! or 50 from one client address, further attempts, correct or not, get 429
//! with `Retry-After` until the window passes. The web form and the GraphQL
//! `login` share one throttle. It lives in the server's memory: a restart
//! forgets it, and two servers on one file each count their own failures.
//!
//! An attempt counts as a failure from the moment it begins, under the same
//! lock as the check, and is taken back only when it succeeds. So parallel
//! guesses cannot all pass the check while the slow password hashes run.

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

    /// Begins a login attempt: refused while the username or the address is
    /// locked, otherwise counted as a failure until [`Throttle::succeeded`].
    pub fn begin_attempt(
        &self,
        username: &str,
        address: &str,
        now: UnixTime,
    ) -> Result<Attempt, RetryAfter> {
        let username = username_key(username);
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let by_username = retry_after(state.by_username.get(&username), USERNAME_LIMIT, now);
        let by_address = retry_after(state.by_address.get(address), ADDRESS_LIMIT, now);
        if let Some(seconds) = by_username.max(by_address) {
            return Err(RetryAfter(seconds));
        }
        record(&mut state.by_username, username.clone(), USERNAME_LIMIT, now);
        record(&mut state.by_address, address.to_owned(), ADDRESS_LIMIT, now);
        Ok(Attempt { username, address: address.to_owned(), began: now })
    }

    /// The attempt signed in: it is not a failure, and the username's earlier
    /// failures are forgotten (the address's are not).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.by_username.remove(&attempt.username);
        if let Some(failures) = state.by_address.get_mut(&attempt.address)
            && let Some(index) = failures.iter().rposition(|time| *time == attempt.began)
        {
            failures.remove(index);
        }
    }

    /// The attempt could not be decided (the database failed): it is not a
    /// failure, and the earlier failures stay as they were.
    pub fn abandoned(&self, attempt: Attempt) {
        let mut guard = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = &mut *guard;
        for (map, key) in
            [(&mut state.by_username, &attempt.username), (&mut state.by_address, &attempt.address)]
        {
            if let Some(failures) = map.get_mut(key)
                && let Some(index) = failures.iter().rposition(|time| *time == attempt.began)
            {
                failures.remove(index);
            }
        }
    }
}

/// A login attempt under way; see [`Throttle::begin_attempt`].
#[derive(Debug)]
#[must_use = "an attempt that is dropped counts as a failure"]
pub struct Attempt {
    username: String,
    address: String,
    began: UnixTime,
}

/// Usernames are at most 150 characters (see `users`); a longer one is cut
/// so that the throttle never keeps more than that per name.
fn username_key(username: &str) -> String {
    username.chars().take(150).collect::<String>().to_lowercase()
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
            let _failed = throttle.begin_attempt("alice", "a", 1000 + second).unwrap();
        }
        assert_eq!(throttle.begin_attempt("Alice", "b", 1010).unwrap_err(), RetryAfter(890));
        assert!(throttle.begin_attempt("bob", "a", 1010).is_ok());
        assert!(throttle.begin_attempt("alice", "a", 1000 + WINDOW_SECONDS).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_until_they_succeed() {
        let throttle = Throttle::new();
        let in_flight: Vec<Attempt> =
            (0..5).map(|_| throttle.begin_attempt("alice", "a", 1000).unwrap()).collect();
        assert!(throttle.begin_attempt("alice", "a", 1000).is_err(), "a sixth parallel guess");
        for attempt in in_flight {
            throttle.succeeded(attempt);
        }
        assert!(throttle.begin_attempt("alice", "a", 1000).is_ok());
    }

    #[test]
    fn fifty_failures_from_one_address_block_it() {
        let throttle = Throttle::new();
        for n in 0..50 {
            let _failed = throttle.begin_attempt(&format!("user{n}"), "10.0.0.1", 5000).unwrap();
        }
        assert!(throttle.begin_attempt("someone", "10.0.0.1", 5001).is_err());
        assert!(throttle.begin_attempt("someone", "10.0.0.2", 5001).is_ok());
    }
}
