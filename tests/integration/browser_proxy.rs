//! A real browser through nginx (SPEC 9): Debian's chromium, headless, with
//! `--host-resolver-rules` mapping the test domain to 127.0.0.1, opens an
//! application behind `deploy/nginx.conf`, lands on sessiond's sign-in page,
//! signs in by keyboard and arrives back at the application as that user
//! (the echo app shows the `Remote-User` nginx passed on).
//!
//! With CI=true a missing chromium or nginx fails the test; elsewhere it
//! says loudly that it did not run.

use std::time::Duration;

use crate::browser::{CHROMIUM, launch};
use crate::proxies::{EchoApp, NGINX, free_port, sessiond_behind, start_nginx};
use crate::support::installed;

const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_browser_signs_in_through_nginx_and_arrives_back_at_the_app() {
    let name = "browser_proxy::a_browser_signs_in_through_nginx_and_arrives_back_at_the_app";
    if !installed(CHROMIUM, "chromium", name) || !installed(NGINX, "nginx", name) {
        return;
    }
    let port = free_port();
    let server = sessiond_behind(port);
    let app = EchoApp::start();
    let _nginx = start_nginx(server.addr, app.addr, port);
    let profile = tempfile::tempdir().expect("temp dir for the browser profile");
    let browser = launch(
        profile.path(),
        &["--no-proxy-server", "--host-resolver-rules=MAP *.example.test 127.0.0.1"],
    );
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(STEP_TIMEOUT);

    // Open the application: nginx sends the browser to sign in.
    let app_url = format!("http://app.example.test:{port}/page?x=1");
    tab.navigate_to(&app_url).unwrap().wait_until_navigated().unwrap();
    tab.wait_for_xpath("//h1[normalize-space()='Sign in']").expect("the sign-in page");
    let at = tab.get_url();
    assert!(at.starts_with(&format!("http://auth.example.test:{port}/login?next=")), "{at}");

    // Sign in by keyboard: the username field has focus; Tab, Enter.
    tab.wait_for_element("#username").unwrap();
    tab.type_str("alice").unwrap();
    tab.press_key("Tab").unwrap();
    tab.type_str("alice-password").unwrap();
    tab.press_key("Enter").unwrap();

    // Back at the application, which saw who signed in.
    tab.wait_for_xpath("//*[contains(text(), 'remote-user')]").expect("the app's echo");
    assert_eq!(tab.get_url(), app_url);
    let content = tab.get_content().unwrap();
    assert!(content.contains(r#""remote-user":["alice"]"#), "{content}");
    assert!(content.contains(r#""remote-groups":["user"]"#), "{content}");
}
