//! Login JWTs: issuing and verifying the tokens themselves (HS256 via
//! jwt-simple). Which rows back them lives in `jwt_sessions`; turning a
//! request's `Authorization` header into a caller is `http::bearer`'s job.
//!
//! A token carries the header `typ: sessiond-user+jwt` and the claims `sub`
//! (the user id as a string), `sub_name`, `sub_email`, `aud: "sessiond"`,
//! `iat`, `exp` and `jti` (a UUID v4, the id of its row). [`verify`] checks
//! everything that can be checked without the database: the algorithm is
//! HS256 and the signature verifies, `typ` and `aud` match, `exp` is present
//! and has not passed (no leeway: issuer and verifier read one clock), and
//! `sub` and `jti` are present. Time is passed in; nothing here reads a
//! clock or prints a token.
//!
//! [`Verifier`] is what the request path uses: [`verify`] plus a bounded
//! memory of the tokens that passed, keyed by their SHA-256, so that a
//! client sending the same token again costs one hash instead of base64,
//! HMAC and JSON (the way API gateways such as Envoy's `jwt_authn` cache
//! verified tokens). Only the token's own checks are remembered; its row is
//! still read on every request.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use jwt_simple::algorithms::{HS256Key, MACLike};
use jwt_simple::claims::{Audiences, JWTClaims};
use jwt_simple::common::{HeaderOptions, VerificationOptions};
use jwt_simple::prelude::Duration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::UnixTime;
use crate::users::User;

/// The `aud` every login token carries and every verification requires.
pub const AUDIENCE: &str = "sessiond";

/// The `typ` header of a login token (RFC 8725 section 3.11: explicit typing,
/// so that no other kind of JWT signed with the same key passes as one).
pub const TOKEN_TYPE: &str = "sessiond-user+jwt";

/// The longest token looked at. Ours are about 400 bytes; anything far
/// longer is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of a verified token that the request path needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user id as a string, exactly as signed.
    pub sub: String,
    pub jti: String,
    pub exp: UnixTime,
}

/// The claims jwt-simple does not know about.
#[derive(Debug, Serialize, Deserialize)]
struct UserClaims {
    sub_name: String,
    sub_email: String,
}

/// Signs a new login token for `user`, valid from `now` until `expires_at`.
pub fn issue(
    key: &HS256Key,
    user: &User,
    jti: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> anyhow::Result<String> {
    let claims = JWTClaims {
        issued_at: Some(timestamp(now)),
        expires_at: Some(timestamp(expires_at)),
        invalid_before: None,
        issuer: None,
        subject: Some(user.id.to_string()),
        audiences: Some(Audiences::AsString(AUDIENCE.to_owned())),
        jwt_id: Some(jti.to_owned()),
        nonce: None,
        custom: UserClaims { sub_name: user.username.clone(), sub_email: user.email.clone() },
    };
    let header = HeaderOptions { signature_type: Some(TOKEN_TYPE.to_owned()), content_type: None };
    key.authenticate_with_options(claims, &header)
        .map_err(|error| anyhow::anyhow!("failed to sign a login token: {error}"))
}

/// Checks a token's algorithm, signature, `typ`, `aud`, `exp`, `sub` and
/// `jti` at time `now`. `None` for any token that fails; why is not said,
/// since the caller answers every failure the same way.
///
/// jwt-simple compares `typ` (case-insensitively, as media types are) while
/// reading the header, just before it checks the algorithm and the
/// signature; the claims are only decoded once the signature holds. Every
/// failure is the same refusal, so that order is not visible outside.
pub fn verify(key: &HS256Key, token: &str, now: UnixTime) -> Option<VerifiedToken> {
    verify_with_start(key, token, now).map(|(verified, _)| verified)
}

/// [`verify`], also returning the time from which the token is valid: its
/// `iat` or `nbf`, whichever is later (jwt-simple refuses a token before
/// either).
fn verify_with_start(
    key: &HS256Key,
    token: &str,
    now: UnixTime,
) -> Option<(VerifiedToken, UnixTime)> {
    let options = VerificationOptions {
        artificial_time: Some(timestamp(now)),
        time_tolerance: Some(Duration::from_secs(0)),
        allowed_audiences: Some(HashSet::from([AUDIENCE.to_owned()])),
        required_signature_type: Some(TOKEN_TYPE.to_owned()),
        max_token_length: Some(MAX_TOKEN_BYTES),
        ..VerificationOptions::default()
    };
    // HS256Key only accepts `alg: HS256`: `none`, HS384, HS512 and the
    // asymmetric algorithms are refused before the signature is looked at.
    let claims = key.verify_token::<UserClaims>(token, Some(options)).ok()?;
    // jwt-simple accepts a token without `exp`, and one whose `exp` is now.
    let exp = UnixTime::try_from(claims.expires_at?.as_secs()).ok()?;
    if now >= exp {
        return None;
    }
    let start = [claims.issued_at, claims.invalid_before]
        .into_iter()
        .flatten()
        .map(|time| UnixTime::try_from(time.as_secs()).unwrap_or(UnixTime::MAX))
        .max()
        .unwrap_or(UnixTime::MIN);
    Some((VerifiedToken { sub: claims.subject?, jti: claims.jwt_id?, exp }, start))
}

/// How many passed tokens a [`Verifier`] remembers; when full, it forgets
/// them all and starts again. Each takes 56 bytes in a table of 2^17 slots
/// (7/8 of them full at most): about 7 MiB when full, allocated as it
/// fills. Enough for 100,000 tokens in use at once, where a full check
/// costs about 6.3 µs against 0.4 µs for a remembered one (a release build
/// here).
pub const REMEMBERED_MAX: usize = 114_688;

/// Verifies tokens as [`verify`] does, remembering those that passed.
pub struct Verifier {
    key: HS256Key,
    capacity: usize,
    /// By the first 16 bytes of the token's SHA-256: another token with the
    /// same would be a 128-bit second preimage.
    passed: Mutex<HashMap<[u8; 16], Passed>>,
}

/// A token that passed [`verify`], in a compact form: its `sub` as the
/// number it spells and its `jti` as the UUID's bytes (tokens whose claims
/// are not in that canonical form are not remembered), and the times
/// between which it holds.
#[derive(Clone, Copy)]
struct Passed {
    sub: i64,
    jti: [u8; 16],
    exp: UnixTime,
    start: UnixTime,
}

impl Passed {
    fn new(token: &VerifiedToken, start: UnixTime) -> Option<Passed> {
        let sub: i64 = token.sub.parse().ok().filter(|id: &i64| id.to_string() == token.sub)?;
        let jti = uuid::Uuid::try_parse(&token.jti).ok()?;
        (jti.hyphenated().to_string() == token.jti).then_some(Passed {
            sub,
            jti: jti.into_bytes(),
            exp: token.exp,
            start,
        })
    }

    fn token(&self) -> VerifiedToken {
        VerifiedToken {
            sub: self.sub.to_string(),
            jti: uuid::Uuid::from_bytes(self.jti).hyphenated().to_string(),
            exp: self.exp,
        }
    }
}

impl Verifier {
    pub fn new(key: HS256Key) -> Verifier {
        Verifier::with_capacity(key, REMEMBERED_MAX)
    }

    fn with_capacity(key: HS256Key, capacity: usize) -> Verifier {
        Verifier { key, capacity, passed: Mutex::new(HashMap::new()) }
    }

    /// The key tokens are verified with, which also signs new ones.
    pub fn key(&self) -> &HS256Key {
        &self.key
    }

    /// The same answer as [`verify`] with this key. A token that passed
    /// before is answered from memory, its `iat`/`nbf` and `exp` checked
    /// against `now` again; any other token is verified in full.
    pub fn verify(&self, token: &str, now: UnixTime) -> Option<VerifiedToken> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let remembered = self.remembered().get(&key).copied();
        if let Some(passed) = remembered {
            return (passed.start <= now && now < passed.exp).then(|| passed.token());
        }
        let (verified, start) = verify_with_start(&self.key, token, now)?;
        if let Some(passed) = Passed::new(&verified, start) {
            let mut remembered = self.remembered();
            if remembered.len() >= self.capacity {
                remembered.clear();
            }
            remembered.insert(key, passed);
        }
        Some(verified)
    }

    /// How many passed tokens are remembered now.
    pub fn remembered_count(&self) -> usize {
        self.remembered().len()
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Passed>> {
        // The map is never left half-changed, so a panic elsewhere while it
        // was held does not make it wrong.
        self.passed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn timestamp(time: UnixTime) -> Duration {
    Duration::from_secs(u64::try_from(time).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Role;

    const NOW: UnixTime = 1_795_780_800;

    fn key() -> HS256Key {
        HS256Key::from_bytes(b"0123456789abcdef0123456789abcdef")
    }

    /// A `jti` as sessiond issues them (a UUID in its hyphenated form).
    fn jti(n: u8) -> String {
        uuid::Uuid::from_bytes([n; 16]).hyphenated().to_string()
    }

    fn alice() -> User {
        User {
            id: 7,
            username: String::from("alice"),
            email: String::from("alice@example.com"),
            role: Role::User,
            is_active: true,
        }
    }

    #[test]
    fn issued_token_verifies_until_its_exp() {
        let token = issue(&key(), &alice(), &jti(1), NOW, NOW + 900).unwrap();
        let expected = VerifiedToken { sub: String::from("7"), jti: jti(1), exp: NOW + 900 };
        assert_eq!(verify(&key(), &token, NOW), Some(expected.clone()));
        assert_eq!(verify(&key(), &token, NOW + 899), Some(expected));
        assert_eq!(verify(&key(), &token, NOW + 900), None, "no leeway at exp");
        assert_eq!(verify(&key(), &token, NOW + 901), None);
    }

    #[test]
    fn token_from_another_key_is_refused() {
        let other = HS256Key::from_bytes(b"another key, also 32 bytes long!");
        let token = issue(&other, &alice(), &jti(1), NOW, NOW + 900).unwrap();
        assert_eq!(verify(&key(), &token, NOW), None);
    }

    #[test]
    fn verifier_answers_as_verify_does_before_and_after_remembering() {
        let verifier = Verifier::new(key());
        let token = issue(&key(), &alice(), &jti(1), NOW, NOW + 900).unwrap();
        assert!(verifier.verify(&token, NOW).is_some());
        assert_eq!(verifier.remembered_count(), 1);
        for now in [NOW - 1, NOW, NOW + 1, NOW + 899, NOW + 900, NOW + 901] {
            assert_eq!(verifier.verify(&token, now), verify(&key(), &token, now), "at {now}");
        }
    }

    #[test]
    fn verifier_remembers_only_tokens_that_passed() {
        let verifier = Verifier::new(key());
        let other = HS256Key::from_bytes(b"another key, also 32 bytes long!");
        let foreign = issue(&other, &alice(), &jti(1), NOW, NOW + 900).unwrap();
        let expired = issue(&key(), &alice(), &jti(2), NOW - 900, NOW).unwrap();
        for _ in 0..2 {
            assert_eq!(verifier.verify(&foreign, NOW), None);
            assert_eq!(verifier.verify(&expired, NOW), None);
        }
        assert_eq!(verifier.remembered_count(), 0);
    }

    #[test]
    fn a_remembered_token_changed_anywhere_is_refused() {
        let verifier = Verifier::new(key());
        let token = issue(&key(), &alice(), &jti(1), NOW, NOW + 900).unwrap();
        assert!(verifier.verify(&token, NOW).is_some());
        for index in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(verifier.verify(&changed, NOW), None, "changed at {index}");
        }
        assert_eq!(verifier.verify(&format!("{token}A"), NOW), None);
        assert_eq!(verifier.verify(&token[..token.len() - 1], NOW), None);
    }

    #[test]
    fn a_token_whose_claims_are_not_in_canonical_form_is_checked_in_full_each_time() {
        let verifier = Verifier::new(key());
        let mut bob = alice();
        bob.id = 8;
        let tokens = [
            issue(&key(), &alice(), "jti-1", NOW, NOW + 900).unwrap(),
            issue(&key(), &alice(), &jti(0xab).to_uppercase(), NOW, NOW + 900).unwrap(),
            issue(&key(), &alice(), &jti(1).replace('-', ""), NOW, NOW + 900).unwrap(),
        ];
        for token in &tokens {
            for now in [NOW, NOW + 1, NOW + 900] {
                assert_eq!(verifier.verify(token, now), verify(&key(), token, now), "at {now}");
            }
        }
        assert_eq!(verifier.remembered_count(), 0);
        // The control: a canonical one is remembered, and answered the same.
        let token = issue(&key(), &bob, &jti(1), NOW, NOW + 900).unwrap();
        assert_eq!(verifier.verify(&token, NOW), verify(&key(), &token, NOW));
        assert_eq!(verifier.remembered_count(), 1);
        assert_eq!(verifier.verify(&token, NOW).unwrap().sub, "8");
    }

    #[test]
    fn a_full_verifier_forgets_and_still_answers() {
        let verifier = Verifier::with_capacity(key(), 2);
        let tokens: Vec<String> =
            (0..3).map(|n| issue(&key(), &alice(), &jti(n), NOW, NOW + 900).unwrap()).collect();
        for token in &tokens {
            assert!(verifier.verify(token, NOW).is_some());
        }
        assert_eq!(verifier.remembered_count(), 1, "the third token found it full");
        for token in &tokens {
            assert_eq!(verifier.verify(token, NOW + 1), verify(&key(), token, NOW + 1));
        }
    }

    #[test]
    fn token_without_exp_is_refused() {
        let claims = JWTClaims {
            issued_at: Some(timestamp(NOW)),
            expires_at: None,
            invalid_before: None,
            issuer: None,
            subject: Some(String::from("7")),
            audiences: Some(Audiences::AsString(AUDIENCE.to_owned())),
            jwt_id: Some(jti(1)),
            nonce: None,
            custom: UserClaims { sub_name: String::from("alice"), sub_email: String::new() },
        };
        let header =
            HeaderOptions { signature_type: Some(TOKEN_TYPE.to_owned()), content_type: None };
        let token = key().authenticate_with_options(claims, &header).unwrap();
        assert_eq!(verify(&key(), &token, NOW), None);
    }
}
