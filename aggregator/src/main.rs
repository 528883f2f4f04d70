//! `nines-aggregator`: every subcommand lives in `cli/` (docs/design.md, "The map").

fn main() -> std::process::ExitCode {
    nines_aggregator::cli::main()
}
