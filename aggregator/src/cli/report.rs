//! `nines-aggregator report`: availability and capacity reports read from a running
//! aggregator's API, for cron and auditors.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::report;

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Availability of every service (or one) over a period. Exit status: 0 every target
    /// met, 1 a target missed, 3 unknown (a service not monitored in the period), 2 no report
    /// (bad arguments, token, network, API).
    Availability(ReportArgs),
    /// Series whose least-squares forecast reaches a threshold within a horizon, on every
    /// host. Exit status: 0 none does, 1 one does, 3 unknown (no such series, or too little
    /// data for a forecast), 2 no report.
    Capacity(CapacityArgs),
}

#[derive(Debug, clap::Args)]
pub struct CapacityArgs {
    /// Base URL of the aggregator's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:7480")]
    url: String,
    /// File holding an API token (read role is enough); mode 0600 or stricter.
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// PEM CA certificates to trust for an https URL instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The metric forecast.
    #[arg(long, default_value = "filesystem_used_ratio")]
    name: String,
    /// Only series with this label (k=v); repeatable.
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// The level that matters.
    #[arg(long, default_value_t = 0.9)]
    threshold: f64,
    /// How far back the line is fitted.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    window: std::time::Duration,
    /// How far ahead it looks.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    horizon: std::time::Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: report::Format,
    /// Limit for the whole request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Base URL of the aggregator's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:7480")]
    url: String,
    /// File holding an API token (read role is enough); mode 0600 or stricter.
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// PEM CA certificates to trust for an https URL instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// last-month, last-week (ISO, Monday to Sunday), YYYY-MM, or FROM..TO (RFC 3339 or
    /// YYYY-MM-DD; a date as TO includes that day). In UTC.
    #[arg(long, default_value = "last-month")]
    period: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: report::Format,
    /// Report on this service only.
    #[arg(long)]
    service: Option<String>,
    /// Limit for the whole request.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

/// Runs a `report` subcommand.
pub fn main(cmd: ReportCommand) -> ExitCode {
    let runtime = || super::runtime().map_err(|_| ExitCode::from(report::EXIT_ERROR));
    match cmd {
        ReportCommand::Capacity(args) => {
            let opts = report::capacity::Options {
                url: args.url,
                token_file: args.token_file,
                ca: args.ca,
                name: args.name,
                labels: args.labels,
                threshold: args.threshold,
                window: args.window,
                horizon: args.horizon,
                format: args.format,
                timeout: args.timeout,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let mut out = std::io::stdout().lock();
            match rt.block_on(report::capacity::run(&opts, &mut out)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("nines-aggregator: report capacity: {e}");
                    ExitCode::from(report::EXIT_ERROR)
                }
            }
        }
        ReportCommand::Availability(args) => {
            let opts = report::Options {
                url: args.url,
                token_file: args.token_file,
                ca: args.ca,
                period: args.period,
                format: args.format,
                service: args.service,
                timeout: args.timeout,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let mut out = std::io::stdout().lock();
            match rt.block_on(report::run(&opts, jiff::Timestamp::now(), &mut out)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("nines-aggregator: report availability: {e}");
                    ExitCode::from(report::EXIT_ERROR)
                }
            }
        }
    }
}
