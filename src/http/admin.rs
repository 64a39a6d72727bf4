//! The admin pages under `/admin/`, for staff and superusers: the counts and
//! the cleanup schedule, every web and JWT session (expired ones too), and
//! the actions that end them.
//!
//! Every handler starts with `ctx.require_staff()?`: an anonymous visitor is
//! sent to the sign-in page, a signed-in `user` gets 403. Lists page by keyset on
//! the row id (`before=`), never OFFSET. An action answers with a redirect
//! back to its list carrying `done=` and `count=`, which the page turns into
//! a fixed sentence (no text from the URL is ever shown). The router has
//! already refused cross-site POSTs. This module runs no SQL itself: the
//! session modules own their tables.

use crate::cleanup;
use crate::http::admin_access;
use crate::http::admin_views::{self, Filters, ListPage, Notice, PAGE_SIZE};
use crate::http::context::{Ctx, superusers_only};
use crate::http::reply::{HttpError, Reply};
use crate::http::request::{Form, Method};
use crate::http::views;
use crate::jwt_sessions;
use crate::listing::{ListQuery, Status};
use crate::schedule;
use crate::users::{self, User};
use crate::web_sessions::{self, KeyHash};

/// The most rows one action may name; a bigger form is refused.
const MAX_SELECTED: usize = 500;

/// Answers every request under `/admin/`.
pub fn route(ctx: &Ctx) -> Result<Reply, HttpError> {
    use Method::{Get, Head, Post};
    match (ctx.request.method, ctx.request.path.as_str()) {
        (Get | Head, "/admin") => Ok(Reply::redirect("/admin/")),
        (Get | Head, "/admin/") => dashboard(ctx),
        (Get | Head, "/admin/sessions/web") => web_list(ctx),
        (Get | Head, "/admin/sessions/jwt") => jwt_list(ctx),
        (Post, "/admin/sessions/web/delete") => web_delete(ctx),
        (Post, "/admin/sessions/jwt/revoke") => jwt_revoke(ctx),
        (Post, "/admin/sessions/jwt/delete") => jwt_delete(ctx),
        (Post, "/admin/users/end-sessions") => end_user_sessions(ctx),
        (Post, "/admin/cleanup") => clear_expired_now(ctx),
        (Post, "/admin/schedule") => change_schedule(ctx),
        (Get | Head, "/admin/access") => admin_access::list(ctx),
        (Post, "/admin/access/add") => admin_access::add(ctx),
        (Post, "/admin/access/remove") => admin_access::remove(ctx),
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
fn dashboard(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_staff()?;
    let page = dashboard_page(ctx, &staff.user, notice_from(ctx), None)?;
    Ok(Reply::html(200, page))
}

/// `GET /admin/sessions/web`.
fn web_list(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_staff()?;
    let filters = filters_from_query(ctx)?;
    let user = filter_user(ctx, &filters)?;
    let mut rows = match &user {
        FilterUser::Unknown => Vec::new(),
        FilterUser::All | FilterUser::One(_) => web_sessions::list(
            ctx.conn,
            &ListQuery {
                status: filters.status,
                user_id: user.id(),
                before: filters.before,
                limit: PAGE_SIZE + 1,
            },
            ctx.now,
        )?,
    };
    let next = page_end(&mut rows, |session| session.row_id);
    let page = admin_views::web_list(&ListPage {
        admin: &staff.user,
        filters: &filters,
        unknown_user: matches!(user, FilterUser::Unknown),
        next_before: next,
        notice: notice_from(ctx),
        now: ctx.now,
        current_web_row: Some(staff.row_id),
        rows: &rows,
    });
    Ok(Reply::html(200, page))
}

/// `GET /admin/sessions/jwt`.
fn jwt_list(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_staff()?;
    let filters = filters_from_query(ctx)?;
    let user = filter_user(ctx, &filters)?;
    let mut rows = match &user {
        FilterUser::Unknown => Vec::new(),
        FilterUser::All | FilterUser::One(_) => jwt_sessions::list(
            ctx.conn,
            &ListQuery {
                status: filters.status,
                user_id: user.id(),
                before: filters.before,
                limit: PAGE_SIZE + 1,
            },
            ctx.now,
        )?,
    };
    let next = page_end(&mut rows, |row| row.seq);
    let page = admin_views::jwt_list(&ListPage {
        admin: &staff.user,
        filters: &filters,
        unknown_user: matches!(user, FilterUser::Unknown),
        next_before: next,
        notice: notice_from(ctx),
        now: ctx.now,
        current_web_row: None,
        rows: &rows,
    });
    Ok(Reply::html(200, page))
}

/// `POST /admin/sessions/web/delete`: deletes the row of the pressed button
/// (`one`), or every checked row (`id`).
fn web_delete(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_staff()?;
    let form = ctx.request.form();
    let mut hashes = Vec::new();
    for id in selected(&form)? {
        let hash = KeyHash::from_hex(id)
            .ok_or_else(|| HttpError::BadRequest(String::from("invalid web session id")))?;
        hashes.push(hash);
    }
    // Read before the write lock: finding rows by hash reads the table.
    let sessions = web_sessions::find_by_hashes(ctx.conn, &hashes)?;
    let tx = crate::db::durable_transaction(ctx.conn)?;
    for session in &sessions {
        // Checked in the transaction that deletes: nothing goes unless all may.
        if let Some(owner) = web_sessions::owner_role(&tx, session)?
            && !staff.user.may_end_sessions_of(owner)
        {
            return Err(superusers_only(&staff.user));
        }
    }
    let mut deleted = 0;
    for session in &sessions {
        if web_sessions::delete(&tx, session)? {
            deleted += 1;
        }
    }
    tx.commit()?;
    forget_counts(ctx);
    // An admin who deleted their own session is signed out here and now.
    if hashes.contains(&staff.key_hash) {
        ctx.signed_out();
    }
    Ok(back_to_list("/admin/sessions/web", &form, "deleted-web", deleted))
}

/// `POST /admin/sessions/jwt/revoke`: revokes the pressed or checked rows;
/// a row revoked before keeps its first `revoked_at`.
fn jwt_revoke(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_staff()?;
    let form = ctx.request.form();
    let jtis = selected_jtis(&form)?;
    let tx = crate::db::durable_transaction(ctx.conn)?;
    refuse_superusers_jwts(&tx, &staff.user, &jtis)?;
    let mut revoked = 0;
    for jti in &jtis {
        if jwt_sessions::revoke(&tx, jti, ctx.now, Some(staff.user.id))? {
            revoked += 1;
        }
    }
    tx.commit()?;
    forget_counts(ctx);
    Ok(back_to_list("/admin/sessions/jwt", &form, "revoked-jwt", revoked))
}

/// `POST /admin/sessions/jwt/delete`: deletes the pressed or checked rows.
fn jwt_delete(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_staff()?;
    let form = ctx.request.form();
    let jtis = selected_jtis(&form)?;
    let tx = crate::db::durable_transaction(ctx.conn)?;
    refuse_superusers_jwts(&tx, &staff.user, &jtis)?;
    let mut deleted = 0;
    for jti in &jtis {
        if jwt_sessions::delete(&tx, jti)? {
            deleted += 1;
        }
    }
    tx.commit()?;
    forget_counts(ctx);
    Ok(back_to_list("/admin/sessions/jwt", &form, "deleted-jwt", deleted))
}

/// `POST /admin/users/end-sessions`: deletes every web session and revokes
/// every JWT session of the user named in `username`.
fn end_user_sessions(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_staff()?;
    let form = ctx.request.form();
    let username = form.get("username").trim();
    let Some(user) = users::find_by_username(ctx.conn, username)? else {
        let text = format!("There is no user named `{username}`.");
        let page = views::message("No such user", Some(&staff.user), &text);
        return Ok(Reply::html(404, page));
    };
    if !staff.user.may_end_sessions_of(user.role) {
        return Err(superusers_only(&staff.user));
    }
    let ended = crate::accounts::end_all_sessions(ctx.conn, user.id, ctx.now, Some(staff.user.id))?;
    forget_counts(ctx);
    if staff.user.id == user.id {
        ctx.signed_out();
    }
    let back = match form.get("back") {
        "jwt" => "/admin/sessions/jwt",
        "dashboard" => "/admin/",
        _ => "/admin/sessions/web",
    };
    Ok(back_to_list(back, &form, "ended-user", ended.web + ended.jwt))
}

/// `POST /admin/cleanup`: "Clear expired sessions now".
fn clear_expired_now(ctx: &Ctx) -> Result<Reply, HttpError> {
    ctx.require_staff()?;
    // The cleanup runs on a connection of its own, with its own pragmas.
    let mut conn = crate::db::connect(&ctx.app.settings.db)?;
    let run = cleanup::clear_expired(&mut conn, ctx.now, cleanup::Trigger::Admin);
    let deleted = run.as_ref().ok().map(|run| (run.web_deleted, run.jwt_deleted));
    ctx.app.metrics.record_cleanup(crate::metrics::CleanupTrigger::Admin, deleted);
    let run = run?;
    forget_counts(ctx);
    let location = format!(
        "/admin/?done=cleared&count={}&web={}&jwt={}",
        run.web_deleted + run.jwt_deleted,
        run.web_deleted,
        run.jwt_deleted
    );
    Ok(Reply::redirect(&location))
}

/// `POST /admin/schedule`: sets the cron expression (`cron`), or turns the
/// schedule off (`action=off`).
fn change_schedule(ctx: &Ctx) -> Result<Reply, HttpError> {
    let staff = ctx.require_superuser()?;
    let form = ctx.request.form();
    let new_schedule = if form.get("action") == "off" {
        schedule::Schedule::Off
    } else {
        match schedule::parse(form.get("cron").trim()) {
            Ok(parsed) => parsed,
            Err(reason) => {
                let error = format!("The schedule was not changed: {reason}");
                let page = dashboard_page(ctx, &staff.user, None, Some(&error))?;
                return Ok(Reply::html(400, page));
            }
        }
    };
    schedule::store(ctx.conn, &new_schedule)?;
    let done =
        if new_schedule == schedule::Schedule::Off { "schedule-off" } else { "schedule-set" };
    Ok(Reply::redirect(&format!("/admin/?done={done}")))
}

// ---------------------------------------------------------------------------
// Helpers, in the order the handlers use them.

/// The filters of a list page, from its query string.
fn filters_from_query(ctx: &Ctx) -> Result<Filters, HttpError> {
    let request = ctx.request;
    let status = match request.query_param("status").as_deref().unwrap_or("") {
        "" | "all" => None,
        text => Some(Status::parse(text).ok_or_else(|| {
            HttpError::BadRequest(String::from("`status` must be `active`, `expired` or `revoked`"))
        })?),
    };
    let user = request.query_param("user").unwrap_or_default().trim().to_owned();
    if user.len() > 150 {
        return Err(HttpError::BadRequest(String::from("`user` is too long")));
    }
    let before =
        match request.query_param("before").as_deref().unwrap_or("") {
            "" => None,
            text => Some(text.parse::<i64>().map_err(|_| {
                HttpError::BadRequest(String::from("`before` must be a row number"))
            })?),
        };
    Ok(Filters { status, user, before })
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

fn filter_user(ctx: &Ctx, filters: &Filters) -> Result<FilterUser, HttpError> {
    if filters.user.is_empty() {
        return Ok(FilterUser::All);
    }
    Ok(match users::find_by_username(ctx.conn, &filters.user)? {
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
fn selected(form: &Form) -> Result<Vec<&str>, HttpError> {
    let one = form.get("one");
    let ids: Vec<&str> = if one.is_empty() { form.get_all("id").collect() } else { vec![one] };
    if ids.len() > MAX_SELECTED {
        return Err(HttpError::BadRequest(format!("at most {MAX_SELECTED} sessions at once")));
    }
    Ok(ids)
}

/// The selected JWT ids, each checked to look like a jti.
fn selected_jtis(form: &Form) -> Result<Vec<String>, HttpError> {
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
fn back_to_list(path: &str, form: &Form, done: &str, count: usize) -> Reply {
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
fn notice_from(ctx: &Ctx) -> Option<Notice> {
    let request = ctx.request;
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
    ctx: &Ctx,
    admin: &User,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Result<maud::Markup, HttpError> {
    let counts = ctx.app.session_counts.get(ctx.conn, ctx.now)?;
    let current = schedule::load(ctx.conn)?;
    let next_run = schedule::next_run(&current, ctx.now);
    let runs = cleanup::recent_runs(ctx.conn, 10)?;
    Ok(admin_views::dashboard(&admin_views::Dashboard {
        admin,
        counts,
        schedule: &current,
        next_run,
        runs: &runs,
        notice,
        error,
        now: ctx.now,
    }))
}

/// An admin action changed sessions: the next view counts again.
/// Refuses (403) when any of these API logins belongs to a user whom the
/// caller may not act on; run inside the transaction that changes them.
fn refuse_superusers_jwts(
    conn: &crate::db::Conn,
    caller: &User,
    jtis: &[String],
) -> Result<(), HttpError> {
    for jti in jtis {
        if let Some(owner) = jwt_sessions::owner_role(conn, jti)?
            && !caller.may_end_sessions_of(owner)
        {
            return Err(superusers_only(caller));
        }
    }
    Ok(())
}

fn forget_counts(ctx: &Ctx) {
    ctx.app.session_counts.forget();
}
