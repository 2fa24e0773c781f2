//! The internals of the `marginloss` command-line tool (not a stable API: the crate is a
//! library only so that the argument parser and the file readers can be fuzzed and tested
//! directly, from bytes).
//!
//! The error contract (see the README): every failure prints exactly one line on stderr,
//! starting `marginloss: `, and nothing on stdout; the exit status is 2 for a bad command
//! line (an unknown flag, a missing argument, a bad option *value* such as `--margin nan`)
//! and 1 for bad data (an unreadable, malformed or oversized file, a domain error).

mod batch;
mod bench;
mod check;
mod demo;
mod eval;
pub mod fail;
mod inputs;
pub mod io;
pub mod num;
mod plot;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Margin and hinge losses with exact PyTorch 2.15 semantics: evaluate them on your data,
/// with gradients, and catch misuse.
#[derive(Parser, Debug)]
#[command(name = "marginloss", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Walk through the HingeEmbeddingLoss-vs-hinge pitfall and the cosine-distance example.
    Demo,
    /// Evaluate a loss (and its gradients) on .npy/.csv files.
    Eval(Box<eval::EvalArgs>),
    /// Time the fused kernels on generated data, beside the machine's streaming bandwidth.
    Bench(bench::BenchArgs),
    /// Diagnose loss misuse in .npy/.csv data: findings with evidence and the fix.
    Check(Box<check::CheckArgs>),
    /// Draw losses (and gradients) against their scalar input, for y = +1 and y = -1, as SVG.
    Plot(plot::PlotArgs),
}

/// Why the command line did not parse into a [`Cli`]: what to print and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseExit {
    /// `--help` or `--version`: this text on stdout, exit 0.
    Info(String),
    /// A usage error: this single line (without the `marginloss: ` prefix) on stderr, exit 2.
    Usage(String),
}

/// Parses a command line (the first item is the program name), never panicking.
pub fn parse<I, T>(args: I) -> Result<Cli, ParseExit>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::error::ErrorKind;
    let e = match Cli::try_parse_from(args) {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Err(ParseExit::Info(e.render().to_string())),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Err(ParseExit::Usage(
            "missing subcommand: expected one of demo, eval, bench, check, plot (see marginloss --help)"
                .into(),
        )),
        _ => {
            // One line: clap's first line, without its "error: " prefix (a first line
            // ending in ':' continues on the indented lines below it).
            let text = e.render().to_string();
            let mut lines = text.lines();
            let mut first = lines.next().unwrap_or("invalid arguments").trim().to_string();
            if first.ends_with(':') {
                for more in lines.take_while(|l| l.starts_with(' ')) {
                    first = format!("{first} {}", more.trim());
                }
            }
            let first = first.trim_start_matches("error: ");
            Err(ParseExit::Usage(format!("{first} (see marginloss --help)")))
        }
    }
}

/// Runs a parsed command line; the exit status and the one-line error message, if any.
pub fn run(cli: &Cli) -> Result<(), fail::Fail> {
    match &cli.command {
        Command::Demo => demo::run(),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Check(args) => check::run(args),
        Command::Plot(args) => plot::run(args),
    }
}

/// `s` on one line: control characters (a newline in a file name or a CSV cell, …) are
/// written as escapes, so that an error is always exactly one line.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The whole program: parses `args`, runs the command, prints the outcome, and returns the
/// exit status (0 success, 1 bad data, 2 bad command line).
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use std::io::Write;
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // The batch losses take `--labels FILE`, which the other losses' `--labels pm1|01`
    // would refuse: `eval|check|bench NAME` with a batch loss has its own parser.
    if let Some(argv) = args.get(1..).filter(|a| batch::wants(a)) {
        return match batch::run(argv) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("marginloss: {}", one_line(&e.message));
                e.code
            }
        };
    }
    match parse(args) {
        Err(ParseExit::Info(text)) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            0
        }
        Err(ParseExit::Usage(line)) => {
            eprintln!("marginloss: {}", one_line(&line));
            2
        }
        Ok(cli) => match run(&cli) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("marginloss: {}", one_line(&e.message));
                e.code
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_newlines_and_other_control_characters() {
        assert_eq!(one_line("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(one_line("x ✓ y"), "x ✓ y");
    }

    #[test]
    fn bare_command_is_a_one_line_usage_error() {
        match parse(["marginloss"]) {
            Err(ParseExit::Usage(line)) => {
                assert!(line.contains("missing subcommand") && line.contains("--help"), "{line}");
                assert!(!line.contains('\n'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn help_is_info_for_stdout() {
        assert!(matches!(parse(["marginloss", "--help"]), Err(ParseExit::Info(t)) if t.contains("Usage")));
        assert!(matches!(parse(["marginloss", "eval", "--help"]), Err(ParseExit::Info(_))));
    }
}
