//! The settings: which keys exist, what values they accept, and where each
//! value came from.
//!
//! Precedence is the process environment, then the `.env` file, then the
//! fallback. The Django names are kept so that a Ghostwriter `.env` works as
//! it is (its other keys are ignored). Every value is validated here, once, at
//! load time; a bad one is refused with its key and value named (a secret is
//! named by its key only). Secrets that are not configured are `None` here
//! and are generated and kept in the database by `secrets`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What kind of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whole seconds greater than zero.
    Seconds,
    /// Whole seconds, zero meaning "no limit".
    SecondsOrZero,
    Bool,
    CookieName,
    /// A signing key of at least this many bytes.
    Secret {
        min_bytes: usize,
    },
    /// Space-separated origins such as `https://example.com`.
    Origins,
    SocketAddr,
    /// A SQLite file path, or a `postgres://` / `postgresql://` URL whose
    /// password is masked wherever it is shown.
    Database,
    /// A listen address, or empty for none.
    OptionalSocketAddr,
    /// A whole number from 1 to this.
    Count {
        max: usize,
    },
    /// A cookie `Domain` such as `example.com`; empty for a host-only cookie.
    CookieDomain,
    /// An absolute `http(s)://` URL without query or fragment; empty for none.
    PublicUrl,
    /// A forward-auth policy word (see `access_rules::Policy`).
    Policy,
}

/// One setting.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    /// The value used when neither the environment nor the file set it;
    /// `None` for secrets, which are generated and kept in the database.
    pub fallback: Option<&'static str>,
    /// What `init` writes: `Some(value)`, or the kind of value to generate.
    pub init: InitValue,
    pub meaning: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitValue {
    Value(&'static str),
    FreshSecret,
    NotWritten,
}

/// Every key sessiond reads, in the order `config` prints them.
pub const KEYS: &[Key] = &[
    Key {
        name: "DJANGO_SESSION_COOKIE_AGE",
        kind: Kind::Seconds,
        fallback: Some("7200"),
        init: InitValue::Value("32400"),
        meaning: "seconds a web session lives after its last save",
    },
    Key {
        name: "DJANGO_SESSION_SAVE_EVERY_REQUEST",
        kind: Kind::Bool,
        fallback: Some("true"),
        init: InitValue::Value("true"),
        meaning: "every authenticated request slides the expiry and re-sends the cookie",
    },
    Key {
        name: "DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE",
        kind: Kind::Bool,
        fallback: Some("true"),
        init: InitValue::Value("true"),
        meaning: "the cookie has no Max-Age/Expires; the server-side expiry still applies",
    },
    Key {
        name: "DJANGO_SESSION_COOKIE_SECURE",
        kind: Kind::Bool,
        fallback: Some("false"),
        init: InitValue::Value("false"),
        meaning: "add `Secure` to the cookie",
    },
    Key {
        name: "DJANGO_SESSION_COOKIE_NAME",
        kind: Kind::CookieName,
        fallback: Some("sessionid"),
        init: InitValue::NotWritten,
        meaning: "cookie name",
    },
    Key {
        name: "DJANGO_SECRET_KEY",
        kind: Kind::Secret { min_bytes: 1 },
        fallback: None,
        init: InitValue::FreshSecret,
        meaning: "key for anything the server signs besides JWTs",
    },
    Key {
        name: "DJANGO_JWT_SECRET_KEY",
        kind: Kind::Secret { min_bytes: 32 },
        fallback: None,
        init: InitValue::FreshSecret,
        meaning: "HS256 key for login JWTs (at least 32 bytes)",
    },
    Key {
        name: "DJANGO_CSRF_TRUSTED_ORIGINS",
        kind: Kind::Origins,
        fallback: Some(""),
        init: InitValue::Value(""),
        meaning: "space-separated extra origins allowed to POST",
    },
    Key {
        name: "SESSIOND_SESSION_ABSOLUTE_AGE",
        kind: Kind::SecondsOrZero,
        fallback: Some("2592000"),
        init: InitValue::Value("2592000"),
        meaning: "hard cap on a web session's life since login; 0 = none",
    },
    Key {
        name: "SESSIOND_JWT_LIFETIME",
        kind: Kind::Seconds,
        fallback: Some("900"),
        init: InitValue::Value("900"),
        meaning: "seconds a login JWT is valid",
    },
    Key {
        name: "SESSIOND_BIND",
        kind: Kind::SocketAddr,
        fallback: Some("127.0.0.1:8000"),
        init: InitValue::Value("127.0.0.1:8000"),
        meaning: "listen address",
    },
    Key {
        name: "SESSIOND_DB",
        kind: Kind::Database,
        fallback: Some("data/sessiond.sqlite3"),
        init: InitValue::NotWritten,
        meaning: "database file, or a `postgres://` URL",
    },
    Key {
        name: "SESSIOND_TRUST_PROXY_HEADERS",
        kind: Kind::Bool,
        fallback: Some("false"),
        init: InitValue::Value("false"),
        meaning: "take the client address from `X-Forwarded-For` (only behind a reverse proxy)",
    },
    Key {
        name: "SESSIOND_REQUEST_TIMEOUT",
        kind: Kind::Seconds,
        fallback: Some("10"),
        init: InitValue::NotWritten,
        meaning: "seconds a client has to send a request's headers, and again its body; a connection silent this long is closed",
    },
    Key {
        name: "SESSIOND_METRICS_BIND",
        kind: Kind::OptionalSocketAddr,
        fallback: Some(""),
        init: InitValue::NotWritten,
        meaning: "a second listen address that serves only `GET /metrics`; empty = off",
    },
    Key {
        name: "SESSIOND_ACCESS_LOG",
        kind: Kind::Bool,
        fallback: Some("true"),
        init: InitValue::Value("true"),
        meaning: "one log line per request on stderr",
    },
    // issue 11 (HTTP layer): one client address's share of the connections.
    Key {
        name: "SESSIOND_MAX_CONNECTIONS_PER_CLIENT",
        // The cap is `http::server::MAX_CONNECTIONS` (settings does not import
        // the server; a test there keeps the two equal).
        kind: Kind::Count { max: 256 },
        fallback: Some("128"),
        init: InitValue::NotWritten,
        meaning: "connections one client address may hold open at once (of 256); a reverse proxy in front counts as one client",
    },
    // Forward auth (SPEC 9).
    Key {
        name: "DJANGO_SESSION_COOKIE_DOMAIN",
        kind: Kind::CookieDomain,
        fallback: Some(""),
        init: InitValue::NotWritten,
        meaning: "`Domain` of the session cookie, e.g. `example.com`, so one sign-in covers every app under it; empty: host-only",
    },
    Key {
        name: "SESSIOND_PUBLIC_URL",
        kind: Kind::PublicUrl,
        fallback: Some(""),
        init: InitValue::NotWritten,
        meaning: "the absolute URL where people reach sessiond, e.g. `https://auth.example.com`; forward auth sends people to its `/login`",
    },
    Key {
        name: "SESSIOND_ACCESS_DEFAULT",
        kind: Kind::Policy,
        fallback: Some("user"),
        init: InitValue::Value("user"),
        meaning: "forward-auth policy when no rule matches: `bypass`, `deny`, `user`, `manager`, `admin`",
    },
];

/// Finds a key by name, ignoring case.
pub fn find_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name.eq_ignore_ascii_case(name))
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Environment,
    EnvFile(PathBuf),
    Fallback,
    /// A secret that is not configured: generated once and kept in the
    /// database.
    Database,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::CommandLine => f.write_str("command line"),
            Source::Environment => f.write_str("environment"),
            Source::EnvFile(path) => write!(f, "{}", path.display()),
            Source::Fallback => f.write_str("default"),
            Source::Database => f.write_str("database"),
        }
    }
}

/// One resolved value with its origin.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub key: &'static Key,
    /// `None` only for a secret that is not configured.
    pub value: Option<String>,
    pub source: Source,
}

impl Resolved {
    /// The value as `config` shows it: secrets masked.
    pub fn display_value(&self) -> String {
        match (&self.value, self.key.kind) {
            (None, _) => String::from("(generated, kept in the database)"),
            (Some(value), Kind::Secret { .. }) => mask(value),
            (Some(value), Kind::Database) => match PostgresUrl::parse(value) {
                Ok(Some(url)) => url.masked,
                // Validated at load; a URL that did not parse never gets here.
                Err(_) => String::from("(an unparsable PostgreSQL URL)"),
                Ok(None) => value.clone(),
            },
            (Some(value), _) => value.clone(),
        }
    }
}

/// Masks a secret, showing only its length.
pub fn mask(secret: &str) -> String {
    format!("******** ({} bytes)", secret.len())
}

/// The settings in force, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_cookie_age: i64,
    pub save_every_request: bool,
    pub expire_at_browser_close: bool,
    pub cookie_secure: bool,
    pub cookie_name: String,
    pub secret_key: Option<String>,
    pub jwt_secret_key: Option<String>,
    pub csrf_trusted_origins: Vec<String>,
    /// Zero means no cap.
    pub session_absolute_age: i64,
    pub jwt_lifetime: i64,
    pub bind: SocketAddr,
    /// The SQLite file, or when `SESSIOND_DB` is a PostgreSQL URL its text
    /// (password included: `db` connects with it; messages use
    /// [`Settings::db_shown`]).
    pub db: PathBuf,
    /// `SESSIOND_DB` when it is a PostgreSQL URL (never its password).
    pub postgres: Option<PostgresUrl>,
    pub trust_proxy_headers: bool,
    /// Seconds a client has for a request's headers, and again for its body;
    /// also how long a connection may stay silent.
    pub request_timeout: i64,
    /// Where the metrics listener binds; `None` when it is off.
    pub metrics_bind: Option<SocketAddr>,
    /// One access log line per request on stderr.
    pub access_log: bool,
    /// Connections one client address (an IPv4 address or an IPv6 /64) may
    /// hold open at once.
    pub max_connections_per_client: usize,
    /// `DJANGO_SESSION_COOKIE_DOMAIN` in lowercase without a leading `.`.
    pub cookie_domain: Option<String>,
    pub public_url: Option<PublicUrl>,
    pub access_default: crate::access_rules::Policy,
    /// Every key with its value and source, in `KEYS` order.
    pub resolved: Vec<Resolved>,
}

/// Values given on the command line, which win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub db: Option<PathBuf>,
    pub bind: Option<String>,
}

impl Settings {
    /// Loads the settings from the process environment and the `.env` file.
    pub fn load(env_file: &Path, overrides: &Overrides) -> anyhow::Result<Settings> {
        let file_pairs = crate::env_file::read(env_file)?;
        let environment = |name: &str| std::env::var(name).ok();
        Settings::resolve(env_file, &file_pairs, environment, overrides)
    }

    /// Resolves every key from the given sources; the environment is passed
    /// in so that tests do not depend on the real one.
    pub fn resolve(
        env_file: &Path,
        file_pairs: &[(String, String)],
        environment: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> anyhow::Result<Settings> {
        let file_values: HashMap<&str, &str> =
            file_pairs.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        let mut resolved = Vec::with_capacity(KEYS.len());
        for key in KEYS {
            let from_command_line = match key.name {
                "SESSIOND_DB" => overrides.db.as_ref().map(|path| path.display().to_string()),
                "SESSIOND_BIND" => overrides.bind.clone(),
                _ => None,
            };
            let (value, source) = if let Some(value) = from_command_line {
                (Some(value), Source::CommandLine)
            } else if let Some(value) = environment(key.name).filter(|value| {
                // An empty secret in the environment (as docker-compose passes
                // an unset `${VAR}`) does not hide the file's value.
                !(value.is_empty() && matches!(key.kind, Kind::Secret { .. }))
            }) {
                (Some(value), Source::Environment)
            } else if let Some(value) = file_values.get(key.name) {
                (Some((*value).to_owned()), Source::EnvFile(env_file.to_path_buf()))
            } else {
                match key.fallback {
                    Some(value) => (Some(value.to_owned()), Source::Fallback),
                    None => (None, Source::Database),
                }
            };
            // An empty secret counts as not configured.
            let (value, source) = match value {
                Some(empty) if empty.is_empty() && matches!(key.kind, Kind::Secret { .. }) => {
                    (None, Source::Database)
                }
                other => (other, source),
            };
            if let Some(value) = &value {
                validate(key, value).map_err(|error| anyhow::anyhow!("{error} (from {source})"))?;
            }
            resolved.push(Resolved { key, value, source });
        }
        Ok(Settings::from_resolved(resolved))
    }

    fn from_resolved(resolved: Vec<Resolved>) -> Settings {
        let text = |name: &str| -> Option<String> {
            resolved.iter().find(|r| r.key.name == name).and_then(|r| r.value.clone())
        };
        let required = |name: &str| text(name).expect("every key but the secrets has a fallback");
        let seconds = |name: &str| parse_seconds(&required(name)).expect("validated");
        let boolean = |name: &str| parse_bool(&required(name)).expect("validated");
        Settings {
            session_cookie_age: seconds("DJANGO_SESSION_COOKIE_AGE"),
            save_every_request: boolean("DJANGO_SESSION_SAVE_EVERY_REQUEST"),
            expire_at_browser_close: boolean("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE"),
            cookie_secure: boolean("DJANGO_SESSION_COOKIE_SECURE"),
            cookie_name: required("DJANGO_SESSION_COOKIE_NAME"),
            secret_key: text("DJANGO_SECRET_KEY"),
            jwt_secret_key: text("DJANGO_JWT_SECRET_KEY"),
            csrf_trusted_origins: required("DJANGO_CSRF_TRUSTED_ORIGINS")
                .split_ascii_whitespace()
                .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            session_absolute_age: seconds("SESSIOND_SESSION_ABSOLUTE_AGE"),
            jwt_lifetime: seconds("SESSIOND_JWT_LIFETIME"),
            bind: required("SESSIOND_BIND").parse().expect("validated"),
            db: PathBuf::from(required("SESSIOND_DB")),
            postgres: PostgresUrl::parse(&required("SESSIOND_DB")).expect("validated"),
            trust_proxy_headers: boolean("SESSIOND_TRUST_PROXY_HEADERS"),
            request_timeout: seconds("SESSIOND_REQUEST_TIMEOUT"),
            metrics_bind: parse_optional_socket_addr(&required("SESSIOND_METRICS_BIND"))
                .expect("validated"),
            access_log: boolean("SESSIOND_ACCESS_LOG"),
            max_connections_per_client: parse_count(&required(
                "SESSIOND_MAX_CONNECTIONS_PER_CLIENT",
            ))
            .expect("validated"),
            cookie_domain: parse_cookie_domain(&required("DJANGO_SESSION_COOKIE_DOMAIN"))
                .expect("validated"),
            public_url: parse_public_url(&required("SESSIOND_PUBLIC_URL")).expect("validated"),
            access_default: crate::access_rules::Policy::parse(&required(
                "SESSIOND_ACCESS_DEFAULT",
            ))
            .expect("validated"),
            resolved,
        }
    }
}

impl Settings {
    /// The database as messages name it: the file's path, or the
    /// PostgreSQL URL with its password masked.
    pub fn db_shown(&self) -> String {
        match &self.postgres {
            Some(url) => url.masked.clone(),
            None => self.db.display().to_string(),
        }
    }
}

/// A PostgreSQL URL (`postgres://` or `postgresql://`), parsed: where it
/// points and the URL with its password masked. It keeps no password, so
/// it can be shown and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The host name or address, or the socket folder of a server on this
    /// machine (`/run/postgresql`).
    pub host: String,
    pub port: u16,
    /// The database name; empty means libpq's default (the user's name).
    pub database: String,
    /// The URL as `config` shows it: the password (in the user part or a
    /// `password=` parameter) replaced by `********`.
    pub masked: String,
}

impl PostgresUrl {
    /// `Ok(None)` when `text` is not a PostgreSQL URL (a file path), `Err`
    /// with the reason (never the text) when it is one that does not parse.
    pub fn parse(text: &str) -> Result<Option<PostgresUrl>, String> {
        let Some((scheme, _)) = text.split_once("://") else {
            return Ok(None);
        };
        if !(scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")) {
            return Ok(None);
        }
        let expected = "expected `postgres://USER:PASSWORD@HOST:PORT/DATABASE`";
        let url = url::Url::parse(text).map_err(|error| format!("{error}; {expected}"))?;
        if url.cannot_be_a_base() || url.fragment().is_some() {
            return Err(expected.to_owned());
        }
        // The host as the driver reads it: percent-decoded (a socket
        // folder, `%2Frun%2Fpostgresql`), or the `host` and `port`
        // parameters when the URL has no host of its own.
        let parameter = |wanted: &str| {
            url.query_pairs().find(|(name, _)| name == wanted).map(|(_, value)| value.into_owned())
        };
        let host = match url.host_str().filter(|host| !host.is_empty()) {
            Some(host) => percent_decoded(host).ok_or("the host is not UTF-8")?,
            None => parameter("host").unwrap_or_else(|| String::from("localhost")),
        };
        let port = match (url.port(), parameter("port")) {
            (Some(port), _) => port,
            (None, Some(port)) => port.parse().map_err(|_| format!("invalid port; {expected}"))?,
            (None, None) => 5432,
        };
        let database = url.path().strip_prefix('/').unwrap_or(url.path());
        let database = percent_decoded(database).ok_or("the database name is not UTF-8")?;
        if database.contains('/') {
            return Err(format!("the database name may not contain `/`; {expected}"));
        }
        let mut masked = format!("{}://", url.scheme());
        if !url.username().is_empty() {
            masked.push_str(url.username());
            if url.password().is_some() {
                masked.push_str(":********");
            }
            masked.push('@');
        }
        masked.push_str(url.host_str().unwrap_or(""));
        if let Some(port) = url.port() {
            masked.push_str(&format!(":{port}"));
        }
        masked.push_str(url.path());
        if url.query().is_some() {
            let pairs = url.query_pairs().map(|(name, value)| {
                let value = if name.eq_ignore_ascii_case("password") {
                    std::borrow::Cow::Borrowed("********")
                } else {
                    value
                };
                (name, value)
            });
            let query =
                form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            masked.push('?');
            masked.push_str(&query);
        }
        Ok(Some(PostgresUrl { host, port, database, masked }))
    }
}

fn percent_decoded(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text).decode_utf8().ok().map(|text| text.into_owned())
}

/// Checks a value for a key; the error names the key, and the value unless
/// it is a secret.
pub fn validate(key: &Key, value: &str) -> Result<(), String> {
    let refuse = |expected: &str| {
        Err(format!("invalid value `{value}` for `{}`: expected {expected}", key.name))
    };
    match key.kind {
        Kind::Seconds => match parse_seconds(value) {
            Some(seconds) if seconds > 0 => Ok(()),
            _ => refuse("whole seconds greater than 0 (at most 100 years)"),
        },
        Kind::SecondsOrZero => match parse_seconds(value) {
            Some(_) => Ok(()),
            None => refuse("whole seconds, or 0 for none (at most 100 years)"),
        },
        Kind::Bool => match parse_bool(value) {
            Some(_) => Ok(()),
            None => refuse("true/false, 1/0, yes/no, on/off or y/n"),
        },
        Kind::CookieName => {
            let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if !value.is_empty() && value.len() <= 64 && value.chars().all(token_char) {
                Ok(())
            } else {
                refuse("a cookie name: 1 to 64 letters, digits or ``!#$%&'*+-.^_`|~``")
            }
        }
        Kind::Secret { min_bytes } => {
            if value.len() >= min_bytes {
                Ok(())
            } else {
                Err(format!("invalid value for `{}`: must be at least {min_bytes} bytes", key.name))
            }
        }
        Kind::Origins => {
            for origin in value.split_ascii_whitespace() {
                if !is_origin(origin) {
                    return Err(format!(
                        "invalid value `{value}` for `{}`: `{origin}` is not an origin like `https://example.com`",
                        key.name
                    ));
                }
            }
            Ok(())
        }
        Kind::SocketAddr => match value.parse::<SocketAddr>() {
            Ok(_) => Ok(()),
            Err(_) => refuse("an address and port like `127.0.0.1:8000`"),
        },
        Kind::Database => match PostgresUrl::parse(value) {
            // Never echoed: a PostgreSQL URL may hold a password.
            Err(reason) => Err(format!("invalid PostgreSQL URL in `{}`: {reason}", key.name)),
            Ok(Some(_)) => Ok(()),
            Ok(None) if value.is_empty() => refuse("a file path or a `postgres://` URL"),
            Ok(None) => Ok(()),
        },
        Kind::OptionalSocketAddr => match parse_optional_socket_addr(value) {
            Some(_) => Ok(()),
            None => refuse("an address and port like `127.0.0.1:9100`, or empty for none"),
        },
        Kind::Count { max } => match parse_count(value) {
            Some(count) if (1..=max).contains(&count) => Ok(()),
            _ => refuse(&format!("a whole number from 1 to {max}")),
        },
        Kind::CookieDomain => match parse_cookie_domain(value) {
            Ok(_) => Ok(()),
            Err(why) => {
                refuse(&format!("a domain like `example.com` without scheme, port or path ({why})"))
            }
        },
        Kind::PublicUrl => match parse_public_url(value) {
            Ok(_) => Ok(()),
            Err(why) => refuse(&format!(
                "an absolute http(s) URL without query like `https://auth.example.com` ({why})"
            )),
        },
        Kind::Policy => match crate::access_rules::Policy::parse(value) {
            Some(_) => Ok(()),
            None => refuse("one of `bypass`, `deny`, `user`, `manager`, `admin`"),
        },
    }
}

/// Parses a count: digits only, no sign.
pub fn parse_count(value: &str) -> Option<usize> {
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `SESSIOND_PUBLIC_URL`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// The URL without a trailing `/`, e.g. `https://auth.example.com`; the
    /// login page is this plus `/login`.
    pub base: String,
    pub https: bool,
    /// The host in lowercase, without port.
    pub host: String,
}

/// Parses a cookie domain; empty is none. A leading `.` is dropped, as
/// browsers do.
pub fn parse_cookie_domain(value: &str) -> Result<Option<String>, &'static str> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.contains("://") {
        return Err("it has a scheme");
    }
    let domain = value.strip_prefix('.').unwrap_or(value).to_ascii_lowercase();
    crate::access_rules::check_host_name(&domain)?;
    Ok(Some(domain))
}

/// Parses the public URL; empty is none.
pub fn parse_public_url(value: &str) -> Result<Option<PublicUrl>, &'static str> {
    if value.is_empty() {
        return Ok(None);
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err("it is not absolute");
    };
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err("the scheme is not `http` or `https`"),
    };
    if rest.contains(['?', '#']) {
        return Err("it has a query or fragment");
    }
    if rest.contains(['@', '\\']) || !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("it has userinfo, a backslash, a space or a non-ASCII character");
    }
    let (authority, path) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    let host = crate::access_rules::normalize_host(authority).ok_or("the host is not valid")?;
    let base =
        format!("{}://{authority}{}", scheme.to_ascii_lowercase(), path.trim_end_matches('/'));
    Ok(Some(PublicUrl { base, https, host }))
}

/// Parses whole seconds: digits only, no sign, no unit.
pub fn parse_seconds(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Beyond a century of seconds the value is surely a mistake, and keeping
    // it small keeps `now + age` far from overflow.
    value.parse::<i64>().ok().filter(|seconds| *seconds <= 100 * 365 * 24 * 3600)
}

/// Parses an optional listen address: `Some(None)` for an empty value,
/// `None` when it is not an address and port.
pub fn parse_optional_socket_addr(value: &str) -> Option<Option<SocketAddr>> {
    if value.trim().is_empty() {
        return Some(None);
    }
    value.parse::<SocketAddr>().ok().map(Some)
}

/// Parses a boolean in any of the accepted spellings, in any case.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "n" => Some(false),
        _ => None,
    }
}

/// True for `scheme://host[:port]` with nothing after it.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let host_ok = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    matches!(scheme, "http" | "https") && !rest.is_empty() && rest.chars().all(host_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(file: &[(&str, &str)], env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let file: Vec<(String, String)> =
            file.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env: HashMap<String, String> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::resolve(Path::new(".env"), &file, |k| env.get(k).cloned(), &Overrides::default())
    }

    #[test]
    fn fallbacks_are_the_documented_values() {
        let settings = resolve(&[], &[]).unwrap();
        assert_eq!(settings.session_cookie_age, 7200);
        assert!(settings.save_every_request);
        assert!(settings.expire_at_browser_close);
        assert!(!settings.cookie_secure);
        assert_eq!(settings.cookie_name, "sessionid");
        assert_eq!(settings.session_absolute_age, 2_592_000);
        assert_eq!(settings.jwt_lifetime, 900);
        assert_eq!(settings.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(settings.db, PathBuf::from("data/sessiond.sqlite3"));
        assert!(settings.jwt_secret_key.is_none());
        assert_eq!(settings.request_timeout, 10);
        assert_eq!(settings.metrics_bind, None);
        assert!(settings.access_log);
        assert_eq!(settings.max_connections_per_client, 128);
    }

    #[test]
    fn metrics_bind_is_an_address_or_empty() {
        let settings = resolve(&[("SESSIOND_METRICS_BIND", "127.0.0.1:9100")], &[]).unwrap();
        assert_eq!(settings.metrics_bind, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(resolve(&[("SESSIOND_METRICS_BIND", "")], &[]).unwrap().metrics_bind, None);
        for bad in ["localhost:9100", "9100", "127.0.0.1", "127.0.0.1:99999"] {
            let error = resolve(&[("SESSIOND_METRICS_BIND", bad)], &[]).unwrap_err().to_string();
            assert!(error.contains("SESSIOND_METRICS_BIND") && error.contains(bad), "{error}");
        }
        let error = resolve(&[("SESSIOND_ACCESS_LOG", "loud")], &[]).unwrap_err().to_string();
        assert!(error.contains("SESSIOND_ACCESS_LOG") && error.contains("`loud`"), "{error}");
    }

    #[test]
    fn connections_per_client_is_a_count_up_to_the_cap() {
        let key = "SESSIOND_MAX_CONNECTIONS_PER_CLIENT";
        assert_eq!(resolve(&[(key, "256")], &[]).unwrap().max_connections_per_client, 256);
        for bad in ["0", "257", "-1", "+5", "12x", "", "99999999999"] {
            let error = resolve(&[(key, bad)], &[]).unwrap_err().to_string();
            assert!(error.contains(&format!("`{key}`")), "{bad:?}: {error}");
            assert!(error.contains("a whole number from 1 to 256"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn forward_auth_settings_are_validated() {
        let settings = resolve(
            &[
                ("DJANGO_SESSION_COOKIE_DOMAIN", ".Example.com"),
                ("SESSIOND_PUBLIC_URL", "https://auth.example.com/"),
                ("SESSIOND_ACCESS_DEFAULT", "deny"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(settings.cookie_domain.as_deref(), Some("example.com"));
        let public = settings.public_url.unwrap();
        assert_eq!(public.base, "https://auth.example.com");
        assert_eq!(public.host, "auth.example.com");
        assert_eq!(settings.access_default, crate::access_rules::Policy::Deny);
        let fallback = resolve(&[], &[]).unwrap();
        assert_eq!(fallback.cookie_domain, None);
        assert_eq!(fallback.public_url, None);
        assert_eq!(fallback.access_default.as_str(), "user");
        for (key, bad) in [
            ("DJANGO_SESSION_COOKIE_DOMAIN", "https://example.com"),
            ("DJANGO_SESSION_COOKIE_DOMAIN", "example.com:443"),
            ("DJANGO_SESSION_COOKIE_DOMAIN", "example.com/x"),
            ("SESSIOND_PUBLIC_URL", "auth.example.com"),
            ("SESSIOND_PUBLIC_URL", "ftp://auth.example.com"),
            ("SESSIOND_PUBLIC_URL", "https://auth.example.com/?x=1"),
            ("SESSIOND_PUBLIC_URL", "https://user@auth.example.com"),
            ("SESSIOND_PUBLIC_URL", "/login"),
            ("SESSIOND_ACCESS_DEFAULT", "superhero"),
        ] {
            let error = resolve(&[(key, bad)], &[]).unwrap_err().to_string();
            assert!(error.contains(key) && error.contains(bad), "{error}");
        }
    }

    #[test]
    fn environment_wins_over_file() {
        let settings = resolve(
            &[("DJANGO_SESSION_COOKIE_AGE", "60"), ("SESSIOND_JWT_LIFETIME", "30")],
            &[("DJANGO_SESSION_COOKIE_AGE", "90")],
        )
        .unwrap();
        assert_eq!(settings.session_cookie_age, 90);
        assert_eq!(settings.jwt_lifetime, 30);
    }

    #[test]
    fn every_boolean_spelling_is_accepted() {
        for (text, expected) in
            [("TRUE", true), ("1", true), ("Yes", true), ("on", true), ("y", true)]
                .into_iter()
                .chain([
                    ("false", false),
                    ("0", false),
                    ("NO", false),
                    ("Off", false),
                    ("n", false),
                ])
        {
            assert_eq!(parse_bool(text), Some(expected), "{text}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let error = resolve(&[("DJANGO_SESSION_COOKIE_AGE", "-5")], &[]).unwrap_err().to_string();
        assert!(error.contains("DJANGO_SESSION_COOKIE_AGE") && error.contains("`-5`"), "{error}");
        assert!(resolve(&[("DJANGO_SESSION_COOKIE_AGE", "0")], &[]).is_err());
        assert!(resolve(&[("SESSIOND_SESSION_ABSOLUTE_AGE", "0")], &[]).is_ok());
        assert!(resolve(&[("DJANGO_SESSION_COOKIE_AGE", "1.5")], &[]).is_err());
        assert!(resolve(&[("DJANGO_SESSION_SAVE_EVERY_REQUEST", "maybe")], &[]).is_err());
        assert!(resolve(&[("DJANGO_CSRF_TRUSTED_ORIGINS", "example.com")], &[]).is_err());
    }

    #[test]
    fn an_empty_secret_in_the_environment_does_not_hide_the_files() {
        let secret = "a-jwt-secret-of-at-least-32-bytes-long";
        let settings =
            resolve(&[("DJANGO_JWT_SECRET_KEY", secret)], &[("DJANGO_JWT_SECRET_KEY", "")])
                .unwrap();
        assert_eq!(settings.jwt_secret_key.as_deref(), Some(secret));
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let error =
            resolve(&[("DJANGO_JWT_SECRET_KEY", "tooshort-secret")], &[]).unwrap_err().to_string();
        assert!(error.contains("DJANGO_JWT_SECRET_KEY"), "{error}");
        assert!(!error.contains("tooshort-secret"), "{error}");
    }
}
