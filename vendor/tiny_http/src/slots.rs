//! The accounting of open connections (a sessiond patch, see SESSIOND.md):
//! one slot per accepted connection, counted per client address, and the
//! rule that decides, when a connection arrives at a limit, which open
//! connection gives way or whether the newcomer is refused.
//!
//! A slot is taken by the accept thread and given back when the
//! connection's thread ends, whatever ended it (a closed or timed-out
//! socket, an answer that closes, an eviction), by dropping its
//! [`SlotGuard`]. Evicting shuts the socket down, which wakes the
//! connection's thread from its read at once; the slot stops counting
//! immediately. This module must not read or write the socket otherwise, and
//! never evicts a connection whose answer is still being prepared.

use std::collections::HashMap;
use std::convert::TryFrom;
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// What a connection's thread is doing.
const WAITING: u8 = 0;
const READING: u8 = 1;
const BUSY: u8 = 2;

/// The limits the admission rule works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotLimits {
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_client: usize,
    /// An idle connection gives way to a newcomer at the cap only once idle
    /// this long (and a request head in progress only once started this
    /// long ago), so that connections evicted and reopened in a loop cannot
    /// churn each other out faster than this.
    pub(crate) eviction_grace: Duration,
}

/// The open connections of one server.
pub(crate) struct Slots {
    limits: SlotLimits,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: Vec<Arc<Slot>>,
    per_client: HashMap<IpAddr, usize>,
}

/// One open connection, shared by its thread, its requests and the
/// registry.
pub(crate) struct Slot {
    id: u64,
    client: Option<IpAddr>,
    socket: Connection,
    epoch: Instant,
    phase: AtomicU8,
    /// Nanoseconds since `epoch`: when the connection started waiting for a
    /// request (`WAITING`) or received a request's first byte (`READING`).
    phase_since: AtomicU64,
    /// When the last answer on this connection was written.
    answered_at: AtomicU64,
    /// Requests handed out whose answer is not written yet.
    in_flight: AtomicUsize,
    /// Signalled (under its mutex) when `in_flight` falls, for the
    /// connection thread waiting to read the next request. The mutex holds
    /// whether that thread waits: an answer written on the connection's
    /// own thread (sessiond's handler) has nobody to wake, and a wake-up
    /// nobody waits for is still a system call (sessiond patch).
    answered_lock: Mutex<bool>,
    answered_signal: Condvar,
    /// Set by an answer after which nothing more may be read.
    close: AtomicBool,
    evicted: AtomicBool,
}

/// What the accept thread does with a new connection.
pub(crate) enum Admission {
    Admitted(SlotGuard),
    /// Over a limit with nobody to give way: answer 503 and close.
    Refused,
}

/// Holds a slot until dropped.
pub(crate) struct SlotGuard {
    slots: Arc<Slots>,
    slot: Arc<Slot>,
}

impl Slots {
    pub(crate) fn new(limits: SlotLimits) -> Arc<Slots> {
        Arc::new(Slots { limits, epoch: Instant::now(), inner: Mutex::new(Inner::default()) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        nanos_since(self.epoch)
    }

    /// Takes a slot for a connection from `client` (`None` for a Unix
    /// socket), making room as the rule says:
    ///
    /// - at the per-client limit, the client's own connection idle longest
    ///   (for at least the grace) gives way, else the newcomer is refused;
    /// - at the cap, a client with at least two connections more than the
    ///   newcomer's gives way first (its longest idle connection, else its
    ///   request head in progress longest), so one client cannot keep the
    ///   others out; else the connection idle longest (for the grace) of
    ///   anyone; else the request head in progress longest (for the grace);
    ///   else the newcomer is refused.
    pub(crate) fn admit(self: &Arc<Slots>, client: Option<IpAddr>, socket: &Connection) -> Admission {
        let client = client.map(client_key);
        let mut inner = self.lock();
        let now = self.now();
        let grace = u64::try_from(self.limits.eviction_grace.as_nanos()).unwrap_or(u64::MAX);
        let own = client.map_or(0, |client| inner.per_client.get(&client).copied().unwrap_or(0));
        if client.is_some() && own >= self.limits.max_connections_per_client {
            let victim = pick(&inner.open, now, |slot| slot.client == client, Some(grace), None);
            match victim {
                Some(victim) => evict(&mut inner, &victim),
                None => return Admission::Refused,
            }
        } else if inner.open.len() >= self.limits.max_connections {
            let hog = inner
                .per_client
                .iter()
                .max_by_key(|(_, count)| **count)
                .filter(|(_, count)| **count >= own + 2)
                .map(|(hog, _)| *hog);
            let victim = hog
                .and_then(|hog| pick(&inner.open, now, |slot| slot.client == Some(hog), Some(0), Some(0)))
                .or_else(|| pick(&inner.open, now, |_| true, Some(grace), None))
                .or_else(|| pick(&inner.open, now, |_| true, None, Some(grace)));
            match victim {
                Some(victim) => evict(&mut inner, &victim),
                None => return Admission::Refused,
            }
        }
        let socket = match socket.try_clone() {
            Ok(socket) => socket,
            Err(_) => return Admission::Refused,
        };
        inner.next_id += 1;
        let slot = Arc::new(Slot {
            id: inner.next_id,
            client,
            socket,
            epoch: self.epoch,
            phase: AtomicU8::new(WAITING),
            phase_since: AtomicU64::new(now),
            answered_at: AtomicU64::new(now),
            in_flight: AtomicUsize::new(0),
            answered_lock: Mutex::new(false),
            answered_signal: Condvar::new(),
            close: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
        });
        inner.open.push(Arc::clone(&slot));
        if let Some(client) = client {
            *inner.per_client.entry(client).or_insert(0) += 1;
        }
        Admission::Admitted(SlotGuard { slots: Arc::clone(self), slot })
    }

    /// Connections counted now (evicted ones no longer are).
    pub(crate) fn open_count(&self) -> usize {
        self.lock().open.len()
    }
}

/// Chooses among the slots `matching` one that may give way: the one idle
/// longest, when idle for at least `idle_for`; else the one whose request
/// head has been in progress longest, when for at least `reading_for`.
/// A slot with an answer still to write is never chosen.
fn pick(
    open: &[Arc<Slot>],
    now: u64,
    matching: impl Fn(&Slot) -> bool,
    idle_for: Option<u64>,
    reading_for: Option<u64>,
) -> Option<Arc<Slot>> {
    let candidates = || open.iter().filter(|slot| matching(slot) && slot.in_flight.load(Ordering::Acquire) == 0);
    let oldest = |phase: u8, at_least: u64| {
        candidates()
            .filter(|slot| slot.phase.load(Ordering::Acquire) == phase)
            .map(|slot| (slot.idle_since(phase), slot))
            .filter(|(since, _)| now.saturating_sub(*since) >= at_least)
            .min_by_key(|(since, _)| *since)
            .map(|(_, slot)| Arc::clone(slot))
    };
    idle_for
        .and_then(|at_least| oldest(WAITING, at_least))
        .or_else(|| reading_for.and_then(|at_least| oldest(READING, at_least)))
}

fn evict(inner: &mut Inner, victim: &Arc<Slot>) {
    if victim.evicted.swap(true, Ordering::AcqRel) {
        return;
    }
    forget(inner, victim);
    // Wakes the connection's thread from its read: it sees the end of the
    // stream and gives the thread back.
    let _ = victim.socket.shutdown(Shutdown::Both);
}

fn forget(inner: &mut Inner, slot: &Arc<Slot>) {
    inner.open.retain(|open| open.id != slot.id);
    if let Some(client) = slot.client {
        if let Some(count) = inner.per_client.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                inner.per_client.remove(&client);
            }
        }
    }
}

/// The address a limit counts by: an IPv4 address, or the /64 of an IPv6
/// one (a single host commonly holds a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Slot {
    fn now(&self) -> u64 {
        nanos_since(self.epoch)
    }

    fn idle_since(&self, phase: u8) -> u64 {
        let since = self.phase_since.load(Ordering::Acquire);
        if phase == WAITING {
            since.max(self.answered_at.load(Ordering::Acquire))
        } else {
            since
        }
    }

    /// The connection waits for the first byte of its next request.
    pub(crate) fn waiting(&self) {
        self.phase_since.store(self.now(), Ordering::Release);
        self.phase.store(WAITING, Ordering::Release);
    }

    /// The first byte of a request has come.
    pub(crate) fn reading(&self) {
        self.phase_since.store(self.now(), Ordering::Release);
        self.phase.store(READING, Ordering::Release);
    }

    /// A request is complete and handed out; its answer is owed.
    pub(crate) fn request_handed_out(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.phase.store(BUSY, Ordering::Release);
    }

    /// The answer to a request handed out is written (or abandoned).
    pub(crate) fn answered(&self) {
        self.answered_at.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let waiting = self.answered_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *waiting {
            self.answered_signal.notify_all();
        }
    }

    /// Blocks until every request handed out on this connection is answered
    /// (or dropped unanswered). The connection reads its next request only
    /// then: with pipelined requests handed to different threads, an answer
    /// could otherwise wait forever behind an earlier one that nobody is
    /// free to answer (answers go out in request order), and one client
    /// could hold many threads at once.
    pub(crate) fn wait_until_answered(&self) {
        let mut guard = self.answered_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while self.in_flight.load(Ordering::Acquire) > 0 {
            *guard = true;
            guard = self
                .answered_signal
                .wait(guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *guard = false;
    }

    /// Nothing more is to be read on this connection.
    pub(crate) fn close_after_answer(&self) {
        self.close.store(true, Ordering::Release);
    }

    /// Ends the connection now: nothing more is read or written on it.
    pub(crate) fn abort(&self) {
        self.close.store(true, Ordering::Release);
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// Whether the connection must not read another request.
    pub(crate) fn must_close(&self) -> bool {
        self.close.load(Ordering::Acquire) || self.evicted.load(Ordering::Acquire)
    }
}

impl SlotGuard {
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if !self.slot.evicted.swap(true, Ordering::AcqRel) {
            forget(&mut self.slots.lock(), &self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    fn socket(listener: &TcpListener) -> Connection {
        Connection::from(TcpStream::connect(listener.local_addr().unwrap()).unwrap())
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }

    fn admitted(admission: Admission) -> SlotGuard {
        match admission {
            Admission::Admitted(guard) => guard,
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn the_hog_gives_way_and_the_per_client_limit_holds() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = SlotLimits {
            max_connections: 4,
            max_connections_per_client: 3,
            eviction_grace: Duration::from_secs(3600),
        };
        let slots = Slots::new(limits);
        let hog: Vec<SlotGuard> =
            (0..3).map(|_| admitted(slots.admit(ip(2), &socket(&listener)))).collect();
        // The hog's own connections are not idle for the grace: refused.
        assert!(matches!(slots.admit(ip(2), &socket(&listener)), Admission::Refused));
        let other = admitted(slots.admit(ip(3), &socket(&listener)));
        assert_eq!(slots.open_count(), 4);
        // At the cap: a client with none takes a slot of the hog's.
        let newcomer = admitted(slots.admit(ip(4), &socket(&listener)));
        assert_eq!(slots.open_count(), 4);
        assert_eq!(hog.iter().filter(|guard| guard.slot.must_close()).count(), 1);
        // 2, 1, 1: the hog still has two more than a newcomer.
        let fourth = admitted(slots.admit(ip(5), &socket(&listener)));
        assert_eq!(hog.iter().filter(|guard| guard.slot.must_close()).count(), 2);
        // 1, 1, 1, 1: nobody has two more, nobody is idle for the grace.
        assert!(matches!(slots.admit(ip(6), &socket(&listener)), Admission::Refused));
        assert_eq!(slots.open_count(), 4);
        drop((fourth, other, newcomer));
        assert_eq!(slots.open_count(), 1);
        drop(hog);
        assert_eq!(slots.open_count(), 0);
        assert!(slots.lock().per_client.is_empty());
    }

    #[test]
    fn an_answer_from_another_thread_wakes_the_connection_waiting_for_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let slots = Slots::new(SlotLimits {
            max_connections: 2,
            max_connections_per_client: 2,
            eviction_grace: Duration::ZERO,
        });
        let guard = admitted(slots.admit(ip(2), &socket(&listener)));
        let slot = Arc::clone(&guard.slot);
        // Answered on the connection's own thread: nobody waits, nothing to wake.
        slot.request_handed_out();
        slot.answered();
        slot.wait_until_answered();
        // Answered by another thread (sessiond's login lane) while the
        // connection's thread waits: it must be woken, every time.
        for _ in 0..100 {
            slot.request_handed_out();
            let answerer = {
                let slot = Arc::clone(&slot);
                std::thread::spawn(move || {
                    std::thread::yield_now();
                    slot.answered();
                })
            };
            slot.wait_until_answered();
            assert_eq!(slot.in_flight.load(Ordering::Acquire), 0);
            answerer.join().unwrap();
        }
    }

    #[test]
    fn a_connection_in_flight_never_gives_way() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = SlotLimits {
            max_connections: 2,
            max_connections_per_client: 2,
            eviction_grace: Duration::ZERO,
        };
        let slots = Slots::new(limits);
        let busy: Vec<SlotGuard> =
            (0..2).map(|_| admitted(slots.admit(ip(2), &socket(&listener)))).collect();
        for guard in &busy {
            guard.slot.reading();
            guard.slot.request_handed_out();
        }
        assert!(matches!(slots.admit(ip(3), &socket(&listener)), Admission::Refused));
        busy[0].slot.answered();
        busy[0].slot.waiting();
        let _newcomer = admitted(slots.admit(ip(3), &socket(&listener)));
        assert!(busy[0].slot.must_close());
        assert!(!busy[1].slot.must_close());
    }

    #[test]
    fn at_the_cap_the_longest_idle_then_the_oldest_head_gives_way() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = SlotLimits {
            max_connections: 3,
            max_connections_per_client: 3,
            eviction_grace: Duration::ZERO,
        };
        let slots = Slots::new(limits);
        // One connection each from three addresses: nobody is a hog.
        let open: Vec<SlotGuard> =
            (2..5).map(|last| admitted(slots.admit(ip(last), &socket(&listener)))).collect();
        open[0].slot.reading();
        open[1].slot.waiting();
        std::thread::sleep(Duration::from_millis(2));
        open[2].slot.waiting();
        // The idle one that has waited longest goes first, not the head.
        let first = admitted(slots.admit(ip(5), &socket(&listener)));
        assert!(open[1].slot.must_close());
        assert!(!open[0].slot.must_close() && !open[2].slot.must_close());
        let second = admitted(slots.admit(ip(6), &socket(&listener)));
        assert!(open[2].slot.must_close());
        // No idle one left among the old: the head in progress longest.
        first.slot.request_handed_out();
        second.slot.request_handed_out();
        let _third = admitted(slots.admit(ip(7), &socket(&listener)));
        assert!(open[0].slot.must_close());
    }
}
