//! What the lists of both kinds of session share: a row's [`Status`], the
//! [`ListQuery`] of a page.
//!
//! The SQL itself stays with the module that owns each table
//! (`web_sessions::list`, `jwt_sessions::list`): the two tables and their
//! indexes differ. What is shared is only the shape of a page; each
//! statement numbers its own `$N` in the order they appear.

use crate::clock::UnixTime;

/// What a session looks like from outside: `revoked` (JWTs only), else
/// `expired` once its expiry has passed (`<= now`), else `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Expired,
    Revoked,
}

impl Status {
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "active" => Some(Status::Active),
            "expired" => Some(Status::Expired),
            "revoked" => Some(Status::Revoked),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }

    /// The status of a row with this expiry and revocation time at `now`.
    pub fn of(expiry: UnixTime, revoked_at: Option<UnixTime>, now: UnixTime) -> Status {
        if revoked_at.is_some() {
            Status::Revoked
        } else if expiry <= now {
            Status::Expired
        } else {
            Status::Active
        }
    }
}

/// Which rows a list asks for: newest first, below `before` (the last row
/// id of the previous page, for keyset paging), at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub user_id: Option<i64>,
    /// Only rows with a smaller id (the last id of the previous page).
    pub before: Option<i64>,
    pub limit: usize,
}
