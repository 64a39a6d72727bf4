//! Secret randomness from the operating system's CSPRNG.
//!
//! Session keys, generated secrets and first-run passwords come from here and
//! nowhere else.

/// Fills `N` bytes from the OS CSPRNG.
pub fn secret_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Failing to read the OS random source leaves nothing safe to do.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A secret of `N` random bytes as lowercase hex text.
pub fn secret_hex<const N: usize>() -> String {
    hex::encode(secret_bytes::<N>())
}

/// A password that is easy to copy: 20 characters from an unambiguous set.
pub fn password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const LENGTH: usize = 20;
    // Bytes at or above the largest multiple of the alphabet size are thrown
    // away so that every character is equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut password = String::with_capacity(LENGTH);
    while password.len() < LENGTH {
        for byte in secret_bytes::<32>() {
            if usize::from(byte) < limit && password.len() < LENGTH {
                password.push(ALPHABET[usize::from(byte) % ALPHABET.len()] as char);
            }
        }
    }
    password
}
