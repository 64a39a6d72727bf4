//! `sessiond access`: list, add (append) and remove the forward-auth rules
//! (SPEC 9).
//!
//! `list` prints one rule a line (number, pattern, path or `-`, policy), or
//! with `--json` one array. `add` and `remove` validate everything first and
//! change nothing when refusing (status 1 through `main`). The rules and
//! their validation live in `access_rules`; this module only parses what was
//! typed and prints.

use std::io::Write;

use crate::access_rules::{self, NewRule};
use crate::cli::AccessAction;
use crate::commands::open_db;
use crate::settings::Settings;

pub fn run(settings: &Settings, action: AccessAction) -> anyhow::Result<()> {
    match action {
        AccessAction::List { json } => list(settings, json),
        AccessAction::Add { pattern, policy, path } => {
            add(settings, &pattern, &policy, path.as_deref())
        }
        AccessAction::Remove { number } => remove(settings, &number),
    }
}

/// One rule in the shape `list --json` prints.
#[derive(serde::Serialize)]
struct Item<'a> {
    number: usize,
    pattern: String,
    path: Option<&'a str>,
    policy: &'static str,
}

fn list(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let conn = open_db(settings)?;
    let rules = access_rules::list(&conn)?;
    let mut out = std::io::stdout().lock();
    if json {
        let items: Vec<Item> = rules
            .iter()
            .map(|rule| Item {
                number: rule.number,
                pattern: rule.pattern.to_string(),
                path: rule.path.as_ref().map(|path| path.as_str()),
                policy: rule.policy.as_str(),
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &items)?;
        writeln!(out)?;
        return Ok(());
    }
    for rule in &rules {
        writeln!(out, "{}", line(rule))?;
    }
    if rules.is_empty() {
        eprintln!(
            "no access rules: every request gets the default policy `{}` (SESSIOND_ACCESS_DEFAULT)",
            settings.access_default
        );
    }
    Ok(())
}

fn line(rule: &access_rules::Rule) -> String {
    let path = rule.path.as_ref().map_or("-", |path| path.as_str());
    format!("{:<3} {:<30} {:<20} {}", rule.number, rule.pattern, path, rule.policy)
}

fn add(settings: &Settings, pattern: &str, policy: &str, path: Option<&str>) -> anyhow::Result<()> {
    let rule = NewRule::parse(pattern, path, policy).map_err(anyhow::Error::msg)?;
    let conn = open_db(settings)?;
    let added = access_rules::add(&conn, &rule)?;
    println!("Added access rule {}.", added.number);
    println!("{}", line(&added));
    Ok(())
}

fn remove(settings: &Settings, number: &str) -> anyhow::Result<()> {
    let shown: String = number.chars().filter(|c| !c.is_control()).take(40).collect();
    let parsed = number.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
        anyhow::anyhow!("invalid rule number `{shown}`: expected a number from `access list`")
    })?;
    let conn = open_db(settings)?;
    match access_rules::remove_number(&conn, parsed)? {
        Some(rule) => {
            println!("Removed access rule {}.", rule.number);
            println!("{}", line(&rule));
            Ok(())
        }
        None => anyhow::bail!(
            "no access rule number `{parsed}` (there are {})",
            access_rules::list(&conn)?.len()
        ),
    }
}
