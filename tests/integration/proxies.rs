//! End to end through real reverse proxies (SPEC 9): Debian's nginx and
//! Caddy, each started by the test as its own process on an ephemeral
//! 127.0.0.1 port with its own config and temp dir, running the very text of
//! `deploy/nginx.conf` and `deploy/Caddyfile` (the README shows those files;
//! a test here checks that it shows them unchanged), in front of a tiny
//! upstream app inside the test that echoes the headers it received, and of
//! the in-process sessiond. Only the names and addresses in the files are
//! replaced: `app.example.com` and `auth.example.com` by hosts under
//! `example.test` sent as `Host` headers, the upstreams by the real
//! addresses. Cookies ignore ports, so one cookie domain covers the proxy and
//! sessiond. Traefik is not packaged here: its contract is tested directly.
//!
//! With CI=true a missing nginx or caddy fails the test (`.ci/run` installs
//! them); on a developer's machine the test says loudly that it did not run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sessiond::access_rules::{self, NewRule};
use sessiond::users::Role;

use crate::support::{Cli, Response, TestServer, installed, request, request_to_host};

pub const NGINX: &str = "/usr/sbin/nginx";
pub const CADDY: &str = "/usr/bin/caddy";
pub const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A port that was free a moment ago, for a proxy that binds it itself.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The upstream application: answers every request with a JSON object of
/// the headers it received (lowercase name to every value), and closes.
pub struct EchoApp {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoApp {
    pub fn start() -> EchoApp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || echo(stream));
                }
            }
        });
        EchoApp { addr, stop, thread: Some(thread) }
    }
}

fn echo(stream: TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.entry(name.trim().to_ascii_lowercase()).or_default().push(value.trim().into());
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
    let body = serde_json::json!({ "target": target, "headers": headers }).to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A proxy process started by the test; killed on drop.
pub struct Proxy {
    child: Child,
    pub port: u16,
    /// Holds the config, the logs and the temp paths.
    dir: tempfile::TempDir,
    log: &'static str,
}

impl Proxy {
    fn wait_until_listening(mut self) -> Proxy {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the proxy exited with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "the proxy never listened: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deploy file with its names and upstreams replaced; each must be there,
/// so that a changed file cannot leave a replacement silently undone.
pub fn deploy_file(name: &str, replacements: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(name);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "deploy/{name} no longer has `{from}`");
        text = text.replace(from, to);
    }
    text
}

/// nginx running `deploy/nginx.conf` inside a minimal main configuration
/// whose pid, logs and temp paths are in the proxy's temp dir.
pub fn start_nginx(sessiond: SocketAddr, app: SocketAddr, port: u16) -> Proxy {
    let site = deploy_file(
        "nginx.conf",
        &[
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("app.example.com", String::from("app.example.test")),
            ("auth.example.com", String::from("auth.example.test")),
            ("127.0.0.1:8000", sessiond.to_string()),
            ("127.0.0.1:3000", app.to_string()),
        ],
    );
    start_nginx_site(&site, port)
}

/// nginx running `site` (the text of a deploy file, its names and addresses
/// replaced, listening on `port`) inside the same minimal main
/// configuration.
pub fn start_nginx_site(site: &str, port: u16) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    std::fs::write(dir.path().join("sessiond.conf"), site).unwrap();
    let main = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {root}/nginx.pid;\n\
         error_log {root}/error.log info;\nevents {{ worker_connections 256; }}\n\
         http {{\n    access_log {root}/access.log;\n    client_body_temp_path {root}/client_body;\n\
         \x20   proxy_temp_path {root}/proxy;\n    fastcgi_temp_path {root}/fastcgi;\n\
         \x20   uwsgi_temp_path {root}/uwsgi;\n    scgi_temp_path {root}/scgi;\n\
         \x20   include {root}/sessiond.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let child = Command::new(NGINX)
        .args(["-p", &format!("{root}/"), "-c", &format!("{root}/nginx.conf"), "-e"])
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    Proxy { child, port, dir, log: "error.log" }.wait_until_listening()
}

/// Caddy running `deploy/Caddyfile`, with a global block that turns off
/// automatic HTTPS and the admin endpoint, its data and config in the temp dir.
pub fn start_caddy(sessiond: SocketAddr, app: SocketAddr, port: u16) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let site = deploy_file(
        "Caddyfile",
        &[
            ("app.example.com {", format!("http://app.example.test:{port} {{")),
            ("auth.example.com {", format!("http://auth.example.test:{port} {{")),
            ("127.0.0.1:8000", sessiond.to_string()),
            ("127.0.0.1:3000", app.to_string()),
        ],
    );
    let config =
        format!("{{\n\tauto_https off\n\tadmin off\n\tdefault_bind 127.0.0.1\n}}\n\n{site}");
    std::fs::write(dir.path().join("Caddyfile"), config).unwrap();
    let log_file = std::fs::File::create(dir.path().join("caddy.log")).unwrap();
    let child = Command::new(CADDY)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.path().join("Caddyfile"))
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("start caddy");
    Proxy { child, port, dir, log: "caddy.log" }.wait_until_listening()
}

/// One request to the proxy with this `Host`.
pub fn send(
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_to_host(([127, 0, 0, 1], port).into(), host, method, path, headers, body)
}

pub fn post_form(
    port: u16,
    host: &str,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Response {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    send(port, host, "POST", path, &all, body.as_bytes())
}

/// sessiond set up for a proxy on `port`: public URL and cookie domain
/// under `example.test`, a `deny` and a `bypass` rule for the app.
pub fn sessiond_behind(port: u16) -> TestServer {
    let public = format!("http://auth.example.test:{port}");
    let server = TestServer::start_with(&[
        ("SESSIOND_PUBLIC_URL", &public),
        ("DJANGO_SESSION_COOKIE_DOMAIN", "example.test"),
        ("SESSIOND_TRUST_PROXY_HEADERS", "true"),
    ]);
    server.create_user("alice", "alice-password", Role::User);
    let conn = server.conn();
    for (path, policy) in [("/secret", "deny"), ("/public", "bypass")] {
        access_rules::add(&conn, &NewRule::parse("app.example.test", Some(path), policy).unwrap())
            .unwrap();
    }
    server
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
}

/// The headers the app saw, from its echo.
fn seen(response: &Response) -> BTreeMap<String, Vec<String>> {
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_value(response.json()["headers"].clone()).unwrap()
}

/// What a new user does with the README's configuration: open the app, sign
/// in, use it, hit a closed path, sign out; then an admin ends the session.
fn walk_through(kind: Kind) {
    let port = free_port();
    let server = sessiond_behind(port);
    let app = EchoApp::start();
    let proxy = match kind {
        Kind::Nginx => start_nginx(server.addr, app.addr, port),
        Kind::Caddy => start_caddy(server.addr, app.addr, port),
    };
    let app_host = format!("app.example.test:{port}");
    let auth_host = format!("auth.example.test:{port}");
    let public = format!("http://{auth_host}");
    let app_url = format!("http://{app_host}/page?x=1");
    let login_url = format!(
        "{public}/login?next={}",
        form_urlencoded::byte_serialize(app_url.as_bytes()).collect::<String>()
    );
    let navigation = [("Accept", HTML)];

    // Anonymous: sent to the sign-in page, which is served through the proxy.
    let first = send(port, &app_host, "GET", "/page?x=1", &navigation, b"");
    assert_eq!(first.status, 302, "{kind:?}: {}\n{}", first.body, proxy.log());
    assert_eq!(first.header("location"), Some(login_url.as_str()));
    let form = send(port, &auth_host, "GET", &login_url[public.len()..], &navigation, b"");
    assert_eq!(form.status, 200);
    assert!(form.body.contains(&format!(r#"name="next" value="{app_url}""#)), "{}", form.body);

    // Sign in (a same-origin form post through the proxy): back at the app.
    let fields =
        [("username", "alice"), ("password", "alice-password"), ("next", app_url.as_str())];
    let signed_in = post_form(port, &auth_host, "/login", &fields, &[("Origin", &public)]);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.header("location"), Some(app_url.as_str()));
    assert!(signed_in.set_cookie("sessionid").unwrap().contains("Domain=example.test"));
    let cookie = format!("sessionid={}", signed_in.cookie_value("sessionid").unwrap());

    // The app sees who signed in, never what the client forged.
    let forged = [
        ("Cookie", cookie.as_str()),
        ("Accept", HTML),
        ("Remote-User", "mallory"),
        ("Remote-Groups", "admin,manager,user"),
        ("Remote-Email", "mallory@evil.test"),
        ("Remote_User", "mallory"),
    ];
    let page = send(port, &app_host, "GET", "/page?x=1", &forged, b"");
    let headers = seen(&page);
    assert_eq!(headers["remote-user"], ["alice"], "{headers:?}");
    assert_eq!(headers["remote-groups"], ["user"]);
    assert!(!page.body.contains("mallory"), "{}", page.body);
    if kind == Kind::Nginx {
        // nginx passes the sliding cookie on (auth_request_set + add_header).
        let passed = page.set_cookie("sessionid").expect("nginx passes the Set-Cookie on");
        assert!(passed.starts_with(&cookie), "{passed}");
    }

    // A `deny` path: 403, signed in or not.
    assert_eq!(send(port, &app_host, "GET", "/secret/x", &forged, b"").status, 403);
    assert_eq!(send(port, &app_host, "GET", "/secret", &navigation, b"").status, 403);
    // Normalization holds through the proxy too.
    let sneaky = send(port, &app_host, "GET", "/public/../secret", &forged, b"");
    assert_ne!(sneaky.status, 200, "{}", sneaky.body);

    // `bypass`, anonymous: the app gets no Remote-* at all, neither forged
    // nor a placeholder.
    let anonymous_forged =
        [("Remote-User", "mallory"), ("Remote-Groups", "admin"), ("Remote-Email", "m@evil.test")];
    let open = seen(&send(port, &app_host, "GET", "/public/x", &anonymous_forged, b""));
    for name in ["remote-user", "remote-groups", "remote-email"] {
        assert!(!open.contains_key(name), "{kind:?}: {name} reached the app: {open:?}");
    }

    // Sign out through the proxy: the next app request goes to sign-in.
    let out =
        post_form(port, &auth_host, "/logout", &[], &[("Cookie", &cookie), ("Origin", &public)]);
    assert_eq!(out.status, 303);
    let after = send(port, &app_host, "GET", "/page?x=1", &forged, b"");
    assert_eq!(after.status, 302);
    assert_eq!(after.header("location"), Some(login_url.as_str()));

    // An admin ends the user's sessions with the CLI: locked out at once.
    let again = post_form(port, &auth_host, "/login", &fields, &[("Origin", &public)]);
    let cookie = format!("sessionid={}", again.cookie_value("sessionid").unwrap());
    let with_cookie = [("Cookie", cookie.as_str()), ("Accept", HTML)];
    assert_eq!(send(port, &app_host, "GET", "/page", &with_cookie, b"").status, 200);
    let db = server.db_path.to_str().unwrap();
    Cli::new(server.dir.path()).args(&["--db", db, "sessions", "end-user", "alice"]).run();
    let locked_out = send(port, &app_host, "GET", "/page", &with_cookie, b"");
    assert_eq!(locked_out.status, 302);
    drop(proxy);
}

#[test]
fn nginx_auth_request_with_the_readme_configuration() {
    if !installed(NGINX, "nginx", "proxies::nginx_auth_request_with_the_readme_configuration") {
        return;
    }
    walk_through(Kind::Nginx);
}

#[test]
fn caddy_forward_auth_with_the_readme_configuration() {
    if !installed(CADDY, "caddy", "proxies::caddy_forward_auth_with_the_readme_configuration") {
        return;
    }
    walk_through(Kind::Caddy);
}

/// Traefik is not packaged here, so its side of the contract is sent as
/// Traefik sends it (`forwardAuth` asks with GET, the original request in
/// `X-Forwarded-*`, the original headers copied) and the answers checked:
/// Traefik passes a non-2xx answer to the client unchanged (status,
/// `Location`, body) and copies `authResponseHeaders` from a 2xx.
#[test]
fn traefik_forward_auth_contract() {
    let port = 443;
    let server = sessiond_behind(port);
    let traefik = |uri: &str, method: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![
            ("X-Forwarded-Method", method),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.test"),
            ("X-Forwarded-Uri", uri),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Server", "traefik-1"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Real-Ip", "203.0.113.9"),
            ("User-Agent", "Mozilla/5.0"),
        ];
        headers.extend_from_slice(extra);
        request(server.addr, "GET", "/auth/forward", &headers, b"")
    };
    let redirect = traefik("/page?x=1", "GET", &[("Accept", HTML)]);
    assert_eq!(redirect.status, 302);
    assert_eq!(
        redirect.header("location"),
        Some(
            "http://auth.example.test:443/login?next=https%3A%2F%2Fapp.example.test%2Fpage%3Fx%3D1"
        )
    );
    let api = traefik("/api/items", "POST", &[("Accept", HTML)]);
    assert_eq!(api.status, 401);
    assert_eq!(api.json()["extensions"]["code"], "AuthenticationInvalid");
    assert_eq!(traefik("/secret", "GET", &[]).status, 403);
    let key = server.login("alice", "alice-password");
    let cookie = format!("sessionid={key}");
    let allowed = traefik("/page", "GET", &[("Cookie", &cookie)]);
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("remote-user"), Some("alice"));
    assert_eq!(allowed.header("remote-groups"), Some("user"));
    let open = traefik("/public", "GET", &[]);
    assert_eq!((open.status, open.header("remote-user")), (200, None));
    // The file names the middleware, the endpoint and the copied headers.
    let file = deploy_file("traefik.yml", &[]);
    for needle in [
        "forwardAuth:",
        "address: \"http://127.0.0.1:8000/auth/forward\"",
        "trustForwardHeader: false",
        "authResponseHeaders:",
        "- Remote-User",
        "- Remote-Email",
        "- Remote-Groups",
        "- sessiond",
    ] {
        assert!(file.contains(needle), "deploy/traefik.yml lacks {needle}");
    }
}

/// The README shows each deploy file whole and unchanged, so the text people
/// copy is the text these tests run.
#[test]
fn the_readme_shows_the_deploy_files_as_they_are() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("## Protecting other applications")
        .nth(1)
        .expect("the README has a section `Protecting other applications`");
    for (file, fence) in
        [("nginx.conf", "nginx"), ("Caddyfile", "caddyfile"), ("traefik.yml", "yaml")]
    {
        let text = std::fs::read_to_string(root.join("deploy").join(file)).unwrap();
        let block = format!("```{fence}\n{text}```");
        assert!(
            section.contains(&block),
            "the README's block for deploy/{file} differs from the file"
        );
    }
}
