//! `nines-aggregator token`: API tokens.

use std::process::ExitCode;

/// `token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Print a new random API token and the [[api.tokens]] entry holding its hash.
    New {
        /// Who will hold it.
        #[arg(long, default_value = "operator")]
        name: String,
        /// Its role: read or admin.
        #[arg(long, default_value = "read", value_parser = ["read", "admin"])]
        role: String,
    },
}

/// Runs a `token` subcommand.
pub fn main(cmd: TokenCommand) -> ExitCode {
    let TokenCommand::New { name, role } = cmd;
    let token = match crate::util::random::api_token() {
        Ok(t) => t,
        Err(e) => return super::fail("token new", e),
    };
    println!("token: {token}");
    println!();
    println!("# add to the aggregator configuration:");
    println!("[[api.tokens]]");
    println!("name = {name:?}");
    println!("role = {role:?}");
    println!("sha256 = \"{}\"", crate::http::token_hash(&token));
    ExitCode::SUCCESS
}
