//! Tidy: the invariants of ARCHITECTURE.md, checked over the source tree so
//! that breaking one fails `cargo test` (in the manner of rust-analyzer's
//! `xtask/src/tidy.rs`).
//!
//! Each check reads the files as text; none compiles or runs anything. The
//! checks are deliberately simple (a line-based look at code with comments
//! and test modules stripped), and each names the file and line it objects
//! to. `planted_violations_are_found` keeps the checks themselves honest:
//! every check must object to a small file written to break it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the wall clock may be read: the edges of the program.
const CLOCK_EDGES: &[&str] = &[
    "src/clock.rs",
    "src/http/router.rs",
    "src/schedule.rs",
    "src/startup.rs",
    "src/commands/",
    "src/main.rs",
];

/// The only file that may name tiny_http.
const TINY_HTTP_FILE: &str = "src/http/server.rs";

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let problems: Vec<String> = rust_files(&["src", "tests", "benches"])
        .iter()
        .filter(|file| !opens_with_module_doc(&file.text))
        .map(|file| format!("{}: does not open with a `//!` paragraph", file.path))
        .collect();
    assert_no_problems(&problems);
}

#[test]
fn no_test_is_ignored() {
    assert_no_problems(&ignored_tests(&rust_files(&["src", "tests", "benches"])));
}

#[test]
fn only_the_server_knows_tiny_http() {
    assert_no_problems(&tiny_http_outside_server(&rust_files(&["src"])));
}

#[test]
fn the_clock_is_read_only_at_the_edges() {
    assert_no_problems(&clock_reads_inside(&rust_files(&["src"])));
}

#[test]
fn sql_is_never_formatted() {
    assert_no_problems(&formatted_sql(&rust_files(&["src"])));
}

#[test]
fn commands_print_without_panicking() {
    assert_no_problems(&panicking_prints(&rust_files(&["src"])));
}

#[test]
fn modules_import_each_other_without_circles() {
    assert_no_problems(&import_circles(&rust_files(&["src"])));
}

#[test]
fn planted_violations_are_found() {
    let file = |path: &str, text: &str| SourceFile { path: path.to_owned(), text: text.to_owned() };
    assert!(!opens_with_module_doc("use std::fs;\n"));
    assert!(opens_with_module_doc("//! What this owns.\n\nuse std::fs;\n"));
    let ignored = file("tests/x.rs", "//! x\n#[test]\n#[ignore]\nfn slow() {}\n");
    assert_eq!(ignored_tests(&[ignored]).len(), 1);
    let named = file("src/http/pages.rs", "//! x\nfn f(r: tiny_http::Request) {}\n");
    let in_comment = file("src/http/pages.rs", "//! Nothing here knows tiny_http.\n");
    assert_eq!(tiny_http_outside_server(&[named, in_comment]).len(), 1);
    let clock =
        file("src/web_sessions.rs", "//! x\nfn f(app: &App) { let now = app.clock.now(); }\n");
    let edge =
        file("src/http/router.rs", "//! x\nfn f(app: &App) { let now = app.clock.now(); }\n");
    assert_eq!(clock_reads_inside(&[clock, edge]).len(), 1);
    let sql = file(
        "src/users.rs",
        "//! x\nfn f(c: &Connection, n: &str) { c.execute(&format!(\"DELETE FROM users WHERE name = '{n}'\"), []); }\n",
    );
    let message = file(
        "src/db.rs",
        "//! x\nfn f(p: &Path) -> String { format!(\"failed to open `{}`\", p.display()) }\n",
    );
    assert_eq!(formatted_sql(&[sql, message]).len(), 1);
    let print = file("src/commands/users.rs", "//! x\nfn f() { println!(\"done\"); }\n");
    assert_eq!(panicking_prints(&[print]).len(), 1);
    let circle = [
        file("src/a.rs", "//! x\nuse crate::b::Thing;\n"),
        file("src/b.rs", "//! x\npub struct Thing;\nfn f() { crate::a::g(); }\n"),
        file("src/c.rs", "//! x\nuse crate::a;\n"),
    ];
    assert_eq!(import_circles(&circle).len(), 1, "{:?}", import_circles(&circle));
}

// ---------------------------------------------------------------------------
// The checks, each returning one line per problem.

fn opens_with_module_doc(text: &str) -> bool {
    text.lines().find(|line| !line.trim().is_empty()).is_some_and(|line| line.starts_with("//!"))
}

fn ignored_tests(files: &[SourceFile]) -> Vec<String> {
    let attribute = ["#[", "ignore"].concat();
    problems_where(files, |_, line| line.trim_start().starts_with(&attribute), "an ignored test")
}

fn tiny_http_outside_server(files: &[SourceFile]) -> Vec<String> {
    let name = ["tiny", "_http"].concat();
    let outside: Vec<SourceFile> =
        files.iter().filter(|file| file.path != TINY_HTTP_FILE).cloned().collect();
    problems_where(&outside, |_, line| line.contains(&name), "names tiny_http outside the server")
}

fn clock_reads_inside(files: &[SourceFile]) -> Vec<String> {
    let reads = [
        [".clock", ".now()"].concat(),
        ["System", "Clock"].concat(),
        ["Utc::", "now("].concat(),
        ["Local::", "now("].concat(),
        ["SystemTime::", "now("].concat(),
    ];
    let inside: Vec<SourceFile> = files
        .iter()
        .filter(|file| !CLOCK_EDGES.iter().any(|edge| file.path.starts_with(edge)))
        .cloned()
        .collect();
    problems_where(
        &inside,
        |_, line| reads.iter().any(|read| line.contains(read.as_str())),
        "reads the clock below the edges (take `now` as an argument)",
    )
}

fn formatted_sql(files: &[SourceFile]) -> Vec<String> {
    let keywords = ["SELECT ", "INSERT ", "UPDATE ", "DELETE ", "PRAGMA ", "CREATE ", " WHERE "];
    let format = ["format", "!("].concat();
    problems_where(
        files,
        |_, line| {
            line.split(&format).skip(1).any(|after| {
                let literal = after.split('"').nth(1).unwrap_or("");
                keywords.iter().any(|keyword| literal.contains(keyword))
            })
        },
        "formats SQL (use a literal statement with `?N` parameters)",
    )
}

fn panicking_prints(files: &[SourceFile]) -> Vec<String> {
    let print = ["print", "ln!("].concat();
    problems_where(
        files,
        |_, line| line.contains(&print) && !line.contains(&format!("e{print}")),
        "prints with `println!`, which panics on a closed stdout (use `say!`)",
    )
}

/// Cycles in the graph of `crate::` references between modules (a file is
/// a module; `mod.rs` is its folder's).
fn import_circles(files: &[SourceFile]) -> Vec<String> {
    let modules: BTreeSet<String> = files.iter().map(|file| module_of(&file.path)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = module_of(&file.path);
        // One string, so that a `use` group spread over lines reads whole.
        let code = code_lines(&file.text).collect::<Vec<_>>().join(" ");
        for target in crate_paths(&code) {
            let to = longest_module(&modules, &target);
            if let Some(to) = to
                && to != from
                && !from.starts_with(&format!("{to}::"))
            {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    for start in &modules {
        if let Some(circle) = circle_through(&edges, start)
            && reported.insert(circle.iter().cloned().collect::<BTreeSet<_>>())
        {
            problems.push(format!("import circle: {}", circle.join(" -> ")));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Helpers.

#[derive(Debug, Clone)]
struct SourceFile {
    /// Relative to the project root, with `/`.
    path: String,
    text: String,
}

fn rust_files(roots: &[&str]) -> Vec<SourceFile> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for root in roots {
        let mut stack = vec![base.join(root)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path: PathBuf = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read a source file");
                    let relative = path.strip_prefix(base).expect("under the root");
                    let path = relative.to_string_lossy().replace('\\', "/");
                    files.push(SourceFile { path, text });
                }
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The code of a file: comment lines dropped, and nothing from its
/// `#[cfg(test)]` module on (tests come last in every file).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
}

fn problems_where(
    files: &[SourceFile],
    is_problem: impl Fn(&SourceFile, &str) -> bool,
    what: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files {
        for (number, line) in file.text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || file_is_test_module_after(file, number) {
                continue;
            }
            if is_problem(file, line) {
                problems.push(format!("{}:{}: {what}: `{}`", file.path, number + 1, line.trim()));
            }
        }
    }
    problems
}

/// Whether line `number` of a `src/` file lies in its test module (tests may
/// read clocks and name anything); files under `tests/` are all tests.
fn file_is_test_module_after(file: &SourceFile, number: usize) -> bool {
    file.path.starts_with("src/")
        && file.text.lines().take(number + 1).any(|line| line.trim() == "#[cfg(test)]")
}

fn module_of(path: &str) -> String {
    let inner = path.trim_start_matches("src/").trim_end_matches(".rs");
    let inner = inner.trim_end_matches("/mod");
    match inner {
        "lib" | "main" => String::from("crate"),
        other => other.replace('/', "::"),
    }
}

/// Every `crate::a::b::c` path named in some code, without `crate::`; a
/// group (`crate::http::{account, admin}`) names each of its members.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (index, _) in code.match_indices("crate::") {
        let rest = &code[index + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let prefix = path.trim_end_matches(':');
        paths.push(prefix.to_owned());
        if let Some(group) = rest[path.len()..].strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for member in group.split(',') {
                let member = member.trim().trim_start_matches('{');
                if !member.is_empty() && member != "self" {
                    paths.push(format!("{prefix}::{member}"));
                }
            }
        }
    }
    paths
}

fn longest_module(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}

/// A cycle that starts and ends at `start`, if there is one.
fn circle_through(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if next == start {
                let mut circle = path.clone();
                circle.push(start.to_owned());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[track_caller]
fn assert_no_problems(problems: &[String]) {
    assert!(problems.is_empty(), "tidy found:\n{}", problems.join("\n"));
}
