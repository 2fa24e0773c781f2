//! The `marginloss` command-line tool.

mod batch;
mod bench;
mod check;
mod demo;
mod eval;
mod fail;
mod inputs;
mod io;
mod plot;

use clap::{Parser, Subcommand};

/// Margin and hinge losses with exact PyTorch 2.15 semantics: evaluate them on your data,
/// with gradients, and catch misuse.
#[derive(Parser, Debug)]
#[command(name = "marginloss", version, about, long_about = None)]
struct Cli {
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

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if batch::wants(&argv) {
        if let Err(e) = batch::run(&argv) {
            eprintln!("marginloss: {e}");
            std::process::exit(e.code);
        }
        return;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                std::process::exit(2);
            }
            // One line: clap's first line, without its "error: " prefix.
            let text = e.render().to_string();
            // (A first line ending in ':' continues on the indented lines below it.)
            let mut lines = text.lines();
            let mut first = lines.next().unwrap_or("invalid arguments").to_string();
            if first.ends_with(':') {
                for more in lines.take_while(|l| l.starts_with(' ')) {
                    first = format!("{first} {}", more.trim());
                }
            }
            eprintln!("marginloss: {} (see marginloss --help)", first.trim_start_matches("error: "));
            std::process::exit(2);
        }
    };
    let result = match &cli.command {
        Command::Demo => demo::run(),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Check(args) => check::run(args),
        Command::Plot(args) => plot::run(args),
    };
    if let Err(e) = result {
        eprintln!("marginloss: {e}");
        std::process::exit(e.code);
    }
}
