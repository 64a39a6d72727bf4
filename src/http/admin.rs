//! The admin pages under `/admin/`, for staff and superusers: the counts and
//! the cleanup schedule, every web and JWT session (expired ones too), and
//! the actions that end them.
//!
//! Every handler starts with [`require_staff`]: an anonymous visitor is sent
//! to the sign-in page, a signed-in `user` gets 403. Lists page by keyset on
//! the row id (`before=`), never OFFSET. An action answers with a redirect
//! back to its list carrying `done=` and `count=`, which the page turns into
//! a fixed sentence (no text from the URL is ever shown). The router has
//! already refused cross-site POSTs. This module runs no SQL itself: the
//! session modules own their tables.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cleanup;
use crate::clock::UnixTime;
use crate::http::admin_access;
use crate::http::admin_views::{self, AdminCounts, ListPage, Notice};
use crate::http::pages;
use crate::http::reply::{HttpError, Reply};
use crate::http::request::{Method, Request};
use crate::http::server::Worker;
use crate::http::views;
use crate::http::web_auth::{self, WebAuth};
use crate::jwt_sessions;
use crate::schedule;
use crate::users::{self, User};
use crate::web_sessions::{self, KeyHash, Status};

/// Rows on one page of a list.
pub const PAGE_SIZE: usize = 50;

/// The most rows one action may name; a bigger form is refused.
const MAX_SELECTED: usize = 500;

/// Answers every request under `/admin/`.
pub fn route(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    use Method::{Get, Head, Post};
    match (request.method, request.path.as_str()) {
        (Get | Head, "/admin") => Ok(Reply::redirect("/admin/")),
        (Get | Head, "/admin/") => dashboard(worker, request),
        (Get | Head, "/admin/sessions/web") => web_list(worker, request),
        (Get | Head, "/admin/sessions/jwt") => jwt_list(worker, request),
        (Post, "/admin/sessions/web/delete") => web_delete(worker, request),
        (Post, "/admin/sessions/jwt/revoke") => jwt_revoke(worker, request),
        (Post, "/admin/sessions/jwt/delete") => jwt_delete(worker, request),
        (Post, "/admin/users/end-sessions") => end_user_sessions(worker, request),
        (Post, "/admin/cleanup") => clear_expired_now(worker, request),
        (Post, "/admin/schedule") => change_schedule(worker, request),
        (Get | Head, "/admin/access") => admin_access::list(worker, request),
        (Post, "/admin/access/add") => admin_access::add(worker, request),
        (Post, "/admin/access/remove") => admin_access::remove(worker, request),
        (_, "/admin/access") => Err(HttpError::MethodNotAllowed("GET, HEAD")),
        (_, "/admin/access/add" | "/admin/access/remove") => {
            Err(HttpError::MethodNotAllowed("POST"))
        }
        (_, "/admin" | "/admin/" | "/admin/sessions/web" | "/admin/sessions/jwt") => {
            Err(HttpError::MethodNotAllowed("GET, HEAD"))
        }
        (
            _,
            "/admin/sessions/web/delete"
            | "/admin/sessions/jwt/revoke"
            | "/admin/sessions/jwt/delete"
            | "/admin/users/end-sessions"
            | "/admin/cleanup"
            | "/admin/schedule",
        ) => Err(HttpError::MethodNotAllowed("POST")),
        _ => Err(HttpError::NotFound),
    }
}

/// `GET /admin/`: the counts, the schedule, its next run and the last runs.
fn dashboard(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let page = dashboard_page(worker, &admin, notice_from(request), None)?;
    Ok(pages::finish(worker, auth, Reply::html(200, page)))
}

/// `GET /admin/sessions/web`.
fn web_list(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let filters = Filters::from_query(request)?;
    let now = worker.app.clock.now();
    let user = filter_user(worker, &filters)?;
    let mut rows = match &user {
        FilterUser::Unknown => Vec::new(),
        FilterUser::All | FilterUser::One(_) => web_sessions::list(
            &worker.conn,
            &web_sessions::ListQuery {
                status: filters.status,
                user_id: user.id(),
                before: filters.before,
                limit: PAGE_SIZE + 1,
            },
            now,
        )?,
    };
    let next = page_end(&mut rows, |session| session.row_id);
    let current = auth.session.as_ref().map(|session| session.row_id);
    let page = admin_views::web_list(&ListPage {
        admin: &admin,
        filters: &filters,
        unknown_user: matches!(user, FilterUser::Unknown),
        next_before: next,
        notice: notice_from(request),
        now,
        current_web_row: current,
        web_rows: &rows,
        jwt_rows: &[],
    });
    Ok(pages::finish(worker, auth, Reply::html(200, page)))
}

/// `GET /admin/sessions/jwt`.
fn jwt_list(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let filters = Filters::from_query(request)?;
    let now = worker.app.clock.now();
    let user = filter_user(worker, &filters)?;
    let mut rows = match &user {
        FilterUser::Unknown => Vec::new(),
        FilterUser::All | FilterUser::One(_) => jwt_sessions::list(
            &worker.conn,
            &jwt_sessions::ListQuery {
                status: filters.status,
                user_id: user.id(),
                before: filters.before,
                limit: PAGE_SIZE + 1,
            },
            now,
        )?,
    };
    let next = page_end(&mut rows, |row| row.seq);
    let page = admin_views::jwt_list(&ListPage {
        admin: &admin,
        filters: &filters,
        unknown_user: matches!(user, FilterUser::Unknown),
        next_before: next,
        notice: notice_from(request),
        now,
        current_web_row: None,
        web_rows: &[],
        jwt_rows: &rows,
    });
    Ok(pages::finish(worker, auth, Reply::html(200, page)))
}

/// `POST /admin/sessions/web/delete`: deletes the row of the pressed button
/// (`one`), or every checked row (`id`).
fn web_delete(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, _admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let form = request.form();
    let mut hashes = Vec::new();
    for id in selected(&form)? {
        let hash = KeyHash::from_hex(id)
            .ok_or_else(|| HttpError::BadRequest(String::from("invalid web session id")))?;
        hashes.push(hash);
    }
    let tx = worker.conn.unchecked_transaction()?;
    let mut deleted = 0;
    for hash in &hashes {
        if web_sessions::delete(&tx, hash)? {
            deleted += 1;
        }
    }
    tx.commit()?;
    forget_counts(worker);
    let reply = back_to_list("/admin/sessions/web", &form, "deleted-web", deleted);
    // An admin who deleted their own session is signed out here and now.
    let own_gone = auth.session.as_ref().is_some_and(|session| hashes.contains(&session.key_hash));
    let auth = if own_gone { WebAuth::signed_out() } else { auth };
    Ok(pages::finish(worker, auth, reply))
}

/// `POST /admin/sessions/jwt/revoke`: revokes the pressed or checked rows;
/// a row revoked before keeps its first `revoked_at`.
fn jwt_revoke(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let form = request.form();
    let jtis = selected_jtis(&form)?;
    let now = worker.app.clock.now();
    let tx = worker.conn.unchecked_transaction()?;
    let mut revoked = 0;
    for jti in &jtis {
        if jwt_sessions::revoke(&tx, jti, now, Some(admin.id))? {
            revoked += 1;
        }
    }
    tx.commit()?;
    forget_counts(worker);
    Ok(pages::finish(
        worker,
        auth,
        back_to_list("/admin/sessions/jwt", &form, "revoked-jwt", revoked),
    ))
}

/// `POST /admin/sessions/jwt/delete`: deletes the pressed or checked rows.
fn jwt_delete(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, _admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let form = request.form();
    let jtis = selected_jtis(&form)?;
    let tx = worker.conn.unchecked_transaction()?;
    let mut deleted = 0;
    for jti in &jtis {
        if jwt_sessions::delete(&tx, jti)? {
            deleted += 1;
        }
    }
    tx.commit()?;
    forget_counts(worker);
    Ok(pages::finish(
        worker,
        auth,
        back_to_list("/admin/sessions/jwt", &form, "deleted-jwt", deleted),
    ))
}

/// `POST /admin/users/end-sessions`: deletes every web session and revokes
/// every JWT session of the user named in `username`.
fn end_user_sessions(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let form = request.form();
    let username = form.get("username").trim();
    let Some(user) = users::find_by_username(&worker.conn, username)? else {
        let text = format!("There is no user named `{username}`.");
        let page = views::message("No such user", Some(&admin), &text);
        return Ok(pages::finish(worker, auth, Reply::html(404, page)));
    };
    // `accounts` runs the change in one transaction on a connection of its
    // own; the worker's connection is shared and cannot be borrowed mutably.
    let mut conn = crate::db::connect(&worker.app.settings.db)?;
    let now = worker.app.clock.now();
    let ended = crate::accounts::end_all_sessions(&mut conn, user.id, now, Some(admin.id))?;
    forget_counts(worker);
    let back = match form.get("back") {
        "jwt" => "/admin/sessions/jwt",
        "dashboard" => "/admin/",
        _ => "/admin/sessions/web",
    };
    let reply = back_to_list(back, &form, "ended-user", ended.web + ended.jwt);
    let own_gone = auth.session.as_ref().is_some_and(|session| session.user.id == user.id);
    let auth = if own_gone { WebAuth::signed_out() } else { auth };
    Ok(pages::finish(worker, auth, reply))
}

/// `POST /admin/cleanup`: "Clear expired sessions now".
fn clear_expired_now(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, _admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let mut conn = crate::db::connect(&worker.app.settings.db)?;
    let now = worker.app.clock.now();
    let run = cleanup::clear_expired(&mut conn, now, cleanup::Trigger::Admin)?;
    forget_counts(worker);
    let location = format!(
        "/admin/?done=cleared&count={}&web={}&jwt={}",
        run.web_deleted + run.jwt_deleted,
        run.web_deleted,
        run.jwt_deleted
    );
    Ok(pages::finish(worker, auth, Reply::redirect(&location)))
}

/// `POST /admin/schedule`: sets the cron expression (`cron`), or turns the
/// schedule off (`action=off`).
fn change_schedule(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, admin) = match require_staff(worker, request)? {
        Ok(staff) => staff,
        Err(refused) => return Ok(refused),
    };
    let form = request.form();
    let new_schedule = if form.get("action") == "off" {
        schedule::Schedule::Off
    } else {
        match schedule::parse(form.get("cron").trim()) {
            Ok(parsed) => parsed,
            Err(reason) => {
                let error = format!("The schedule was not changed: {reason}");
                let page = dashboard_page(worker, &admin, None, Some(&error))?;
                return Ok(pages::finish(worker, auth, Reply::html(400, page)));
            }
        }
    };
    schedule::store(&worker.conn, &new_schedule)?;
    let done =
        if new_schedule == schedule::Schedule::Off { "schedule-off" } else { "schedule-set" };
    Ok(pages::finish(worker, auth, Reply::redirect(&format!("/admin/?done={done}"))))
}

// ---------------------------------------------------------------------------
// Helpers, in the order the handlers use them.

/// Lets staff and superusers through (`Ok` with their session and user);
/// for anyone else the inner `Err` is the reply: a redirect to sign in for
/// anonymous visitors, 403 for a signed-in `user`.
pub(crate) fn require_staff(
    worker: &Worker,
    request: &Request,
) -> Result<Result<(WebAuth, User), Reply>, HttpError> {
    let auth = web_auth::authenticate(worker, request)?;
    let Some(session) = &auth.session else {
        // After signing in, a refused POST's page is the one to return to.
        let reply = if request.method == Method::Post {
            Reply::redirect("/login?next=%2Fadmin%2F")
        } else {
            pages::redirect_to_login(request)
        };
        return Ok(Err(pages::finish(worker, auth, reply)));
    };
    let user = session.user.clone();
    if !user.is_staff() {
        let page = views::message(
            "Forbidden",
            Some(&user),
            "Only staff and superusers may use the admin pages.",
        );
        return Ok(Err(pages::finish(worker, auth, Reply::html(403, page))));
    }
    Ok(Ok((auth, user)))
}

/// The filters of a list page, from its query string.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub status: Option<Status>,
    /// The username asked for, as typed ("" for everyone).
    pub user: String,
    pub before: Option<i64>,
}

impl Filters {
    fn from_query(request: &Request) -> Result<Filters, HttpError> {
        let status = match request.query_param("status").as_deref().unwrap_or("") {
            "" | "all" => None,
            text => Some(Status::parse(text).ok_or_else(|| {
                HttpError::BadRequest(String::from(
                    "`status` must be `active`, `expired` or `revoked`",
                ))
            })?),
        };
        let user = request.query_param("user").unwrap_or_default().trim().to_owned();
        if user.len() > 150 {
            return Err(HttpError::BadRequest(String::from("`user` is too long")));
        }
        let before = match request.query_param("before").as_deref().unwrap_or("") {
            "" => None,
            text => Some(text.parse::<i64>().map_err(|_| {
                HttpError::BadRequest(String::from("`before` must be a row number"))
            })?),
        };
        Ok(Filters { status, user, before })
    }

    /// The query string of these filters with another `before`, for links.
    pub fn query_with_before(&self, before: Option<i64>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(status) = self.status {
            query.append_pair("status", status.as_str());
        }
        if !self.user.is_empty() {
            query.append_pair("user", &self.user);
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        query.finish()
    }
}

/// The user a list is filtered by.
enum FilterUser {
    All,
    One(User),
    Unknown,
}

impl FilterUser {
    fn id(&self) -> Option<i64> {
        match self {
            FilterUser::One(user) => Some(user.id),
            FilterUser::All | FilterUser::Unknown => None,
        }
    }
}

fn filter_user(worker: &Worker, filters: &Filters) -> Result<FilterUser, HttpError> {
    if filters.user.is_empty() {
        return Ok(FilterUser::All);
    }
    Ok(match users::find_by_username(&worker.conn, &filters.user)? {
        Some(user) => FilterUser::One(user),
        None => FilterUser::Unknown,
    })
}

/// Cuts a list fetched with one row too many down to a page; returns the
/// `before` of the next page when there is one.
fn page_end<T>(rows: &mut Vec<T>, id: impl Fn(&T) -> i64) -> Option<i64> {
    if rows.len() <= PAGE_SIZE {
        return None;
    }
    rows.truncate(PAGE_SIZE);
    rows.last().map(id)
}

/// The ids an action applies to: the row whose button was pressed (`one`),
/// else every checked row (`id`). None selected is an empty list.
fn selected(form: &crate::http::request::Form) -> Result<Vec<&str>, HttpError> {
    let one = form.get("one");
    let ids: Vec<&str> = if one.is_empty() { form.get_all("id").collect() } else { vec![one] };
    if ids.len() > MAX_SELECTED {
        return Err(HttpError::BadRequest(format!("at most {MAX_SELECTED} sessions at once")));
    }
    Ok(ids)
}

/// The selected JWT ids, each checked to look like a jti.
fn selected_jtis(form: &crate::http::request::Form) -> Result<Vec<String>, HttpError> {
    selected(form)?
        .into_iter()
        .map(|jti| {
            let plausible = !jti.is_empty()
                && jti.len() <= 64
                && jti.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if plausible {
                Ok(jti.to_owned())
            } else {
                Err(HttpError::BadRequest(String::from("invalid JWT session id")))
            }
        })
        .collect()
}

/// The redirect after an action: back to the list with its filters, and
/// what was done.
fn back_to_list(path: &str, form: &crate::http::request::Form, done: &str, count: usize) -> Reply {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("done", done).append_pair("count", &count.to_string());
    if let Some(status) = Status::parse(form.get("status")) {
        query.append_pair("status", status.as_str());
    }
    let user = form.get("user");
    if !user.is_empty() && user.len() <= 150 {
        query.append_pair("user", user);
    }
    Reply::redirect(&format!("{path}?{}", query.finish()))
}

/// The notice an action's redirect asked for, if any.
fn notice_from(request: &Request) -> Option<Notice> {
    let done = request.query_param("done")?;
    let number = |name: &str| {
        request.query_param(name).and_then(|text| text.parse::<usize>().ok()).unwrap_or(0)
    };
    let count = number("count");
    Some(match done.as_str() {
        "deleted-web" => Notice::DeletedWeb(count),
        "revoked-jwt" => Notice::RevokedJwt(count),
        "deleted-jwt" => Notice::DeletedJwt(count),
        "ended-user" => Notice::EndedUser(count),
        "cleared" => Notice::Cleared { web: number("web"), jwt: number("jwt") },
        "schedule-set" => Notice::ScheduleSet,
        "schedule-off" => Notice::ScheduleOff,
        _ => return None,
    })
}

/// The dashboard's markup, with a notice or an error.
fn dashboard_page(
    worker: &Worker,
    admin: &User,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Result<maud::Markup, HttpError> {
    let now = worker.app.clock.now();
    let counts = cached_counts(worker, now)?;
    let current = schedule::load(&worker.conn)?;
    let next_run = schedule::next_run(&current, now);
    let runs = cleanup::recent_runs(&worker.conn, 10)?;
    Ok(admin_views::dashboard(&admin_views::Dashboard {
        admin,
        counts,
        schedule: &current,
        next_run,
        runs: &runs,
        notice,
        error,
        now,
    }))
}

// ---------------------------------------------------------------------------
// The counts cache.
//
// Counting reads indexes only (see `web_sessions::counts`), but with a
// million rows that is still some milliseconds, so the counts are kept for
// a few seconds in the app, shared by the workers. An admin action
// forgets them at once, so what an admin did shows on the next view; logins
// and expiries elsewhere show within `COUNTS_TTL`. Moving the clock (tests)
// by more than that also forgets them.

/// How long counts are reused.
const COUNTS_TTL: Duration = Duration::from_secs(5);

/// The last counts taken, kept in `App` and shared by the workers.
#[derive(Default)]
pub struct CountsCache(Mutex<Option<CachedCounts>>);

struct CachedCounts {
    taken: Instant,
    now: UnixTime,
    counts: AdminCounts,
}

fn cached_counts(worker: &Worker, now: UnixTime) -> Result<AdminCounts, HttpError> {
    let cache = &worker.app.admin_counts.0;
    if let Ok(cached) = cache.lock()
        && let Some(cached) = cached.as_ref()
        && cached.taken.elapsed() < COUNTS_TTL
        && (0..COUNTS_TTL.as_secs() as i64).contains(&(now - cached.now))
    {
        return Ok(cached.counts);
    }
    let counts = AdminCounts {
        web: web_sessions::counts(&worker.conn, now)?,
        jwt: jwt_sessions::counts(&worker.conn, now)?,
    };
    if let Ok(mut cached) = cache.lock() {
        *cached = Some(CachedCounts { taken: Instant::now(), now, counts });
    }
    Ok(counts)
}

fn forget_counts(worker: &Worker) {
    if let Ok(mut cached) = worker.app.admin_counts.0.lock() {
        *cached = None;
    }
}
