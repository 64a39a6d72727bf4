//! `sessiond access`: list, add (append) and remove the forward-auth rules
//! (SPEC 9).
//!
//! `list` prints one rule a line (number, pattern, path or `-`, policy), or
//! with `--json` one array. `add` and `remove` validate everything first and
//! change nothing when refusing (status 1 through `main`). The rules and
//! their validation live in `access_rules`; this module only parses what was
//! typed and prints.

use clap::Subcommand;

use crate::access_rules::{self, NewRule};
use crate::commands::open_db;
use crate::settings::Settings;

/// `sessiond access` actions.
#[derive(Debug, Subcommand)]
pub enum AccessAction {
    /// Print the rules in order, one a line
    List {
        /// Print one JSON array
        #[arg(long)]
        json: bool,
    },
    /// Append a rule: a host pattern and a policy (bypass, deny, user, manager, admin)
    Add {
        pattern: String,
        // Words are checked by `access_rules`, so that a bad one is a
        // refused value (status 1), not a usage error.
        policy: String,
        /// Only paths under this prefix (whole segments)
        #[arg(long, value_name = "PREFIX", allow_hyphen_values = true)]
        path: Option<String>,
    },
    /// Remove the rule with this number (as `access list` numbers them)
    Remove {
        #[arg(allow_hyphen_values = true)]
        number: String,
    },
}

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
        say!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    for rule in &rules {
        say!("{}", line(rule));
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
    say!("Added access rule {}.", added.number);
    say!("{}", line(&added));
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
            say!("Removed access rule {}.", rule.number);
            say!("{}", line(&rule));
            Ok(())
        }
        None => anyhow::bail!(
            "no access rule number `{parsed}` (there are {})",
            access_rules::list(&conn)?.len()
        ),
    }
}
