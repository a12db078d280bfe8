//! Checks of a command line's definition that every YAK binary runs in its
//! tests.

use std::collections::BTreeMap;

use clap::{ArgAction, Command};

/// Every flag of `command` and its subcommands (`--help` and `--version`
/// aside) that has no `YAK_*` environment variable of its own, in words;
/// empty when each has one. Call it on a built command
/// (`Command::build`), so that flattened flags are there.
pub fn flags_without_env(command: &Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk(command, command.get_name(), &mut missing);
    missing
}

fn walk(command: &Command, path: &str, missing: &mut Vec<String>) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for arg in command.get_arguments() {
        let help_or_version = matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        );
        if arg.is_positional() || help_or_version {
            continue;
        }
        let flag = format!("{path} --{}", arg.get_long().unwrap_or_default());
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            missing.push(format!("{flag}: no env"));
            continue;
        };
        if !env.starts_with("YAK_") {
            missing.push(format!("{flag}: {env} is not a YAK_* variable"));
        }
        if let Some(other) = seen.insert(env.to_owned(), flag.clone()) {
            missing.push(format!("{flag}: {env} is also {other}'s"));
        }
    }
    for sub in command.get_subcommands() {
        walk(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    #[test]
    fn a_flag_without_a_yak_variable_is_named() {
        let mut command = Command::new("x").subcommand(
            Command::new("run")
                .arg(Arg::new("a").long("a").env("YAK_A"))
                .arg(Arg::new("b").long("b"))
                .arg(Arg::new("c").long("c").env("HOME"))
                .arg(Arg::new("d").long("d").env("YAK_A")),
        );
        command.build();
        assert_eq!(
            super::flags_without_env(&command),
            [
                "x run --b: no env",
                "x run --c: HOME is not a YAK_* variable",
                "x run --d: YAK_A is also x run --a's",
            ]
        );
    }
}
