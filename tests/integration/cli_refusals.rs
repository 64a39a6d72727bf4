//! The small refusals and warnings of issue 14, each from the built binary:
//! a value outside a fixed set exits 1 with one line (SPEC 1); a bad `.env`
//! line is named without its value and with at most a few dozen characters
//! of its key; `config set` follows a symbolic link and holds a lock for its
//! read-modify-write; `serve` warns about a `.env` others can read.

use std::path::Path;
use std::time::Duration;

use crate::support::ServeProcess;

/// Runs the built binary in `dir` and returns its raw output, for the tests
/// of issue 14 that look at the exact status and stderr themselves (its
/// length, what it must not contain). The environment is the test's minus
/// every `DJANGO_*` and `SESSIOND_*` variable, plus `env`; stdin is empty.
pub fn run_cli(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    _stdin: Option<&str>,
) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"));
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let named_env: Vec<(String, String)> =
        env.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    command.current_dir(dir).args(crate::support::on_the_engine(dir, &args, &named_env));
    for (key, _) in std::env::vars() {
        if key.starts_with("DJANGO_") || key.starts_with("SESSIOND_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.stdin(std::process::Stdio::null());
    let output = command.output().expect("run sessiond");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"), "it panicked");
    output
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn values_outside_a_fixed_set_are_refused_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["createuser", "--username", "eve", "--role", "superhero"], "--role"),
        (&["sessions", "list", "--kind", "cookie"], "--kind"),
        (&["sessions", "list", "--status", "asleep"], "--status"),
    ];
    for (args, flag) in cases {
        let output = run_cli(dir.path(), args, &[("DJANGO_SUPERUSER_PASSWORD", "pw")], None);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("`{flag}`")) && stderr.contains(args[args.len() - 1]));
        assert!(stderr.contains("expected one of"), "{stderr}");
    }
    assert!(!dir.path().join("data").exists(), "nothing was created");
    // The controls: a missing value and an unknown flag stay usage errors.
    let missing = run_cli(dir.path(), &["sessions", "list", "--kind"], &[], None);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr_of(&missing));
    let unknown = run_cli(dir.path(), &["sessions", "list", "--colour", "red"], &[], None);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn a_bad_env_line_is_named_without_its_value_or_more_than_a_few_dozen_characters() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cr3tPASTEDwithoutakey".repeat(200);
    let long_key = "K".repeat(500);
    for (text, must_show) in [
        (format!("DJANGO_SESSION_COOKIE_AGE=60\n{secret}\n"), "a line is not `KEY=value`"),
        (format!("{long_key}=\"unclosed {secret}\n"), "malformed value for `KKKK"),
    ] {
        std::fs::write(dir.path().join(".env"), &text).unwrap();
        let output = run_cli(dir.path(), &["config"], &[], None);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(must_show), "{stderr}");
        assert!(!stderr.contains("s3cr3t"), "never a value: {stderr}");
        assert!(stderr.len() < 200, "{} bytes: {stderr}", stderr.len());
    }
}

#[test]
fn an_oversized_env_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "A".repeat(20 * 1024 * 1024)).unwrap();
    let started = std::time::Instant::now();
    let output = run_cli(dir.path(), &["config"], &[], None);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("at most 1048576 bytes") && stderr.len() < 200, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn config_set_rewrites_the_target_of_a_symlinked_env_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("sessiond.env"), "# kept\nSESSIOND_JWT_LIFETIME=600\n").unwrap();
    std::os::unix::fs::symlink("conf/sessiond.env", dir.path().join(".env")).unwrap();

    let output =
        run_cli(dir.path(), &["config", "set", "DJANGO_SESSION_COOKIE_AGE", "100"], &[], None);
    assert!(output.status.success(), "{}", stderr_of(&output));

    let link = std::fs::symlink_metadata(dir.path().join(".env")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let text = std::fs::read_to_string(conf.join("sessiond.env")).unwrap();
    assert_eq!(text, "# kept\nSESSIOND_JWT_LIFETIME=600\nDJANGO_SESSION_COOKIE_AGE=100\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(conf.join("sessiond.env")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut names: Vec<_> =
        std::fs::read_dir(&conf).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec!["sessiond.env"], "the temporary file was in the target's folder");
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "`.env` and `conf`: {names:?}");
}

#[test]
fn config_set_waits_for_the_lock_of_another_writer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "SESSIOND_JWT_LIFETIME=600\n").unwrap();
    // Another `config set` holding the lock, as `env_file` takes it.
    let holder = std::fs::File::open(dir.path()).unwrap();
    holder.lock().unwrap();

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command.current_dir(dir.path()).args(["config", "set", "DJANGO_SESSION_COOKIE_AGE", "100"]);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "`config set` went ahead under the lock");
    assert_eq!(read(dir.path()), "SESSIOND_JWT_LIFETIME=600\n");

    holder.unlock().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(read(dir.path()), "SESSIOND_JWT_LIFETIME=600\nDJANGO_SESSION_COOKIE_AGE=100\n");
}

fn read(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(".env")).unwrap()
}

#[test]
fn two_config_sets_at_once_keep_both_changes() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        std::fs::write(dir.path().join(".env"), "# settings\n").unwrap();
        let children: Vec<_> =
            [("DJANGO_SESSION_COOKIE_AGE", "100"), ("SESSIOND_JWT_LIFETIME", "300")]
                .into_iter()
                .map(|(key, value)| {
                    std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"))
                        .current_dir(dir.path())
                        .args(["config", "set", key, value])
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let text = read(dir.path());
        assert!(
            text.contains("DJANGO_SESSION_COOKIE_AGE=100")
                && text.contains("SESSIOND_JWT_LIFETIME=300"),
            "round {round}: {text}"
        );
    }
}

#[test]
fn serve_warns_about_an_env_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false)] {
        let dir = tempfile::tempdir().unwrap();
        crate::support::prepare_database(dir.path());
        let env = dir.path().join(".env");
        std::fs::write(&env, "DJANGO_SESSION_COOKIE_AGE=600\n").unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut server = ServeProcess::start(dir.path(), &[]);
        let output = server.signal_and_wait("TERM");
        assert_eq!(
            output.contains("is readable by group or others"),
            warned,
            "mode {mode:o}: {output}"
        );
        assert!(!output.contains("DJANGO_SESSION_COOKIE_AGE=600\n#"), "no file content");
    }
}
