//! `sessiond access list | add | remove` (SPEC 1 and 9), run as the built
//! binary against a database in a temp dir: rules are appended and numbered
//! in order, `--json` has `number`, `pattern`, `path` and `policy`, and
//! every refusal exits 1 with a one-line message and changes nothing.

use std::path::PathBuf;

use crate::support::{Cli, CliOutput};

struct Db {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        crate::support::open_db(&path);
        Db { dir, path }
    }

    /// `sessiond --db DB access ARGS`, expected to exit 0 with nothing on
    /// stderr unless told otherwise.
    fn cli(&self, args: &[&str]) -> Cli {
        Cli::new(self.dir.path()).args(&["--db", self.path.to_str().unwrap(), "access"]).args(args)
    }

    #[track_caller]
    fn run_ok(&self, args: &[&str]) -> String {
        self.cli(args).run()
    }

    /// A refusal: status 1, one `error: ` line naming `named`.
    #[track_caller]
    fn refused(&self, args: &[&str], named: &str) -> CliOutput {
        self.cli(args).status(1).stderr_contains(named).output()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.run_ok(&["list", "--json"])).unwrap()
    }
}

#[test]
fn rules_are_appended_listed_in_order_and_removed_by_number() {
    let db = Db::new();
    assert_eq!(db.json(), serde_json::json!([]));
    let added = db.run_ok(&["add", "wiki.example.com", "admin", "--path", "/admin/"]);
    assert!(added.contains("Added access rule 1."), "{added}");
    db.run_ok(&["add", "*.Example.com", "user"]);
    db.run_ok(&["add", "public.example.com", "bypass"]);
    assert_eq!(
        db.json(),
        serde_json::json!([
            {"number": 1, "pattern": "wiki.example.com", "path": "/admin", "policy": "admin"},
            {"number": 2, "pattern": "*.example.com", "path": null, "policy": "user"},
            {"number": 3, "pattern": "public.example.com", "path": null, "policy": "bypass"},
        ])
    );
    let text = db.run_ok(&["list"]);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        vec![
            vec!["1", "wiki.example.com", "/admin", "admin"],
            vec!["2", "*.example.com", "-", "user"],
            vec!["3", "public.example.com", "-", "bypass"],
        ]
    );
    // `access` alone lists too.
    assert_eq!(db.run_ok(&[]), text);

    let removed = db.run_ok(&["remove", "2"]);
    assert!(removed.contains("Removed access rule 2.") && removed.contains("*.example.com"));
    let numbers: Vec<(u64, String)> = db
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| (rule["number"].as_u64().unwrap(), rule["pattern"].as_str().unwrap().into()))
        .collect();
    assert_eq!(numbers, vec![(1, "wiki.example.com".into()), (2, "public.example.com".into())]);
}

#[test]
fn bad_patterns_paths_and_policies_are_refused_and_change_nothing() {
    let db = Db::new();
    db.run_ok(&["add", "wiki.example.com", "deny"]);
    let before = db.json();
    let refused: &[(&[&str], &str)] = &[
        (&["add", "wiki.example.com:8080", "user"], "wiki.example.com:8080"),
        (&["add", "wiki.example.com/admin", "user"], "wiki.example.com/admin"),
        (&["add", "wiki example.com", "user"], "wiki example.com"),
        (&["add", "wikí.example.com", "user"], "wikí.example.com"),
        (&["add", "*", "user"], "`*`"),
        (&["add", "*.", "user"], "`*.`"),
        (&["add", "wiki.example.com", "superhero"], "superhero"),
        (&["add", "wiki.example.com", "user", "--path", "admin"], "admin"),
        (&["add", "wiki.example.com", "user", "--path", "/a%zz"], "/a%zz"),
        (&["remove", "5"], "5"),
        (&["remove", "0"], "0"),
        (&["remove", "abc"], "abc"),
        (&["remove", "-1"], "-1"),
    ];
    for (args, named) in refused {
        let output = db.refused(args, named);
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(db.json(), before);
    // The control: the same rules with good values are accepted.
    db.run_ok(&["add", "wiki.example.com", "manager", "--path", "/admin"]);
    db.run_ok(&["remove", "1"]);
    assert_eq!(db.json()[0]["policy"], "manager");
}

#[test]
fn usage_errors_exit_2() {
    let db = Db::new();
    db.cli(&["add", "wiki.example.com"]).status(2).run();
    db.cli(&["frobnicate"]).status(2).run();
    db.cli(&["list", "--colour"]).status(2).run();
}
