//! The HTML of the admin pages and of the user's own sessions page, written
//! with maud, which escapes every value (user agents and usernames come from
//! clients and must never become markup).
//!
//! Views take plain data and return markup; they read no database and no
//! request. Every input has a label, every action is a plain form button,
//! and the pages work without JavaScript. Web sessions are shown by a short
//! fingerprint of their key hash and acted on by the full hash, never by a
//! key.

use maud::{Markup, html};

use crate::cleanup::CleanupRun;
use crate::clock::{UnixTime, rfc3339};
use crate::http::views::layout;
use crate::jwt_sessions::JwtSessionRow;
use crate::listing::Status;
use crate::schedule::Schedule;
use crate::session_counts::SessionCounts;
use crate::users::User;
use crate::web_sessions::WebSession;

/// Rows on one page of a list.
pub const PAGE_SIZE: usize = 50;

/// The filters of a list page, as parsed from its query string.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub status: Option<Status>,
    /// The username asked for, as typed ("" for everyone).
    pub user: String,
    pub before: Option<i64>,
}

impl Filters {
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

/// What an action did, shown once on the page it returns to. The sentences
/// are fixed here; only numbers come from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    DeletedWeb(usize),
    RevokedJwt(usize),
    DeletedJwt(usize),
    EndedUser(usize),
    Cleared { web: usize, jwt: usize },
    ScheduleSet,
    ScheduleOff,
    SignedOut(usize),
    SignedOutOthers(usize),
}

impl Notice {
    pub fn text(self) -> String {
        match self {
            Notice::DeletedWeb(n) => format!("Deleted {}.", plural(n, "web session")),
            Notice::RevokedJwt(n) => format!("Revoked {}.", plural(n, "session")),
            Notice::DeletedJwt(n) => format!("Deleted {}.", plural(n, "JWT session")),
            Notice::EndedUser(n) => format!("Ended {}.", plural(n, "session")),
            Notice::Cleared { web, jwt } => format!(
                "Cleared {} and {}.",
                plural(web, "expired web session"),
                plural(jwt, "expired JWT session")
            ),
            Notice::ScheduleSet => String::from("Saved the cleanup schedule."),
            Notice::ScheduleOff => String::from("Turned the scheduled cleanup off."),
            Notice::SignedOut(n) => format!("Signed out {}.", plural(n, "session")),
            Notice::SignedOutOthers(n) => format!("Signed out {}.", plural(n, "other session")),
        }
    }
}

/// Everything `/admin/` shows.
pub struct Dashboard<'a> {
    pub admin: &'a User,
    pub counts: SessionCounts,
    pub schedule: &'a Schedule,
    pub next_run: Option<UnixTime>,
    pub runs: &'a [CleanupRun],
    pub notice: Option<Notice>,
    pub error: Option<&'a str>,
    pub now: UnixTime,
}

/// `/admin/`: counts, the schedule and its runs, and the global actions.
pub fn dashboard(page: &Dashboard<'_>) -> Markup {
    let counts = &page.counts;
    let cron = match page.schedule {
        Schedule::Cron(expression) => expression.as_str(),
        Schedule::Off => "",
    };
    let content = html! {
        (admin_nav("overview"))
        h1 { "Sessions admin" }
        (notice_box(page.notice))
        @if let Some(error) = page.error {
            p.error role="alert" { (error) }
        }
        div.counts {
            section.card aria-labelledby="web-counts" {
                h2 #web-counts { "Web sessions" }
                p {
                    a href="/admin/sessions/web?status=active" {
                        span.number { (counts.web.active) } " active"
                    }
                }
                p {
                    a href="/admin/sessions/web?status=expired" {
                        span.number { (counts.web.expired) } " expired"
                    }
                }
            }
            section.card aria-labelledby="jwt-counts" {
                h2 #jwt-counts { "JWT sessions" }
                p {
                    a href="/admin/sessions/jwt?status=active" {
                        span.number { (counts.jwt.active) } " active"
                    }
                }
                p {
                    a href="/admin/sessions/jwt?status=revoked" {
                        span.number { (counts.jwt.revoked) } " revoked"
                    }
                }
                p {
                    a href="/admin/sessions/jwt?status=expired" {
                        span.number { (counts.jwt.expired) } " expired"
                    }
                }
            }
        }
        section.card aria-labelledby="cleanup" {
            h2 #cleanup { "Cleanup" }
            p {
                "Schedule: "
                @match page.schedule {
                    Schedule::Cron(expression) => { code { (expression) } " (server local time)" }
                    Schedule::Off => { strong { "off" } }
                }
            }
            p {
                "Next run: "
                @match page.next_run {
                    Some(next) => { (when(next)) " UTC" }
                    None => { "none" }
                }
            }
            form method="post" action="/admin/schedule" {
                label for="cron" { "Schedule (5-field cron expression, e.g. 0 5 * * *)" }
                input type="text" id="cron" name="cron" value=(cron) autocomplete="off";
                div.actions {
                    button type="submit" name="action" value="set" { "Save schedule" }
                    button.secondary type="submit" name="action" value="off" { "Turn off" }
                }
            }
            form method="post" action="/admin/cleanup" {
                button.danger type="submit" { "Clear expired sessions now" }
            }
            h2 { "Last runs" }
            @if page.runs.is_empty() {
                p.muted { "No cleanup has run yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Started" }
                        th scope="col" { "Trigger" }
                        th scope="col" { "Duration" }
                        th scope="col" { "Web deleted" }
                        th scope="col" { "JWT deleted" }
                        th scope="col" { "Outcome" }
                    } }
                    tbody {
                        @for run in page.runs {
                            tr {
                                td { (when(run.started)) }
                                td { (run.trigger) }
                                td { (run.duration_ms) " ms" }
                                td { (run.web_deleted) }
                                td { (run.jwt_deleted) }
                                td { (run.outcome) }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="end-user" {
            h2 #end-user { "End every session of a user" }
            (end_user_form("dashboard", ""))
        }
        p.muted.small { "Counted at " (when(page.now)) " UTC; counts may lag by a few seconds." }
    };
    layout("Sessions admin", Some(page.admin), content)
}

/// Everything a list page shows; `Row` is a web or a JWT session.
pub struct ListPage<'a, Row> {
    pub admin: &'a User,
    pub filters: &'a Filters,
    /// The `user` filter names nobody.
    pub unknown_user: bool,
    /// The `before` of the next page, when there is one.
    pub next_before: Option<i64>,
    pub notice: Option<Notice>,
    pub now: UnixTime,
    /// The admin's own session, marked in the web list.
    pub current_web_row: Option<i64>,
    pub rows: &'a [Row],
}

/// `/admin/sessions/web`.
pub fn web_list(page: &ListPage<'_, WebSession>) -> Markup {
    let content = html! {
        (admin_nav("web"))
        h1 { "Web sessions" }
        (notice_box(page.notice))
        (list_toolbar("/admin/sessions/web", page.filters, false))
        (empty_note(page, page.rows.is_empty()))
        p.muted.small { "Newest first, " (PAGE_SIZE) " a page. Times are UTC." }
        form method="post" action="/admin/sessions/web/delete" {
            (filter_fields(page.filters, "web"))
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { span.visually-hidden { "Select" } }
                        th scope="col" { "Session" }
                        th scope="col" { "User" }
                        th scope="col" { "Created" }
                        th scope="col" { "Last activity" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Status" }
                        th scope="col" { "Client address" }
                        th scope="col" { "User agent" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for session in page.rows {
                            @let id = session.key_hash.to_hex();
                            @let fingerprint = session.key_hash.fingerprint();
                            @let checkbox = format!("select-{fingerprint}");
                            tr {
                                td {
                                    label.visually-hidden for=(checkbox) { "Select session " (fingerprint) }
                                    input type="checkbox" id=(checkbox) name="id" value=(id);
                                }
                                td {
                                    code title=(id) { (fingerprint) }
                                    @if page.current_web_row == Some(session.row_id) {
                                        " " span.current { "(yours)" }
                                    }
                                }
                                td { (session.user.username) }
                                td { (when(session.created)) }
                                td { (when(session.last_activity)) }
                                td { (when(session.expire_date)) }
                                td { (status_badge(Status::of(session.expire_date, None, page.now))) }
                                td { (session.client_addr) }
                                td.agent { (session.user_agent) }
                                td {
                                    div.row-actions {
                                        button.danger type="submit" name="one" value=(id)
                                            title={ "Delete session " (fingerprint) } { "Delete" }
                                        button.secondary type="submit" name="username"
                                            value=(session.user.username)
                                            formaction="/admin/users/end-sessions"
                                            title={ "End all sessions of " (session.user.username) }
                                            { "End all sessions" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !page.rows.is_empty() {
                div.actions {
                    button.danger type="submit" { "Delete selected" }
                }
            }
        }
        (pager("/admin/sessions/web", page))
    };
    layout("Web sessions", Some(page.admin), content)
}

/// `/admin/sessions/jwt`.
pub fn jwt_list(page: &ListPage<'_, JwtSessionRow>) -> Markup {
    let content = html! {
        (admin_nav("jwt"))
        h1 { "JWT sessions" }
        (notice_box(page.notice))
        (list_toolbar("/admin/sessions/jwt", page.filters, true))
        (empty_note(page, page.rows.is_empty()))
        p.muted.small { "Newest first, " (PAGE_SIZE) " a page. Times are UTC." }
        form method="post" action="/admin/sessions/jwt/revoke" {
            (filter_fields(page.filters, "jwt"))
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { span.visually-hidden { "Select" } }
                        th scope="col" { "JTI" }
                        th scope="col" { "User" }
                        th scope="col" { "Created" }
                        th scope="col" { "Last activity" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Status" }
                        th scope="col" { "Client address" }
                        th scope="col" { "User agent" }
                        th scope="col" { "Revoked at" }
                        th scope="col" { "Revoked by" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for row in page.rows {
                            @let jti = &row.session.jti;
                            @let checkbox = format!("select-{}", row.seq);
                            @let status = row.status(page.now);
                            tr {
                                td {
                                    label.visually-hidden for=(checkbox) { "Select session " (jti) }
                                    input type="checkbox" id=(checkbox) name="id" value=(jti);
                                }
                                td { code { (jti) } }
                                td { (row.user.username) }
                                td { (when(row.session.created)) }
                                td { (when(row.session.last_activity)) }
                                td { (when(row.session.expires_at)) }
                                td { (status_badge(status)) }
                                td { (row.session.client_addr) }
                                td.agent { (row.session.user_agent) }
                                td { @if let Some(at) = row.session.revoked_at { (when(at)) } }
                                td { (row.revoked_by.as_deref().unwrap_or("")) }
                                td {
                                    div.row-actions {
                                        @if status == Status::Active {
                                            button type="submit" name="one" value=(jti)
                                                title={ "Revoke session " (jti) } { "Revoke" }
                                        }
                                        button.danger type="submit" name="one" value=(jti)
                                            formaction="/admin/sessions/jwt/delete"
                                            title={ "Delete session " (jti) } { "Delete" }
                                        button.secondary type="submit" name="username"
                                            value=(row.user.username)
                                            formaction="/admin/users/end-sessions"
                                            title={ "End all sessions of " (row.user.username) }
                                            { "End all sessions" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !page.rows.is_empty() {
                div.actions {
                    button type="submit" { "Revoke selected" }
                    button.danger type="submit" formaction="/admin/sessions/jwt/delete" {
                        "Delete selected"
                    }
                }
            }
        }
        (pager("/admin/sessions/jwt", page))
    };
    layout("JWT sessions", Some(page.admin), content)
}

/// Everything `/account/sessions` shows.
pub struct AccountPage<'a> {
    pub user: &'a User,
    pub web_rows: &'a [WebSession],
    pub current_web_row: Option<i64>,
    pub jwt_rows: &'a [JwtSessionRow],
    pub notice: Option<Notice>,
    pub now: UnixTime,
}

/// `/account/sessions`: the user's own sessions, the current one marked.
pub fn account_sessions(page: &AccountPage<'_>) -> Markup {
    let content = html! {
        h1 { "Your sessions" }
        (notice_box(page.notice))
        p.muted.small { "Every place you are signed in. Times are UTC." }
        section.card aria-labelledby="browser-sessions" {
            h2 #browser-sessions { "Browsers" }
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Device" }
                        th scope="col" { "Address" }
                        th scope="col" { "Signed in" }
                        th scope="col" { "Last activity" }
                        th scope="col" { "Expires" }
                        th scope="col" { "Status" }
                        th scope="col" { "Action" }
                    } }
                    tbody {
                        @for session in page.web_rows {
                            @let current = page.current_web_row == Some(session.row_id);
                            tr.current-row[current] {
                                td.agent {
                                    (device(&session.user_agent))
                                    @if current { " " span.current { "(this session)" } }
                                }
                                td { (session.client_addr) }
                                td { (when(session.created)) }
                                td { (when(session.last_activity)) }
                                td { (when(session.expire_date)) }
                                td { (status_badge(Status::of(session.expire_date, None, page.now))) }
                                td {
                                    form.inline method="post" action="/account/sessions/end" {
                                        input type="hidden" name="id" value=(session.key_hash.to_hex());
                                        button type="submit"
                                            title={ "Sign out session " (session.key_hash.fingerprint()) }
                                            { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/account/sessions/end-others" {
                div.actions { button.danger type="submit" { "Sign out all other sessions" } }
            }
        }
        section.card aria-labelledby="api-sessions" {
            h2 #api-sessions { "API logins (JWT)" }
            @if page.jwt_rows.is_empty() {
                p.muted { "No API logins." }
            } @else {
                div.scroll {
                    table {
                        thead { tr {
                            th scope="col" { "Device" }
                            th scope="col" { "Address" }
                            th scope="col" { "Signed in" }
                            th scope="col" { "Expires" }
                            th scope="col" { "Status" }
                            th scope="col" { "Action" }
                        } }
                        tbody {
                            @for row in page.jwt_rows {
                                @let status = row.status(page.now);
                                tr {
                                    td.agent { (device(&row.session.user_agent)) }
                                    td { (row.session.client_addr) }
                                    td { (when(row.session.created)) }
                                    td { (when(row.session.expires_at)) }
                                    td { (status_badge(status)) }
                                    td {
                                        @if status == Status::Active {
                                            form.inline method="post" action="/account/sessions/revoke" {
                                                input type="hidden" name="jti" value=(row.session.jti);
                                                button type="submit" { "Sign out" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Your sessions", Some(page.user), content)
}

// ---------------------------------------------------------------------------
// Pieces.

pub fn admin_nav(current: &str) -> Markup {
    let links = [
        ("overview", "/admin/", "Overview"),
        ("web", "/admin/sessions/web", "Web sessions"),
        ("jwt", "/admin/sessions/jwt", "JWT sessions"),
        ("access", "/admin/access", "Access rules"),
    ];
    html! {
        nav.tabs aria-label="Admin" {
            @for (name, href, text) in links {
                @if name == current {
                    a href=(href) aria-current="page" { (text) }
                } @else {
                    a href=(href) { (text) }
                }
            }
        }
    }
}

fn notice_box(notice: Option<Notice>) -> Markup {
    html! {
        @if let Some(notice) = notice {
            p.notice role="status" { (notice.text()) }
        }
    }
}

/// The filter form (a GET) and the "end every session of a user" form.
fn list_toolbar(path: &str, filters: &Filters, with_revoked: bool) -> Markup {
    let mut statuses = vec![Status::Active, Status::Expired];
    if with_revoked {
        statuses.push(Status::Revoked);
    }
    let back = if with_revoked { "jwt" } else { "web" };
    html! {
        div.toolbar-row {
            form.toolbar method="get" action=(path) {
                div {
                    label for="status" { "Status" }
                    select id="status" name="status" {
                        option value="" selected[filters.status.is_none()] { "all" }
                        @for status in statuses {
                            option value=(status.as_str()) selected[filters.status == Some(status)] {
                                (status.as_str())
                            }
                        }
                    }
                }
                div {
                    label for="user" { "User" }
                    input type="text" id="user" name="user" value=(filters.user)
                        autocomplete="off" autocapitalize="none";
                }
                div { button type="submit" { "Filter" } }
            }
            (end_user_form(back, &filters.user))
        }
    }
}

fn end_user_form(back: &str, username: &str) -> Markup {
    let id = format!("end-user-{back}");
    html! {
        form.toolbar method="post" action="/admin/users/end-sessions" {
            input type="hidden" name="back" value=(back);
            div {
                label for=(id) { "End every session of user" }
                input type="text" id=(id) name="username" value=(username) required
                    autocomplete="off" autocapitalize="none";
            }
            div { button.danger type="submit" { "End all sessions" } }
        }
    }
}

/// Hidden fields so that an action returns to the same filtered list.
fn filter_fields(filters: &Filters, back: &str) -> Markup {
    html! {
        input type="hidden" name="back" value=(back);
        @if let Some(status) = filters.status {
            input type="hidden" name="status" value=(status.as_str());
        }
        @if !filters.user.is_empty() {
            input type="hidden" name="user" value=(filters.user);
        }
    }
}

fn empty_note<Row>(page: &ListPage<'_, Row>, empty: bool) -> Markup {
    html! {
        @if page.unknown_user {
            p.error role="alert" { "There is no user named " code { (page.filters.user) } "." }
        } @else if empty {
            p.muted { "No sessions match." }
        }
    }
}

fn pager<Row>(path: &str, page: &ListPage<'_, Row>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if page.filters.before.is_some() {
                a href={ (path) "?" (page.filters.query_with_before(None)) } { "First page" }
                " "
            }
            @if let Some(before) = page.next_before {
                a rel="next" href={ (path) "?" (page.filters.query_with_before(Some(before))) } { "Next" }
            }
        }
    }
}

fn status_badge(status: Status) -> Markup {
    html! {
        span class={ "status status-" (status.as_str()) } { (status.as_str()) }
    }
}

/// A time as a `<time>` element: RFC 3339 inside, readable UTC outside
/// (the pages say once that times are UTC).
fn when(time: UnixTime) -> Markup {
    let text = rfc3339(time);
    let readable = text.replacen('T', " ", 1).replacen('Z', "", 1);
    html! { time datetime=(text) title=(text) { (readable) } }
}

/// A user agent as a device, or a dash when the client sent none.
fn device(user_agent: &str) -> Markup {
    html! {
        @if user_agent.is_empty() { span.muted { "unknown device" } } @else { (user_agent) }
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}
