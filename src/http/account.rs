//! `/account/sessions`: a signed-in user's own sessions (browsers and API
//! logins), and ending them: one at a time, or every other one at once.
//!
//! Every query and every change is scoped to the signed-in user's id, so a
//! form naming another user's session changes nothing. Ending the session
//! the request came with signs the browser out at once. Anonymous visitors
//! are sent to sign in. The router has already refused cross-site POSTs.

use crate::http::admin_views::{self, AccountPage, Notice};
use crate::http::pages;
use crate::http::reply::{HttpError, Reply};
use crate::http::request::{Method, Request};
use crate::http::server::Worker;
use crate::http::web_auth::{self, WebAuth};
use crate::jwt_sessions;
use crate::web_sessions::{self, KeyHash, WebSession};

/// The most API logins listed on the page.
const MAX_JWT_ROWS: usize = 100;

/// Answers every request under `/account/`.
pub fn route(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    use Method::{Get, Head, Post};
    match (request.method, request.path.as_str()) {
        (Get | Head, "/account/sessions") => sessions_page(worker, request),
        (Post, "/account/sessions/end") => end_one(worker, request),
        (Post, "/account/sessions/revoke") => revoke_one(worker, request),
        (Post, "/account/sessions/end-others") => end_others(worker, request),
        (_, "/account/sessions") => Err(HttpError::MethodNotAllowed("GET, HEAD")),
        (
            _,
            "/account/sessions/end" | "/account/sessions/revoke" | "/account/sessions/end-others",
        ) => Err(HttpError::MethodNotAllowed("POST")),
        _ => Err(HttpError::NotFound),
    }
}

/// `GET /account/sessions`.
fn sessions_page(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let auth = web_auth::authenticate(worker, request)?;
    let Some(session) = &auth.session else {
        return Ok(pages::finish(worker, auth, pages::redirect_to_login(request)));
    };
    let now = worker.app.clock.now();
    let web_rows = web_sessions::list_for_user(&worker.conn, &session.user)?;
    let jwt_rows = jwt_sessions::list(
        &worker.conn,
        &jwt_sessions::ListQuery {
            status: None,
            user_id: Some(session.user.id),
            before: None,
            limit: MAX_JWT_ROWS,
        },
        now,
    )?;
    let page = admin_views::account_sessions(&AccountPage {
        user: &session.user,
        web_rows: &web_rows,
        current_web_row: Some(session.row_id),
        jwt_rows: &jwt_rows,
        notice: notice_from(request),
        now,
    });
    Ok(pages::finish(worker, auth, Reply::html(200, page)))
}

/// `POST /account/sessions/end`: signs out one of the user's own browser
/// sessions (`id` = the hex hash); ending the current one signs out here.
fn end_one(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, session) = match require_session(worker, request)? {
        Ok(signed_in) => signed_in,
        Err(to_login) => return Ok(to_login),
    };
    let form = request.form();
    let key_hash = KeyHash::from_hex(form.get("id"))
        .ok_or_else(|| HttpError::BadRequest(String::from("invalid session id")))?;
    let ended = web_sessions::delete_for_user_by_hash(&worker.conn, session.user.id, &key_hash)?;
    if key_hash == session.key_hash {
        return Ok(pages::finish(worker, WebAuth::signed_out(), Reply::redirect("/login")));
    }
    let location = format!("/account/sessions?done=signed-out&count={}", usize::from(ended));
    Ok(pages::finish(worker, auth, Reply::redirect(&location)))
}

/// `POST /account/sessions/revoke`: revokes one of the user's own API
/// logins (`jti`).
fn revoke_one(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, session) = match require_session(worker, request)? {
        Ok(signed_in) => signed_in,
        Err(to_login) => return Ok(to_login),
    };
    let form = request.form();
    let jti = form.get("jti");
    if jti.is_empty() || jti.len() > 64 {
        return Err(HttpError::BadRequest(String::from("invalid session id")));
    }
    let now = worker.app.clock.now();
    let revoked = jwt_sessions::revoke_own(&worker.conn, jti, session.user.id, now)?;
    let location = format!("/account/sessions?done=signed-out&count={}", usize::from(revoked));
    Ok(pages::finish(worker, auth, Reply::redirect(&location)))
}

/// `POST /account/sessions/end-others`: "Sign out all other sessions":
/// every other browser session is deleted and every live API login revoked.
fn end_others(worker: &Worker, request: &Request) -> Result<Reply, HttpError> {
    let (auth, session) = match require_session(worker, request)? {
        Ok(signed_in) => signed_in,
        Err(to_login) => return Ok(to_login),
    };
    let now = worker.app.clock.now();
    let user_id = session.user.id;
    let tx = crate::db::durable_transaction(&worker.conn)?;
    let web = web_sessions::delete_for_user_except(&tx, user_id, &session.key_hash)?;
    let jwt = jwt_sessions::revoke_for_user(&tx, user_id, now, Some(user_id))?;
    tx.commit()?;
    let location = format!("/account/sessions?done=signed-out-others&count={}", web + jwt);
    Ok(pages::finish(worker, auth, Reply::redirect(&location)))
}

fn notice_from(request: &Request) -> Option<Notice> {
    let count = request.query_param("count").and_then(|text| text.parse::<usize>().ok())?;
    match request.query_param("done")?.as_str() {
        "signed-out" => Some(Notice::SignedOut(count)),
        "signed-out-others" => Some(Notice::SignedOutOthers(count)),
        _ => None,
    }
}

/// The request's live session for a POST here, or the reply that sends an
/// anonymous visitor to sign in and come back to `/account/sessions`.
fn require_session(
    worker: &Worker,
    request: &Request,
) -> Result<Result<(WebAuth, WebSession), Reply>, HttpError> {
    let auth = web_auth::authenticate(worker, request)?;
    match auth.session.clone() {
        Some(session) => Ok(Ok((auth, session))),
        None => {
            let to_login = Reply::redirect("/login?next=%2Faccount%2Fsessions");
            Ok(Err(pages::finish(worker, auth, to_login)))
        }
    }
}
