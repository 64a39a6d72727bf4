//! The `access_rules` table and everything forward auth needs to decide with
//! it (SPEC 9): validating a rule (host pattern, path prefix, policy),
//! normalizing the path of a request, matching (first match wins), and the
//! in-memory copy of the rules that a running server keeps.
//!
//! Only this module runs SQL on `access_rules`. Every change to the table
//! bumps the `access_rules_version` value in `meta` in the same transaction,
//! so a running server sees a change by reading that one value, at most once
//! a second of its clock ([`RuleCache`]); it never reads the rules on every
//! request. Nothing here knows HTTP or reads the clock: the caller passes
//! `now`.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::db::{Behavior, Conn, params};

use crate::clock::UnixTime;
use crate::users::Role;

/// The `meta` key whose value changes with every change to the rules.
const VERSION_KEY: &str = "access_rules_version";

/// What a rule lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Anyone, signed in or not.
    Bypass,
    /// Nobody.
    Deny,
    /// Signed in with at least this role.
    AtLeast(Role),
}

impl Policy {
    /// Parses one of `bypass`, `deny`, `user`, `manager`, `admin` (any case).
    pub fn parse(text: &str) -> Option<Policy> {
        match text.to_ascii_lowercase().as_str() {
            "bypass" => Some(Policy::Bypass),
            "deny" => Some(Policy::Deny),
            role => Role::parse(role).map(Policy::AtLeast),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::Deny => "deny",
            Policy::AtLeast(role) => role.as_str(),
        }
    }

    /// Every policy word, in the order forms and messages list them.
    pub const WORDS: [&'static str; 5] = ["bypass", "deny", "user", "manager", "admin"];
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `role` is at least `least` (admin includes manager includes user).
pub fn role_includes(role: Role, least: Role) -> bool {
    rank(role) >= rank(least)
}

fn rank(role: Role) -> u8 {
    match role {
        Role::User => 0,
        Role::Manager => 1,
        Role::Admin => 2,
    }
}

/// `Remote-Groups`: the role and the roles it includes, e.g. `manager,user`.
pub fn groups(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin,manager,user",
        Role::Manager => "manager,user",
        Role::User => "user",
    }
}

/// A host pattern: one host name, or `*.` and a host name for every host
/// below it at any depth (never the name itself). Kept in lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The part after `*.`.
    Below(String),
}

impl HostPattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let refuse = |why: &str| {
            Err(format!(
                "invalid host pattern `{}`: {why}; expected a host name like `wiki.example.com` or `*.example.com`",
                shown(text)
            ))
        };
        let lower = text.to_ascii_lowercase();
        let (below, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.contains('*') {
            return refuse("`*` may only stand alone as the first label, followed by `.`");
        }
        if let Err(why) = check_host_name(name) {
            return refuse(why);
        }
        Ok(if below {
            HostPattern::Below(name.to_owned())
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }

    /// Whether a request's host (already lowercased, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Below(name) => host
                .strip_suffix(name.as_str())
                .is_some_and(|start| start.len() > 1 && start.ends_with('.')),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Below(name) => write!(f, "*.{name}"),
        }
    }
}

/// Checks a host name: dot-separated labels of ASCII letters, digits, `-`
/// and `_`, each 1 to 63 long, not starting or ending with `-`, 253 at most
/// in all. An IPv4 address passes too (its labels are digits).
pub fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    if !name.is_ascii() {
        return Err("it is not ASCII (write an IDN in its `xn--` form)");
    }
    if name.contains(':') {
        return Err("it has a port or is an IPv6 address");
    }
    if name.contains('/') {
        return Err("it has a path");
    }
    if name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err("it has a space or control character");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("it has a character other than letters, digits, `-`, `_` and `.`");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with `-`");
        }
    }
    Ok(())
}

/// A path prefix, normalized; it matches whole segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPrefix(String);

impl PathPrefix {
    /// Parses a prefix: it must start with `/` and normalize like a request
    /// path; a trailing `/` is dropped (`/admin/` is `/admin`).
    pub fn parse(text: &str) -> Result<PathPrefix, String> {
        if !text.starts_with('/') {
            return Err(format!("invalid path `{}`: it must start with `/`", shown(text)));
        }
        if text.contains(['?', '#']) {
            return Err(format!(
                "invalid path `{}`: a query or fragment is not a path",
                shown(text)
            ));
        }
        if text.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(format!(
                "invalid path `{}`: it has a space or control character",
                shown(text)
            ));
        }
        let normalized = normalize_path(text)
            .map_err(|error| format!("invalid path `{}`: {error}", shown(text)))?;
        let trimmed = normalized.trim_end_matches('/');
        Ok(PathPrefix(if trimmed.is_empty() { String::from("/") } else { trimmed.to_owned() }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a normalized request path lies under this prefix.
    pub fn matches(&self, path: &str) -> bool {
        let prefix = self.0.as_str();
        prefix == "/"
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Why a request path cannot be compared with the rules (SPEC 9: 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    BadPercentEncoding,
    Nul,
    EncodedSlash,
    Backslash,
    NotAbsolute,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::BadPercentEncoding => "the path has a bad percent-encoding",
            PathError::Nul => "the path has a NUL",
            PathError::EncodedSlash => "the path has an encoded `/` or `\\`",
            PathError::Backslash => "the path has a `\\`",
            PathError::NotAbsolute => "the path does not start with `/`",
        })
    }
}

/// Normalizes a request path (without its query) as SPEC 9 says: decodes
/// percent-encoded unreserved characters (letters, digits, `-._~`), keeps
/// other escapes in uppercase, collapses repeated slashes and removes dot
/// segments (`.`, `..`, also when they were encoded). Refused: a bad `%`
/// escape, a NUL (raw or encoded), an encoded `/` or `\`, and a raw `\`
/// (which some servers take for `/`, so it could hide a segment).
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    normalize_path_borrowed(path).map(Cow::into_owned)
}

/// [`normalize_path`], returning a path that normalization leaves as it is
/// (the common case: no `%`, NUL or `\\`, and no empty, `.` or `..`
/// segment but a final empty one) borrowed, without building a copy.
pub fn normalize_path_borrowed(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal_path(path) {
        return Ok(Cow::Borrowed(path));
    }
    rebuild_path(path).map(Cow::Owned)
}

/// The normalization itself, on a path that starts with `/`.
fn rebuild_path(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let high = bytes.get(index + 1).and_then(|b| hex_value(*b));
                let low = bytes.get(index + 2).and_then(|b| hex_value(*b));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let byte = high << 4 | low;
                match byte {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                        decoded.push(b);
                    }
                    b => decoded.extend_from_slice(format!("%{b:02X}").as_bytes()),
                }
                index += 3;
            }
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b => {
                decoded.push(b);
                index += 1;
            }
        }
    }
    // Only ASCII bytes were added or removed, so this is still UTF-8.
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::BadPercentEncoding)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut normalized = String::with_capacity(decoded.len());
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if normalized.is_empty() || trailing_slash {
        normalized.push('/');
    }
    Ok(normalized)
}

/// Whether `normalize_path` would return this path (starting with `/`)
/// unchanged: nothing to decode or refuse, and no segment to collapse or
/// remove. Only the last segment may be empty (a trailing `/`, kept).
fn is_normal_path(path: &str) -> bool {
    if path.bytes().any(|b| matches!(b, b'%' | b'\\' | 0)) {
        return false;
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return false,
            "" if !last => return false,
            _ => {}
        }
    }
    true
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The host of a request as rules see it: lowercase, without port and
/// without a final `.`. `None` when it is not a host name or an IP address.
pub fn normalize_host(host: &str) -> Option<String> {
    normalize_host_borrowed(host).map(Cow::into_owned)
}

/// [`normalize_host`], borrowing the host when it is already normal (the
/// request path's case: no copy).
pub fn normalize_host_borrowed(host: &str) -> Option<Cow<'_, str>> {
    let host = host.trim();
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal, `[::1]` or `[::1]:8080`.
        let (address, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        address.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(Cow::Owned(format!("[{}]", address.to_ascii_lowercase())));
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => host,
        }
    };
    let name = without_port.strip_suffix('.').unwrap_or(without_port);
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    check_host_name(&name).ok()?;
    Some(name)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// One stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The row id: stable, unlike the number.
    pub id: i64,
    /// The rule's place in the order, from 1.
    pub number: usize,
    pub pattern: HostPattern,
    pub path: Option<PathPrefix>,
    pub policy: Policy,
}

impl Rule {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        self.pattern.matches(host) && self.path.as_ref().is_none_or(|prefix| prefix.matches(path))
    }
}

/// A rule to add, validated.
#[derive(Debug, Clone)]
pub struct NewRule {
    pub pattern: HostPattern,
    pub path: Option<PathPrefix>,
    pub policy: Policy,
}

impl NewRule {
    /// Validates the three parts as typed; the error names the bad one.
    pub fn parse(pattern: &str, path: Option<&str>, policy: &str) -> Result<NewRule, String> {
        let pattern = HostPattern::parse(pattern)?;
        let path = path.map(PathPrefix::parse).transpose()?;
        let policy = Policy::parse(policy).ok_or_else(|| {
            format!(
                "invalid policy `{}`: expected one of `{}`",
                shown(policy),
                Policy::WORDS.join("`, `")
            )
        })?;
        Ok(NewRule { pattern, path, policy })
    }
}

/// The policy for a request: that of the first rule that matches, else the
/// default. `host` and `path` are normalized.
pub fn decide(rules: &[Rule], default: Policy, host: &str, path: &str) -> Policy {
    rules.iter().find(|rule| rule.matches(host, path)).map_or(default, |rule| rule.policy)
}

/// Every rule, in order.
pub fn list(conn: &Conn) -> crate::db::Result<Vec<Rule>> {
    let mut statement =
        conn.prepare_cached("SELECT id, pattern, path, policy FROM access_rules ORDER BY id")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    let mut rules = Vec::new();
    for row in rows {
        let (id, pattern, path, policy) = row?;
        // Rows are validated on the way in; one that no longer parses (a
        // hand edit) is skipped rather than guessed at, and says so.
        match NewRule::parse(&pattern, path.as_deref(), &policy) {
            Ok(rule) => rules.push(Rule {
                id,
                number: rules.len() + 1,
                pattern: rule.pattern,
                path: rule.path,
                policy: rule.policy,
            }),
            Err(error) => eprintln!("warning: access rule {id} skipped: {error}"),
        }
    }
    Ok(rules)
}

/// Appends a rule; returns it with its number.
pub fn add(conn: &Conn, rule: &NewRule) -> crate::db::Result<Rule> {
    let tx = conn.transaction(Behavior::Immediate)?;
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO access_rules (pattern, path, policy) VALUES ($1, $2, $3) RETURNING id",
        )?
        .query_row(
            params![
                rule.pattern.to_string(),
                rule.path.as_ref().map(PathPrefix::as_str),
                rule.policy.as_str()
            ],
            |row| row.get(0),
        )?;
    let number: i64 = tx
        .prepare_cached("SELECT count(*) FROM access_rules WHERE id <= $1")?
        .query_row(params![id], |row| row.get(0))?;
    bump_version(&tx)?;
    tx.commit()?;
    Ok(Rule {
        id,
        number: usize::try_from(number).unwrap_or(0),
        pattern: rule.pattern.clone(),
        path: rule.path.clone(),
        policy: rule.policy,
    })
}

/// Removes the rule with this number (from 1, as `list` numbers them);
/// `None` when there is none.
pub fn remove_number(conn: &Conn, number: usize) -> crate::db::Result<Option<Rule>> {
    let tx = conn.transaction(Behavior::Immediate)?;
    let rules = list(&tx)?;
    let Some(rule) = number.checked_sub(1).and_then(|index| rules.get(index)).cloned() else {
        return Ok(None);
    };
    tx.prepare_cached("DELETE FROM access_rules WHERE id = $1")?.execute(params![rule.id])?;
    bump_version(&tx)?;
    tx.commit()?;
    Ok(Some(rule))
}

/// Removes the rule with this row id; `None` when there is none.
pub fn remove_id(conn: &Conn, id: i64) -> crate::db::Result<Option<Rule>> {
    let tx = conn.transaction(Behavior::Immediate)?;
    let rule = list(&tx)?.into_iter().find(|rule| rule.id == id);
    if rule.is_some() {
        tx.prepare_cached("DELETE FROM access_rules WHERE id = $1")?.execute(params![id])?;
        bump_version(&tx)?;
    }
    tx.commit()?;
    Ok(rule)
}

/// The version of the rules: changes with every add and remove.
pub fn version(conn: &Conn) -> crate::db::Result<i64> {
    let text = crate::meta::get(conn, VERSION_KEY)?;
    Ok(text.and_then(|text| text.parse().ok()).unwrap_or(0))
}

fn bump_version(conn: &Conn) -> crate::db::Result<()> {
    let next = version(conn)?.wrapping_add(1);
    crate::meta::set(conn, VERSION_KEY, &next.to_string())
}

// ---------------------------------------------------------------------------
// The running server's copy.

/// The rules as one worker sees them, shared by every worker.
#[derive(Debug)]
pub struct Snapshot {
    pub version: i64,
    pub rules: Vec<Rule>,
}

/// The rules a running server decides with. A request takes the current
/// snapshot under a read lock (no database read); at most once per second of
/// the server's clock a request reads the version from `meta` (one primary
/// key look-up) and reloads the rules only when it changed. So a change made
/// anywhere (another process, the CLI) counts within about a second, and
/// the table is read only after a change. Why a version and not a reload
/// every few seconds: a reload costs a query and an allocation per rule even
/// when nothing changed, and the version also makes the wait short.
#[derive(Debug, Default)]
pub struct RuleCache {
    current: RwLock<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    snapshot: Arc<Snapshot>,
    checked_at: UnixTime,
}

impl RuleCache {
    /// The rules in force at `now`.
    pub fn rules(&self, conn: &Conn, now: UnixTime) -> crate::db::Result<Arc<Snapshot>> {
        let cached = self.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(cached) = &cached
            && cached.checked_at == now
        {
            return Ok(Arc::clone(&cached.snapshot));
        }
        let version = version(conn)?;
        let snapshot = match cached {
            Some(cached) if cached.snapshot.version == version => cached.snapshot,
            _ => Arc::new(Snapshot { version, rules: list(conn)? }),
        };
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Some(Cached { snapshot: Arc::clone(&snapshot), checked_at: now });
        Ok(snapshot)
    }

    /// The policy for a request at `now` (see [`decide`]), matched under
    /// the read lock: no copy of the rules and no reference count taken
    /// when the version was checked this second already.
    pub fn policy(
        &self,
        conn: &Conn,
        now: UnixTime,
        default: Policy,
        host: &str,
        path: &str,
    ) -> crate::db::Result<Policy> {
        {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = current.as_ref()
                && cached.checked_at == now
            {
                return Ok(decide(&cached.snapshot.rules, default, host, path));
            }
        }
        let snapshot = self.rules(conn, now)?;
        Ok(decide(&snapshot.rules, default, host, path))
    }

    /// Forgets the copy, so that the next request reads the rules: after a
    /// change made by this server.
    pub fn forget(&self) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A value as shown in a message: control characters dropped, cut short.
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalization_follows_spec_9() {
        let cases = [
            ("/", "/"),
            ("/admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%41DMIN", "/ADMIN"),
            ("//admin", "/admin"),
            ("/./admin", "/admin"),
            ("/a/b/../../admin/", "/admin/"),
            ("/%2e%2e/admin", "/admin"),
            ("/.%2E/admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/admin/.", "/admin/"),
            ("/a//b///c", "/a/b/c"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/x%7e", "/x~"),
            ("/admin;x", "/admin;x"),
            ("/a/", "/a/"),
            ("/a//", "/a/"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/.", "/"),
            ("/..", "/"),
            ("//", "/"),
            ("/.hidden/..x/x..", "/.hidden/..x/x.."),
            ("/page", "/page"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_path(raw).as_deref(), Ok(expected), "{raw}");
            // A path that comes back borrowed is one left as it is.
            let borrowed = matches!(normalize_path_borrowed(raw), Ok(Cow::Borrowed(_)));
            assert!(!borrowed || raw == expected, "{raw}");
        }
        for plain in ["/", "/page", "/a/", "/admin/x;y", "/.hidden/..x"] {
            assert!(matches!(normalize_path_borrowed(plain), Ok(Cow::Borrowed(_))), "{plain}");
        }
    }

    #[test]
    fn the_borrowed_path_is_exactly_the_rebuilt_one() {
        // Every path of up to 6 characters after the `/` over an alphabet
        // that makes segments, dots, escapes and refusals.
        let alphabet = ['/', '.', 'a', '%', '2', 'f', '\\'];
        let mut paths = vec![String::from("/")];
        let mut start = 0;
        for _ in 0..6 {
            let end = paths.len();
            for index in start..end {
                for c in alphabet {
                    let mut longer = paths[index].clone();
                    longer.push(c);
                    paths.push(longer);
                }
            }
            start = end;
        }
        for path in &paths {
            assert_eq!(
                normalize_path_borrowed(path).map(Cow::into_owned),
                rebuild_path(path),
                "{path}"
            );
        }
    }

    #[test]
    fn undecodable_paths_are_refused() {
        let cases = [
            ("/admin%2fx", PathError::EncodedSlash),
            ("/admin%2Fx", PathError::EncodedSlash),
            ("/admin%5cx", PathError::EncodedSlash),
            ("/%zz", PathError::BadPercentEncoding),
            ("/%4", PathError::BadPercentEncoding),
            ("/%", PathError::BadPercentEncoding),
            ("/%00", PathError::Nul),
            ("/a\0b", PathError::Nul),
            ("/a\\b", PathError::Backslash),
            ("admin", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_path(raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn host_patterns_are_host_names_or_star_dot_one() {
        assert_eq!(
            HostPattern::parse("Wiki.Example.com"),
            Ok(HostPattern::Exact("wiki.example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.example.com"),
            Ok(HostPattern::Below("example.com".into()))
        );
        assert!(HostPattern::parse("localhost").is_ok());
        assert!(HostPattern::parse("10.0.0.1").is_ok());
        for bad in [
            "*",
            "*.",
            "",
            "wiki.example.com:8080",
            "wiki.example.com/admin",
            "wiki example.com",
            "wikí.example.com",
            "*example.com",
            "a.*.example.com",
            "**.example.com",
            "https://wiki.example.com",
            "-a.example.com",
            "a..example.com",
            ".example.com",
            "[::1]",
            "wiki.example.com.",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn star_dot_matches_any_depth_but_never_the_apex() {
        let pattern = HostPattern::parse("*.example.com").unwrap();
        assert!(pattern.matches("wiki.example.com"));
        assert!(pattern.matches("a.b.example.com"));
        assert!(!pattern.matches("example.com"));
        assert!(!pattern.matches("badexample.com"));
        assert!(!pattern.matches(".example.com"));
        assert!(!pattern.matches("example.com.evil.test"));
        let exact = HostPattern::parse("wiki.example.com").unwrap();
        assert!(exact.matches("wiki.example.com"));
        assert!(!exact.matches("a.wiki.example.com"));
    }

    #[test]
    fn hosts_are_lowercased_without_port_or_final_dot() {
        assert_eq!(normalize_host("Wiki.Example.COM:8443").as_deref(), Some("wiki.example.com"));
        assert_eq!(normalize_host("wiki.example.com.").as_deref(), Some("wiki.example.com"));
        assert_eq!(normalize_host("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize_host("[::1]:8080").as_deref(), Some("[::1]"));
        for bad in ["", "a b", "host:port", "evil@host", "a/b", "a, b", "[::1", "[zz]"] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let admin = PathPrefix::parse("/admin/").unwrap();
        assert_eq!(admin.as_str(), "/admin");
        assert!(admin.matches("/admin"));
        assert!(admin.matches("/admin/"));
        assert!(admin.matches("/admin/x"));
        assert!(!admin.matches("/administrator"));
        assert!(!admin.matches("/"));
        assert!(PathPrefix::parse("/").unwrap().matches("/anything"));
        assert_eq!(PathPrefix::parse("/%61dmin").unwrap().as_str(), "/admin");
        for bad in ["admin", "", "/a b", "/a?x", "/%zz", "/a%2fb"] {
            assert!(PathPrefix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn policies_and_roles() {
        for word in Policy::WORDS {
            assert_eq!(Policy::parse(word).unwrap().as_str(), word);
        }
        assert_eq!(Policy::parse("Manager"), Some(Policy::AtLeast(Role::Manager)));
        assert_eq!(Policy::parse("superhero"), None);
        assert!(role_includes(Role::Admin, Role::Manager));
        assert!(role_includes(Role::Manager, Role::User));
        assert!(!role_includes(Role::User, Role::Manager));
        assert!(!role_includes(Role::Manager, Role::Admin));
        assert_eq!(groups(Role::Manager), "manager,user");
    }

    #[test]
    fn first_match_wins_else_the_default() {
        let rule = |id: i64, pattern: &str, path: Option<&str>, policy: &str| {
            let new = NewRule::parse(pattern, path, policy).unwrap();
            Rule {
                id,
                number: id as usize,
                pattern: new.pattern,
                path: new.path,
                policy: new.policy,
            }
        };
        let rules = vec![
            rule(1, "wiki.example.com", Some("/public"), "bypass"),
            rule(2, "wiki.example.com", Some("/admin"), "admin"),
            rule(3, "*.example.com", None, "manager"),
            rule(4, "wiki.example.com", None, "deny"),
        ];
        let default = Policy::AtLeast(Role::User);
        assert_eq!(decide(&rules, default, "wiki.example.com", "/public/x"), Policy::Bypass);
        assert_eq!(
            decide(&rules, default, "wiki.example.com", "/admin"),
            Policy::AtLeast(Role::Admin)
        );
        assert_eq!(
            decide(&rules, default, "wiki.example.com", "/other"),
            Policy::AtLeast(Role::Manager)
        );
        assert_eq!(decide(&rules, default, "example.com", "/"), default);
        assert_eq!(decide(&rules, default, "other.test", "/admin"), default);
    }

    #[test]
    fn changes_bump_the_version_and_the_cache_follows_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("db.sqlite3")).unwrap();
        let cache = RuleCache::default();
        assert_eq!(version(&conn).unwrap(), 0);
        assert!(cache.rules(&conn, 100).unwrap().rules.is_empty());
        let added = add(&conn, &NewRule::parse("a.test", None, "deny").unwrap()).unwrap();
        assert_eq!(added.number, 1);
        assert_eq!(version(&conn).unwrap(), 1);
        // Within the same second the copy is not checked again.
        assert!(cache.rules(&conn, 100).unwrap().rules.is_empty());
        assert_eq!(cache.rules(&conn, 101).unwrap().rules.len(), 1);
        add(&conn, &NewRule::parse("b.test", Some("/x"), "user").unwrap()).unwrap();
        assert_eq!(remove_number(&conn, 1).unwrap().unwrap().pattern.to_string(), "a.test");
        assert_eq!(remove_number(&conn, 2).unwrap(), None);
        let rules = cache.rules(&conn, 102).unwrap();
        assert_eq!(rules.rules.len(), 1);
        assert_eq!(rules.rules[0].number, 1);
        assert_eq!(rules.rules[0].path.as_ref().unwrap().as_str(), "/x");
        assert_eq!(version(&conn).unwrap(), 3);
    }
}

// ---------------------------------------------------------------------------
// Moving an installation (`sessiond export` / `sessiond import`): every
// rule as stored, ids (and so the order) included.

/// One `access_rules` row as an export carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRuleRow {
    pub id: i64,
    pub pattern: String,
    pub path: Option<String>,
    pub policy: String,
}

impl AccessRuleRow {
    /// What `sessiond access add` would refuse: a bad pattern, path or
    /// policy.
    pub fn check(&self) -> Result<(), String> {
        NewRule::parse(&self.pattern, self.path.as_deref(), &self.policy).map(|_| ())
    }
}

/// Every rule, by id (the order they are tried in).
pub fn export_rows(conn: &Conn) -> crate::db::Result<Vec<AccessRuleRow>> {
    let mut statement =
        conn.prepare("SELECT id, pattern, path, policy FROM access_rules ORDER BY id")?;
    let rows = statement.query_map([], |row| {
        Ok(AccessRuleRow {
            id: row.get(0)?,
            pattern: row.get(1)?,
            path: row.get(2)?,
            policy: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// Inserts exported rules (each [`AccessRuleRow::check`]ed) with their ids
/// into a database that has none (rules already there are configuration
/// someone made: refused rather than mixed or dropped), and bumps the
/// version. The caller's transaction makes a failure change nothing.
pub fn import_rows(conn: &Conn, rows: &[AccessRuleRow]) -> anyhow::Result<()> {
    let existing: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM access_rules)", [], |row| row.get(0))?;
    if existing && !rows.is_empty() {
        anyhow::bail!(
            "the database already has access rules; remove them (`sessiond access remove N`) or import into a new database"
        );
    }
    let mut statement = conn
        .prepare("INSERT INTO access_rules (id, pattern, path, policy) VALUES ($1, $2, $3, $4)")?;
    for (index, row) in rows.iter().enumerate() {
        let refuse =
            |what: String| anyhow::anyhow!("`access_rules[{index}]` (id {}): {what}", row.id);
        row.check().map_err(refuse)?;
        statement
            .execute(params![row.id, row.pattern, row.path, row.policy])
            .map_err(|error| refuse(error.to_string()))?;
    }
    bump_version(conn)?;
    if conn.engine() == crate::db::Engine::Postgres {
        // The rows came with their ids: the identity must go on after them.
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('access_rules', 'id'), max(id)) FROM access_rules",
            [],
        )?;
    }
    Ok(())
}
