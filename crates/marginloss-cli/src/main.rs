//! The `marginloss` command-line tool.

fn main() {
    std::process::exit(marginloss_cli::main_with_args(std::env::args_os()));
}
