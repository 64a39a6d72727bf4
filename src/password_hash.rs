//! Argon2id password hashing and verification for the whole program, in a
//! bounded pool of working memory.
//!
//! Every hash (a new password, a login's check, the decoy check for an
//! unknown user) runs here with OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1), in one of at most [`slots`] memory blocks of 19 MiB at once, one
//! per core; a hash that finds every slot taken waits for one. A block is
//! handed straight to a hash that is waiting for it, and unmapped when
//! nobody is: after a burst of logins the process holds no hash memory.
//! Verification parses the stored PHC string, hashes the password into pool
//! memory with the string's own salt and parameters, and compares the
//! outputs in constant time. A stored hash that would need more memory than
//! a block is refused rather than allocated.
//!
//! This module owns no table and reads no clock; it must not allocate hash
//! memory anywhere but in [`Memory::new`], and callers must not hash any
//! other way (argon2's own `hash_password` allocates a block per call,
//! which glibc keeps after the first free; that was issue 15).

use std::sync::{Condvar, LazyLock, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// OWASP's Argon2id parameters: 19 MiB (19,456 KiB), 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;
const OUTPUT_BYTES: usize = 32;
const SALT_BYTES: usize = 16;

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`)
/// with a fresh random salt.
pub fn hash(password: &str) -> String {
    let salt = crate::random::secret_bytes::<SALT_BYTES>();
    let params = owasp_params();
    let mut output = [0u8; OUTPUT_BYTES];
    {
        let mut memory = POOL.acquire();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                &salt,
                &mut output,
                &mut memory.blocks()[..params.block_count()],
            )
            .expect("hashing with OWASP's parameters and a 16-byte salt cannot fail");
    }
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("OWASP's parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).expect("32 bytes make a valid output")),
    }
    .to_string()
}

/// True when `password` matches the PHC string `phc`. A string that does
/// not parse, names another algorithm, or needs more memory than a pool
/// block never matches (and costs no hash).
pub fn verify(password: &str, phc: &str) -> bool {
    let Some(check) = Check::parse(phc) else { return false };
    let mut output = [0u8; 64];
    let output = &mut output[..check.expected.len()];
    let hashed = {
        let mut memory = POOL.acquire();
        Argon2::new(check.algorithm, check.version, check.params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                &check.salt[..check.salt_len],
                output,
                &mut memory.blocks()[..check.params.block_count()],
            )
            .is_ok()
    };
    // `Output`'s equality is constant-time.
    hashed && Output::new(output).is_ok_and(|computed| computed == check.expected)
}

/// True when `phc` is a PHC string that [`verify`] can check.
pub fn is_valid_phc(phc: &str) -> bool {
    Check::parse(phc).is_some()
}

/// How many hashes may run at once: the number of cores.
pub fn slots() -> usize {
    POOL.slots
}

/// The most hashes that ever ran at once in this process (a statistic for
/// tests and the bench; kept under the pool's lock it already takes).
pub fn peak_concurrent_hashes() -> usize {
    POOL.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).peak
}

/// How many pool blocks are mapped right now (running hashes plus blocks
/// kept for a hash that is waiting).
pub fn mapped_blocks() -> usize {
    let state = POOL.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.running + state.idle.len()
}

fn owasp_params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_BYTES))
        .expect("OWASP's Argon2 parameters are valid")
}

/// What a stored PHC string asks for.
struct Check {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: [u8; 64],
    salt_len: usize,
    expected: Output,
}

impl Check {
    fn parse(phc: &str) -> Option<Check> {
        let parsed = PasswordHash::new(phc).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed.version.map_or(Ok(Version::default()), Version::try_from).ok()?;
        let params = Params::try_from(&parsed).ok()?;
        if params.block_count() > BLOCKS_PER_HASH {
            return None;
        }
        let mut salt = [0u8; 64];
        let salt_len = parsed.salt?.decode_b64(&mut salt).ok()?.len();
        let expected = parsed.hash?;
        Some(Check { algorithm, version, params, salt, salt_len, expected })
    }
}

// ---------------------------------------------------------------------------
// The pool

/// The blocks one hash with OWASP's parameters fills.
const BLOCKS_PER_HASH: usize = M_COST_KIB as usize;

/// The capacity each block's allocation asks for: 33 MiB, of which a hash
/// touches (and the process holds) only the first 19. glibc serves a request
/// above its largest mmap threshold (32 MiB) with its own `mmap` and frees it
/// with `munmap`, and never raises its threshold for one; a 19 MiB request
/// would come from the arenas after the first free and stay there. Other
/// allocators map requests this large directly too.
const MAPPED_BLOCKS: usize = 33 * 1024;

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    Pool::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
});

struct Pool {
    slots: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    running: usize,
    waiting: usize,
    /// Blocks given back while a hash was waiting, for the next to take.
    idle: Vec<Memory>,
    peak: usize,
}

/// One hash's working memory.
struct Memory(Vec<Block>);

impl Memory {
    fn new() -> Memory {
        let mut blocks = Vec::with_capacity(MAPPED_BLOCKS);
        blocks.resize(BLOCKS_PER_HASH, Block::new());
        Memory(blocks)
    }
}

impl Pool {
    fn new(slots: usize) -> Pool {
        Pool {
            slots,
            state: Mutex::new(PoolState { running: 0, waiting: 0, idle: Vec::new(), peak: 0 }),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting for one when all are taken, with its memory.
    fn acquire(&self) -> Lease<'_> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.running >= self.slots {
            state.waiting += 1;
            while state.running >= self.slots {
                state = self.freed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            state.waiting -= 1;
        }
        state.running += 1;
        state.peak = state.peak.max(state.running);
        let kept = state.idle.pop();
        drop(state);
        // Mapped outside the lock: the first touch of 19 MiB takes a while.
        Lease { pool: self, memory: Some(kept.unwrap_or_else(Memory::new)) }
    }

    fn release(&self, memory: Memory) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.running -= 1;
        let unmap = if state.waiting > state.idle.len() {
            state.idle.push(memory);
            Vec::new()
        } else {
            let mut unmap = std::mem::take(&mut state.idle);
            unmap.push(memory);
            unmap
        };
        drop(state);
        self.freed.notify_one();
        // Unmapped outside the lock.
        drop(unmap);
    }
}

/// A slot taken from the pool; gives it back when dropped, also when the
/// hash panics.
struct Lease<'a> {
    pool: &'a Pool,
    memory: Option<Memory>,
}

impl Lease<'_> {
    fn blocks(&mut self) -> &mut [Block] {
        &mut self.memory.as_mut().expect("a lease holds its memory until dropped").0
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.pool.release(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_and_another_password_does_not() {
        let phc = hash("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse", &phc));
        assert!(!verify("correct horse", "not a phc string"));
    }

    #[test]
    fn hashes_made_by_argon2_itself_verify() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(b"sixteen byte sal").unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, owasp_params())
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify("pw", &phc));
        assert!(!verify("pW", &phc));
    }

    #[test]
    fn a_hash_needing_more_memory_than_a_block_is_refused() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(b"sixteen byte sal").unwrap();
        let params = Params::new(M_COST_KIB * 2, 1, 1, None).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(!is_valid_phc(&phc));
        assert!(!verify("pw", &phc));
    }

    #[test]
    fn a_pool_never_runs_more_than_its_slots_and_unmaps_when_idle() {
        let pool = Pool::new(2);
        let running = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    let _lease = pool.acquire();
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        assert_eq!(most.into_inner(), 2);
        let state = pool.state.lock().unwrap();
        assert_eq!((state.running, state.waiting, state.idle.len(), state.peak), (0, 0, 0, 2));
    }
}
