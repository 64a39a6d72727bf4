//! The HTML of every page, written with maud, which escapes every value by
//! default.
//!
//! Views take plain data and return markup; they read no database and no
//! request. Every form posts to the same origin (see `csrf`), every input has
//! a label, and every page works without JavaScript.

use maud::{DOCTYPE, Markup, html};

use crate::clock::rfc3339;
use crate::users::User;
use crate::web_sessions::WebSession;

/// The frame around every page.
pub fn layout(title: &str, user: Option<&User>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sessiond" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    div.bar {
                        a.brand href="/" { "sessiond" }
                        @if let Some(user) = user {
                            a href="/account/sessions" { "My sessions" }
                            @if user.is_staff() {
                                a href="/admin/" { "Admin" }
                            }
                            span.spacer {}
                            span { (user.username) " (" (user.role) ")" }
                            form method="post" action="/logout" {
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// The sign-in form, with an error message after a failed attempt.
pub fn login(next: &str, username: &str, error: Option<&str>) -> Markup {
    let content = html! {
        div.card.narrow {
            h1 { "Sign in" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="username" { "Username" }
                input type="text" id="username" name="username" value=(username)
                    autocomplete="username" autocapitalize="none" required autofocus;
                label for="password" { "Password" }
                input type="password" id="password" name="password"
                    autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        }
    };
    layout("Sign in", None, content)
}

/// The home page of a signed-in user.
pub fn home(user: &User, session: &WebSession, expire_at_browser_close: bool) -> Markup {
    let content = html! {
        div.card {
            h1 { "Signed in as " (user.username) }
            p { "Role: " strong { (user.role) } }
            p.muted {
                "This session ends at " time datetime=(rfc3339(session.expire_date)) { (rfc3339(session.expire_date)) }
                " unless you stay active"
                @if expire_at_browser_close { ", or when you close the browser" }
                "."
            }
            p { a href="/account/sessions" { "See and end your sessions" } }
        }
    };
    layout("Home", Some(user), content)
}

/// A page that only says something went wrong in a way the user can fix.
pub fn message(title: &str, user: Option<&User>, text: &str) -> Markup {
    layout(title, user, html! { div.card { h1 { (title) } p { (text) } } })
}

/// `GET /logout`: the `Sign out` button (with `next`), for other
/// applications to link to.
pub fn logout(user: Option<&User>, next: &str) -> Markup {
    let content = html! {
        div.card.narrow {
            h1 { "Sign out" }
            @if let Some(user) = user {
                p { "You are signed in as " strong { (user.username) } "." }
            } @else {
                p { "You are not signed in." }
            }
            form method="post" action="/logout" {
                input type="hidden" name="next" value=(next);
                p { button type="submit" { "Sign out" } }
            }
        }
    };
    // The frame's own `Sign out` is left out: one button on the page.
    layout("Sign out", None, content)
}
