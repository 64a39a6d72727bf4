//! This process's sliding-expiry writes, committed in groups: [`SlideQueue`].
//!
//! On SQLite one writer holds the database at a time, and a commit costs
//! far more than the one-row `UPDATE` a slide is: a WAL frame per page,
//! every other connection's page cache starting again, now and then a
//! checkpoint. So slides that fall due at the same time are written
//! together. A worker whose slide is due puts it in the queue. If no worker
//! is writing, it takes every slide waiting and writes them in one
//! transaction; otherwise it sleeps until that group is written, and then
//! either finds its own slide's outcome or takes the turn for the slides
//! that came meanwhile. The wait is a condition variable woken as soon as a
//! group is done, where SQLite's busy handler would poll with growing
//! sleeps. The worker whose turn it is first gathers: it waits up to
//! [`GATHER_WAIT`] for more slides, and no longer once as many are
//! waiting as there are workers (no more can come). Every commit costs
//! every other connection its page cache and memory map, so fewer, larger
//! groups cost the whole process less CPU (README, "Slides gather before
//! their group is written").
//!
//! Each slide keeps its own outcome, as if written alone: written; its row
//! gone (a logout won the race: the `UPDATE` matches id and key hash, so it
//! never brings a row back); or put off, because another writer holds
//! SQLite's lock. A slide whose stored expiry already lags past the
//! allowed lag is marked `must_write`: a group holding one waits for the
//! lock like any write, and only a group of slides that may wait is put
//! off. The waiting happens here, once per group, never in a worker beside
//! the queue: lone writers beside it would take the lock from the group,
//! put it off, and so make more lone writers, each polling SQLite's busy
//! handler. A group that fails for any other reason is written again by
//! each of its workers alone, so each request meets its own error.
//!
//! PostgreSQL locks rows, not the database: there each slide is its own
//! `UPDATE` and takes no turn.
//!
//! Invariant: no worker holds the queue's mutex while it talks to the
//! database, and the worker writing a group hands back every outcome even
//! when it panics, so a waiting worker always wakes.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::UnixTime;
use crate::db::{self, Behavior, Conn};
use crate::web_sessions::{self, KeyHash};

/// One due slide: the row to update and the expiry it gets.
#[derive(Debug, Clone, Copy)]
pub struct Slide {
    pub row_id: i64,
    pub key_hash: KeyHash,
    pub expire_date: UnixTime,
    pub now: UnixTime,
    /// The stored expiry lags past the allowed lag: this slide waits for
    /// another writer's lock rather than being put off.
    pub must_write: bool,
}

impl Slide {
    /// Updates the row; false when it is gone.
    fn save(&self, conn: &Conn) -> db::Result<bool> {
        web_sessions::save(conn, self.row_id, &self.key_hash, self.expire_date, self.now)
    }

    /// Writes this slide alone: waiting for the lock if it must be
    /// written, else `None` when another writer holds it.
    fn write_alone(&self, conn: &Conn) -> db::Result<Option<bool>> {
        if self.must_write {
            self.save(conn).map(Some)
        } else {
            db::unless_busy(conn, |conn| self.save(conn))
        }
    }
}

/// The longest a worker whose turn it is waits for more slides before it
/// writes the group.
pub const GATHER_WAIT: Duration = Duration::from_micros(300);

/// The slides waiting to be written and who is writing; one per process.
pub struct SlideQueue {
    state: Mutex<State>,
    group_done: Condvar,
    /// Woken when a slide joins while a turn gathers.
    slide_added: Condvar,
    /// How many slides can wait at once: one per worker. A turn that
    /// holds this many stops gathering.
    writers: usize,
    /// [`GATHER_WAIT`], but in tests.
    gather_wait: Duration,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    /// Slides no worker has taken yet, by ticket.
    waiting: Vec<(u64, Slide)>,
    /// Whether a worker has the turn (gathering or writing a group).
    writing: bool,
    /// Whether the worker with the turn waits for more slides.
    gathering: bool,
    /// Outcomes of written groups, until their workers take them.
    outcomes: HashMap<u64, Outcome>,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// What [`Slide::write_alone`] would return.
    Done(Option<bool>),
    /// The group's transaction failed: the slide is written again alone.
    Failed,
}

impl SlideQueue {
    /// The queue of a process whose requests use at most `writers`
    /// database connections at once.
    pub fn new(writers: usize) -> SlideQueue {
        SlideQueue::gathering_for(writers, GATHER_WAIT)
    }

    fn gathering_for(writers: usize, gather_wait: Duration) -> SlideQueue {
        SlideQueue {
            state: Mutex::default(),
            group_done: Condvar::new(),
            slide_added: Condvar::new(),
            writers: writers.max(1),
            gather_wait,
        }
    }

    /// Writes `slide`: `Some(true)` written, `Some(false)` its row is gone,
    /// `None` put off because another writer holds SQLite's lock (never for
    /// a slide that `must_write`).
    pub fn write(&self, conn: &Conn, slide: Slide) -> db::Result<Option<bool>> {
        if !db::writes_one_at_a_time(conn) {
            return slide.write_alone(conn);
        }
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push((ticket, slide));
        if state.gathering {
            self.slide_added.notify_one();
        }
        loop {
            if let Some(outcome) = state.outcomes.remove(&ticket) {
                drop(state);
                return match outcome {
                    Outcome::Done(saved) => Ok(saved),
                    Outcome::Failed => slide.write_alone(conn),
                };
            }
            if state.writing {
                state = self.group_done.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Not written and nobody writing: this slide is waiting, and
            // this worker writes it with every other one that is.
            state.writing = true;
            state = self.gather(state);
            let mut turn =
                Turn { queue: self, group: std::mem::take(&mut state.waiting), outcomes: None };
            drop(state);
            turn.outcomes = Some(write_group(conn, &turn.group));
            drop(turn);
            state = self.lock();
        }
    }

    /// Waits, with the turn, until as many slides wait as there are
    /// workers or [`GATHER_WAIT`] has passed.
    fn gather<'q>(&'q self, mut state: MutexGuard<'q, State>) -> MutexGuard<'q, State> {
        let deadline = Instant::now() + self.gather_wait;
        state.gathering = true;
        while state.waiting.len() < self.writers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .slide_added
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.gathering = false;
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker's turn at writing a group; hands the outcomes back when
/// dropped, all failed if the write panicked.
struct Turn<'q> {
    queue: &'q SlideQueue,
    group: Vec<(u64, Slide)>,
    outcomes: Option<Vec<Outcome>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let outcomes = self.outcomes.take().unwrap_or_default();
        let mut state = self.queue.lock();
        for (index, (ticket, _)) in self.group.iter().enumerate() {
            let outcome = outcomes.get(index).copied().unwrap_or(Outcome::Failed);
            state.outcomes.insert(*ticket, outcome);
        }
        state.writing = false;
        drop(state);
        self.queue.group_done.notify_all();
    }
}

/// Writes a group of slides in one transaction, an outcome per slide in
/// order; it waits for another writer's lock only if one of them
/// `must_write`.
fn write_group(conn: &Conn, group: &[(u64, Slide)]) -> Vec<Outcome> {
    let write = |conn: &Conn| {
        if let [(_, slide)] = group {
            return Ok(vec![slide.save(conn)?]);
        }
        let transaction = conn.transaction(Behavior::Immediate)?;
        let saved = group
            .iter()
            .map(|(_, slide)| slide.save(&transaction))
            .collect::<db::Result<Vec<bool>>>()?;
        transaction.commit()?;
        Ok(saved)
    };
    let written = if group.iter().any(|(_, slide)| slide.must_write) {
        write(conn).map(Some)
    } else {
        db::unless_busy(conn, write)
    };
    match written {
        Ok(Some(saved)) => saved.into_iter().map(|saved| Outcome::Done(Some(saved))).collect(),
        Ok(None) => vec![Outcome::Done(None); group.len()],
        Err(_) => vec![Outcome::Failed; group.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{self, Role};
    use crate::web_sessions::{CookieKey, Lifetime};

    const NOW: UnixTime = 1_000_000;

    /// A database with `count` sessions of one user, and their slides.
    fn sessions(count: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<Slide>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let conn = db::open(&path).unwrap();
        let hash = users::hash_password("a-long-password");
        let user =
            users::create_with_password_hash(&conn, "ann", "", &hash, Role::User, NOW).unwrap();
        let lifetime = Lifetime { idle: 7200, absolute: 0 };
        let slides = (0..count)
            .map(|_| {
                let (_, session) =
                    web_sessions::create(&conn, &user, lifetime, NOW, "127.0.0.1", "").unwrap();
                Slide {
                    row_id: session.row_id,
                    key_hash: session.key_hash,
                    expire_date: NOW + 100 + 7200,
                    now: NOW + 100,
                    must_write: false,
                }
            })
            .collect();
        (dir, path, slides)
    }

    /// The slides as one group, ticketed in order.
    fn as_group(slides: &[Slide]) -> Vec<(u64, Slide)> {
        slides.iter().copied().enumerate().map(|(i, s)| (i as u64, s)).collect()
    }

    fn cookie_key(slide: &Slide) -> CookieKey {
        CookieKey { row_id: Some(slide.row_id), key_hash: slide.key_hash }
    }

    fn stored_expiry(conn: &Conn, slide: &Slide) -> Option<UnixTime> {
        web_sessions::find_live(conn, &cookie_key(slide), NOW).unwrap().map(|s| s.expire_date)
    }

    #[test]
    fn a_group_keeps_each_slides_own_outcome() {
        let (_dir, path, slides) = sessions(3);
        let conn = db::connect(&path).unwrap();
        let group = as_group(&slides);

        let holder = db::connect(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let put_off = write_group(&conn, &group);
        holder.execute_batch("ROLLBACK").unwrap();
        assert!(put_off.iter().all(|o| matches!(o, Outcome::Done(None))), "{put_off:?}");
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 7200), "nothing was written");

        assert!(web_sessions::delete(&conn, &cookie_key(&slides[1])).unwrap());
        let outcomes = write_group(&conn, &group);
        assert!(
            matches!(
                outcomes[..],
                [Outcome::Done(Some(true)), Outcome::Done(Some(false)), Outcome::Done(Some(true))]
            ),
            "{outcomes:?}"
        );
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 100 + 7200));
        assert_eq!(stored_expiry(&conn, &slides[1]), None, "an ended session stays ended");
        assert_eq!(stored_expiry(&conn, &slides[2]), Some(NOW + 100 + 7200));
    }

    /// A group holding a slide past its allowed lag waits for another
    /// writer's lock and writes them all (a group without one is put off:
    /// `a_group_keeps_each_slides_own_outcome`).
    #[test]
    fn a_group_with_a_slide_that_must_be_written_waits_for_the_lock() {
        let (_dir, path, mut slides) = sessions(2);
        slides[1].must_write = true;
        let conn = db::connect(&path).unwrap();
        let group = as_group(&slides);

        let holder = db::connect(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            holder.execute_batch("ROLLBACK").unwrap();
        });
        let outcomes = write_group(&conn, &group);
        release.join().unwrap();
        assert!(
            matches!(outcomes[..], [Outcome::Done(Some(true)), Outcome::Done(Some(true))]),
            "{outcomes:?}"
        );
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 100 + 7200));
        assert_eq!(stored_expiry(&conn, &slides[1]), Some(NOW + 100 + 7200));
    }

    /// Slides that come while a group is being written wait, and are then
    /// written as the next group by one of their workers; a logout that
    /// ends a queued slide's session before that still ends it.
    #[test]
    fn slides_queued_behind_a_writer_go_as_one_group_and_a_logout_meanwhile_wins() {
        let (_dir, path, slides) = sessions(3);
        let queue = std::sync::Arc::new(SlideQueue::new(3));
        queue.lock().writing = true;
        let workers: Vec<_> = slides
            .iter()
            .map(|&slide| {
                let (queue, path) = (std::sync::Arc::clone(&queue), path.clone());
                std::thread::spawn(move || {
                    queue.write(&db::connect(&path).unwrap(), slide).unwrap()
                })
            })
            .collect();
        while queue.lock().waiting.len() < 3 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let conn = db::connect(&path).unwrap();
        assert!(web_sessions::delete(&conn, &cookie_key(&slides[1])).unwrap());
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 7200), "queued, not written");

        // The group before ends: one waiting worker takes all three.
        queue.lock().writing = false;
        queue.group_done.notify_all();
        let saved: Vec<Option<bool>> = workers.into_iter().map(|w| w.join().unwrap()).collect();

        assert_eq!(saved, [Some(true), Some(false), Some(true)]);
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 100 + 7200));
        assert_eq!(stored_expiry(&conn, &slides[1]), None, "the logout still ended it");
        assert_eq!(stored_expiry(&conn, &slides[2]), Some(NOW + 100 + 7200));
        let state = queue.lock();
        assert!(state.waiting.is_empty() && state.outcomes.is_empty() && !state.writing);
    }

    /// The worker whose turn it is writes nothing until more slides join,
    /// and writes at once when every worker has one waiting.
    #[test]
    fn a_turn_gathers_until_every_worker_has_a_slide_waiting() {
        let (_dir, path, slides) = sessions(2);
        let queue = std::sync::Arc::new(SlideQueue::gathering_for(2, Duration::from_secs(600)));
        let write = |slide: Slide| {
            let (queue, path) = (std::sync::Arc::clone(&queue), path.clone());
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let saved = queue.write(&db::connect(&path).unwrap(), slide).unwrap();
                sender.send(saved).unwrap();
            });
            receiver
        };
        let first = write(slides[0]);
        let started = Instant::now();
        while !queue.lock().gathering {
            assert!(first.try_recv().is_err(), "written before another slide could join");
            assert!(started.elapsed() < Duration::from_secs(30), "the turn never gathered");
            std::thread::yield_now();
        }
        let conn = db::connect(&path).unwrap();
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 7200), "gathering, not written");

        let second = write(slides[1]);
        // Far below the 600 s gathering time: two workers, two slides.
        let done = Duration::from_secs(30);
        assert_eq!(first.recv_timeout(done), Ok(Some(true)));
        assert_eq!(second.recv_timeout(done), Ok(Some(true)));
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 100 + 7200));
        assert_eq!(stored_expiry(&conn, &slides[1]), Some(NOW + 100 + 7200));
        let state = queue.lock();
        assert!(state.waiting.is_empty() && state.outcomes.is_empty() && !state.writing);
    }

    /// A turn that gathers no other slide writes its own once the
    /// gathering time has passed.
    #[test]
    fn a_turn_writes_alone_after_the_gathering_time() {
        let (_dir, path, slides) = sessions(1);
        let queue = SlideQueue::gathering_for(4, Duration::from_millis(1));
        let conn = db::connect(&path).unwrap();
        assert_eq!(queue.write(&conn, slides[0]).unwrap(), Some(true));
        assert_eq!(stored_expiry(&conn, &slides[0]), Some(NOW + 100 + 7200));
        assert!(!queue.lock().gathering);
    }

    /// A worker that panics while writing its group still hands every
    /// outcome back: the others wake and write their slides alone.
    #[test]
    fn a_failed_turn_wakes_the_others_to_write_alone() {
        let (_dir, path, slides) = sessions(2);
        let queue = SlideQueue::new(1);
        {
            let mut state = queue.lock();
            state.writing = true;
            state.waiting.push((7, slides[0]));
            state.next_ticket = 8;
        }
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let group = std::mem::take(&mut queue.lock().waiting);
            let _turn = Turn { queue: &queue, group, outcomes: None };
            panic!("a bug while writing");
        }));
        assert!(panicked.is_err());
        let state = queue.lock();
        assert!(!state.writing);
        assert!(matches!(state.outcomes.get(&7), Some(Outcome::Failed)));
        drop(state);
        queue.lock().outcomes.clear();

        let conn = db::connect(&path).unwrap();
        assert_eq!(queue.write(&conn, slides[1]).unwrap(), Some(true));
        assert_eq!(stored_expiry(&conn, &slides[1]), Some(NOW + 100 + 7200));
    }
}
