//! `/account/sessions`: a signed-in user's own sessions (browsers and API
//! logins), and ending them: one at a time, or every other one at once.
//!
//! Every query and every change is scoped to the signed-in user's id, so a
//! form naming another user's session changes nothing. Ending the session
//! the request came with signs the browser out at once. Anonymous visitors
//! are sent to sign in (`ctx.require_session()?`). The router has already
//! refused cross-site POSTs and writes the session cookie back.

use crate::http::admin_views::{self, AccountPage, Notice};
use crate::http::context::Ctx;
use crate::http::reply::{HttpError, Reply};
use crate::http::request::Method;
use crate::jwt_sessions;
use crate::listing::ListQuery;
use crate::web_sessions::{self, KeyHash};

/// The most API logins listed on the page.
const MAX_JWT_ROWS: usize = 100;

/// Answers every request under `/account/`.
pub fn route(ctx: &Ctx) -> Result<Reply, HttpError> {
    use Method::{Get, Head, Post};
    match (ctx.request.method, ctx.request.path.as_str()) {
        (Get | Head, "/account/sessions") => sessions_page(ctx),
        (Post, "/account/sessions/end") => end_one(ctx),
        (Post, "/account/sessions/revoke") => revoke_one(ctx),
        (Post, "/account/sessions/end-others") => end_others(ctx),
        (_, "/account/sessions") => Err(HttpError::MethodNotAllowed("GET, HEAD")),
        (
            _,
            "/account/sessions/end" | "/account/sessions/revoke" | "/account/sessions/end-others",
        ) => Err(HttpError::MethodNotAllowed("POST")),
        _ => Err(HttpError::NotFound),
    }
}

/// `GET /account/sessions`.
fn sessions_page(ctx: &Ctx) -> Result<Reply, HttpError> {
    let session = ctx.require_session()?;
    let web_rows = web_sessions::list_for_user(ctx.conn, &session.user)?;
    let jwt_rows = jwt_sessions::list(
        ctx.conn,
        &ListQuery {
            status: None,
            user_id: Some(session.user.id),
            before: None,
            limit: MAX_JWT_ROWS,
        },
        ctx.now,
    )?;
    let page = admin_views::account_sessions(&AccountPage {
        user: &session.user,
        web_rows: &web_rows,
        current_web_row: Some(session.row_id),
        jwt_rows: &jwt_rows,
        notice: notice_from(ctx),
        now: ctx.now,
    });
    Ok(Reply::html(200, page))
}

/// `POST /account/sessions/end`: signs out one of the user's own browser
/// sessions (`id` = the hex hash); ending the current one signs out here.
fn end_one(ctx: &Ctx) -> Result<Reply, HttpError> {
    let session = ctx.require_session()?;
    let form = ctx.request.form();
    let key_hash = KeyHash::from_hex(form.get("id"))
        .ok_or_else(|| HttpError::BadRequest(String::from("invalid session id")))?;
    let ended = web_sessions::delete_for_user_by_hash(ctx.conn, session.user.id, &key_hash)?;
    if key_hash == session.key_hash {
        ctx.signed_out();
        return Ok(Reply::redirect("/login"));
    }
    let location = format!("/account/sessions?done=signed-out&count={}", usize::from(ended));
    Ok(Reply::redirect(&location))
}

/// `POST /account/sessions/revoke`: revokes one of the user's own API
/// logins (`jti`).
fn revoke_one(ctx: &Ctx) -> Result<Reply, HttpError> {
    let session = ctx.require_session()?;
    let form = ctx.request.form();
    let jti = form.get("jti");
    if jti.is_empty() || jti.len() > 64 {
        return Err(HttpError::BadRequest(String::from("invalid session id")));
    }
    let revoked = jwt_sessions::revoke_own(ctx.conn, jti, session.user.id, ctx.now)?;
    let location = format!("/account/sessions?done=signed-out&count={}", usize::from(revoked));
    Ok(Reply::redirect(&location))
}

/// `POST /account/sessions/end-others`: "Sign out all other sessions":
/// every other browser session is deleted and every live API login revoked.
fn end_others(ctx: &Ctx) -> Result<Reply, HttpError> {
    let session = ctx.require_session()?;
    let user_id = session.user.id;
    let tx = crate::db::durable_transaction(ctx.conn)?;
    let web = web_sessions::delete_for_user_except(&tx, user_id, &session.key_hash)?;
    let jwt = jwt_sessions::revoke_for_user(&tx, user_id, ctx.now, Some(user_id))?;
    tx.commit()?;
    let location = format!("/account/sessions?done=signed-out-others&count={}", web + jwt);
    Ok(Reply::redirect(&location))
}

fn notice_from(ctx: &Ctx) -> Option<Notice> {
    let request = ctx.request;
    let count = request.query_param("count").and_then(|text| text.parse::<usize>().ok())?;
    match request.query_param("done")?.as_str() {
        "signed-out" => Some(Notice::SignedOut(count)),
        "signed-out-others" => Some(Notice::SignedOutOthers(count)),
        _ => None,
    }
}
