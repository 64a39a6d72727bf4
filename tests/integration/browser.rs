//! End to end in a real browser: Debian's chromium, headless, driven over
//! the DevTools protocol. A user signs in, opens `/account/sessions` and
//! signs out another of their sessions; an admin signs in, deletes a session
//! from `/admin/sessions/web`; each affected client (a second login over
//! HTTP) is signed out on its next request.
//!
//! The browser is never downloaded: the test uses `/usr/bin/chromium` and
//! fails, never skips, where it is missing (`.ci/run` installs it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use headless_chrome::{Browser, LaunchOptions, Tab};
use sessiond::users::Role;

use crate::admin::{login_with_agent, session_id, signed_in};
use crate::support::TestServer;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long the browser may take for one step; password hashing in a debug
/// build on a small shared machine is slow.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn user_and_admin_end_sessions_in_a_real_browser() {
    if !chromium_is_installed() {
        return;
    }
    let server = TestServer::start();
    server.create_user("alice", "alice-password", Role::User);
    let profile = tempfile::tempdir().expect("temp dir for the browser profile");
    let browser = launch(profile.path(), &[]);
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(STEP_TIMEOUT);

    // Alice's other device, signed in over plain HTTP.
    let phone = login_with_agent(&server, "alice", "alice-password", "AlicePhone/1.0");

    // Alice signs in in the browser and sees both sessions.
    sign_in(&tab, &server, "alice", "alice-password");
    tab.navigate_to(&server.url("/account/sessions")).unwrap().wait_until_navigated().unwrap();
    tab.wait_for_xpath("//h1[normalize-space()='Your sessions']").expect("the sessions page");
    let content = tab.get_content().unwrap();
    assert!(content.contains("AlicePhone/1.0"), "the other session is listed");
    assert!(content.contains("(this session)"), "the current session is marked");

    // She signs out the phone with its own `Sign out` button.
    let phone_id = session_id(&phone);
    tab.find_element_by_xpath(&format!(
        "//input[@name='id' and @value='{phone_id}']/following-sibling::button[normalize-space()='Sign out']"
    ))
    .expect("a Sign out button for the phone")
    .click()
    .unwrap();
    tab.wait_for_xpath("//p[@class='notice' and normalize-space()='Signed out 1 session.']")
        .expect("the page says what it did");
    assert!(!tab.get_content().unwrap().contains("AlicePhone/1.0"));
    assert!(!signed_in(&server, &phone), "the phone is signed out on its next request");

    // A new client of alice's, then the admin signs in in the browser and
    // deletes that client's session from the admin list.
    let laptop = login_with_agent(&server, "alice", "alice-password", "AliceLaptop/2.0");
    sign_in(&tab, &server, "root", "root-password");
    tab.navigate_to(&server.url("/admin/sessions/web")).unwrap().wait_until_navigated().unwrap();
    tab.wait_for_xpath("//h1[normalize-space()='Web sessions']").expect("the admin list");
    assert!(tab.get_content().unwrap().contains("AliceLaptop/2.0"));
    let laptop_id = session_id(&laptop);
    tab.find_element_by_xpath(&format!(
        "//button[@name='one' and @value='{laptop_id}' and normalize-space()='Delete']"
    ))
    .expect("a Delete button for the laptop's session")
    .click()
    .unwrap();
    tab.wait_for_xpath("//p[@class='notice' and normalize-space()='Deleted 1 web session.']")
        .expect("the page says what it did");
    assert!(!signed_in(&server, &laptop), "the laptop is signed out on its next request");
}

/// Whether the browser test can run. With CI=true a missing chromium fails
/// the test: `.ci/run` installs it, so its absence is a broken setup. On a
/// developer's machine (where `cargo test` must work with nothing installed
/// by hand) the test is not run, and says so on the terminal: the warning is
/// written to stderr directly, past the test harness's output capture, so it
/// shows even though the test passes.
#[track_caller]
fn chromium_is_installed() -> bool {
    let test = "browser::user_and_admin_end_sessions_in_a_real_browser";
    crate::support::installed(CHROMIUM, "chromium", test)
}

/// Debian's chromium, headless, with a fresh profile, nothing fetched in
/// the background, and `extra_args` (say, host-resolver rules).
pub fn launch(profile: &Path, extra_args: &[&str]) -> Browser {
    let mut args: Vec<&OsStr> = [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    args.extend(extra_args.iter().map(OsStr::new));
    let options = LaunchOptions::default_builder()
        .path(Some(PathBuf::from(CHROMIUM)))
        .headless(true)
        .sandbox(false)
        .user_data_dir(Some(profile.to_path_buf()))
        .idle_browser_timeout(Duration::from_secs(300))
        .args(args)
        .build()
        .expect("valid launch options");
    Browser::new(options).expect("chromium starts")
}

/// Signs in through the form as a person would: type, press `Sign in`.
#[track_caller]
fn sign_in(tab: &Arc<Tab>, server: &TestServer, username: &str, password: &str) {
    tab.navigate_to(&server.url("/login")).unwrap().wait_until_navigated().unwrap();
    tab.wait_for_element("#username").unwrap().click().unwrap();
    tab.type_str(username).unwrap();
    tab.wait_for_element("#password").unwrap().click().unwrap();
    tab.type_str(password).unwrap();
    tab.find_element_by_xpath("//button[normalize-space()='Sign in']").unwrap().click().unwrap();
    tab.wait_for_xpath(&format!("//h1[normalize-space()='Signed in as {username}']"))
        .expect("the home page after signing in");
}
