//! `/admin/access`: the forward-auth rules (SPEC 9) in the admin pages.
//! Staff see them in order with the default policy; superusers add (append)
//! and remove them. The forms post to the same origin and the router has
//! already applied the CSRF rule; every value shown is escaped by maud.
//!
//! The rules and their validation belong to `access_rules`; this module runs
//! no SQL itself. After a change it makes this server's copy of the rules be
//! read again at once (other servers follow within a second).

use maud::{Markup, html};

use crate::access_rules::{self, NewRule, Policy, Rule};
use crate::http::admin_views::admin_nav;
use crate::http::context::Ctx;
use crate::http::reply::{HttpError, Reply};
use crate::http::views::{self, layout};
use crate::users::{Role, User};

/// `GET /admin/access`.
pub fn list(ctx: &Ctx) -> Result<Reply, HttpError> {
    let admin = &ctx.require_staff()?.user;
    let notice = match ctx.request.query_param("done").as_deref() {
        Some("added") => Some("Added the rule."),
        Some("removed") => Some("Removed the rule."),
        _ => None,
    };
    let page = page(ctx, admin, notice, None, &Typed::default())?;
    Ok(Reply::html(200, page))
}

/// `POST /admin/access/add`: appends a rule (`pattern`, `path`, `policy`;
/// an empty path means none). Superusers only.
pub fn add(ctx: &Ctx) -> Result<Reply, HttpError> {
    let admin = require_superuser(ctx)?;
    let form = ctx.request.form();
    let typed = Typed {
        pattern: form.get("pattern").trim().to_owned(),
        path: form.get("path").trim().to_owned(),
        policy: form.get("policy").trim().to_owned(),
    };
    let path = Some(typed.path.as_str()).filter(|path| !path.is_empty());
    let rule = match NewRule::parse(&typed.pattern, path, &typed.policy) {
        Ok(rule) => rule,
        Err(error) => {
            let error = format!("The rule was not added: {error}");
            let page = page(ctx, admin, None, Some(&error), &typed)?;
            return Ok(Reply::html(400, page));
        }
    };
    access_rules::add(ctx.conn, &rule)?;
    ctx.app.access_rules.forget();
    Ok(Reply::redirect("/admin/access?done=added"))
}

/// `POST /admin/access/remove`: removes the rule with row id `id` (stable,
/// unlike the number, when two people edit at once). Superusers only.
pub fn remove(ctx: &Ctx) -> Result<Reply, HttpError> {
    let admin = require_superuser(ctx)?;
    let form = ctx.request.form();
    let id = form
        .get("id")
        .parse::<i64>()
        .map_err(|_| HttpError::BadRequest(String::from("`id` must be a rule's id")))?;
    if access_rules::remove_id(ctx.conn, id)?.is_none() {
        let page = views::message("No such rule", Some(admin), "That rule was already removed.");
        return Ok(Reply::html(404, page));
    }
    ctx.app.access_rules.forget();
    Ok(Reply::redirect("/admin/access?done=removed"))
}

/// A superuser's session; staff get a 403 page, others what
/// `require_staff` answers.
fn require_superuser<'c>(ctx: &'c Ctx) -> Result<&'c User, HttpError> {
    let user = &ctx.require_staff()?.user;
    if user.role != Role::Admin {
        let page =
            views::message("Forbidden", Some(user), "Only superusers may change the access rules.");
        return Err(HttpError::Refused(Reply::html(403, page)));
    }
    Ok(user)
}

/// What was typed into the add form, shown again after a refusal.
#[derive(Debug, Default)]
struct Typed {
    pattern: String,
    path: String,
    policy: String,
}

fn page(
    ctx: &Ctx,
    admin: &User,
    notice: Option<&str>,
    error: Option<&str>,
    typed: &Typed,
) -> Result<Markup, HttpError> {
    let rules = access_rules::list(ctx.conn)?;
    let default = ctx.app.settings.access_default;
    Ok(view(admin, &rules, default, notice, error, typed))
}

fn view(
    admin: &User,
    rules: &[Rule],
    default: Policy,
    notice: Option<&str>,
    error: Option<&str>,
    typed: &Typed,
) -> Markup {
    let superuser = admin.role == Role::Admin;
    let selected = if typed.policy.is_empty() { "user" } else { typed.policy.as_str() };
    let content = html! {
        (admin_nav("access"))
        h1 { "Access rules" }
        @if let Some(notice) = notice {
            p.notice role="status" { (notice) }
        }
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        p {
            "Forward auth tries these rules in order; the first that matches the host and path decides. "
            "When none matches, the default policy applies: " strong { (default) } " (SESSIOND_ACCESS_DEFAULT)."
        }
        @if rules.is_empty() {
            p.muted { "There are no rules yet." }
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Number" }
                        th scope="col" { "Host pattern" }
                        th scope="col" { "Path prefix" }
                        th scope="col" { "Policy" }
                        @if superuser { th scope="col" { "Actions" } }
                    } }
                    tbody {
                        @for rule in rules {
                            tr {
                                td { (rule.number) }
                                td { code { (rule.pattern) } }
                                td { @if let Some(path) = &rule.path { code { (path.as_str()) } } @else { span.muted { "any" } } }
                                td { (rule.policy) }
                                @if superuser {
                                    td {
                                        form method="post" action="/admin/access/remove" {
                                            input type="hidden" name="id" value=(rule.id);
                                            button.danger type="submit"
                                                title={ "Remove rule " (rule.number) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if superuser {
            h2 { "Add a rule" }
            form.card method="post" action="/admin/access/add" {
                label for="pattern" { "Host pattern (`wiki.example.com` or `*.example.com`)" }
                input type="text" id="pattern" name="pattern" value=(typed.pattern) required
                    autocapitalize="none" spellcheck="false";
                label for="path" { "Path prefix (optional, e.g. `/admin`)" }
                input type="text" id="path" name="path" value=(typed.path)
                    autocapitalize="none" spellcheck="false";
                label for="policy" { "Policy" }
                select id="policy" name="policy" {
                    @for word in Policy::WORDS {
                        option value=(word) selected[word == selected] { (word) }
                    }
                }
                p { button type="submit" { "Add rule" } }
            }
        } @else {
            p.muted { "Only superusers may add or remove rules." }
        }
    };
    layout("Access rules", Some(admin), content)
}
