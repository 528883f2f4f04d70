//! `nines-bench status`: the status overview of N hosts, gathered from a real store and
//! rendered, timed over several runs.

/// Flags of `nines-bench status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hosts on the overview.
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Timed runs; the median and the slowest are reported.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Under a second at a tiny scale (50 hosts, 3 runs), to check that the benchmark works;
    /// overrides those two flags.
    #[arg(long)]
    quick: bool,
}

/// `nines-bench status`.
pub async fn main(mut args: Args) -> Result<(), crate::Failure> {
    if args.quick {
        args.hosts = 50;
        args.runs = 3;
    }
    if args.hosts == 0 || args.runs == 0 {
        return Err(crate::Failure::Usage(
            "--hosts and --runs must be at least 1".into(),
        ));
    }
    let f = nines_aggregator::http::status::bench::run(args.hosts, args.runs)
        .await
        .map_err(|e| crate::Failure::Run(e.to_string()))?;
    println!(
        "status overview, {} hosts, {} runs:\n  gathered from the store and rendered: median {:.2} ms, slowest {:.2} ms\n  rendered alone (a tenth with warnings): median {:.2} ms, slowest {:.2} ms\n  page: {} bytes",
        f.hosts, args.runs, f.full_ms.0, f.full_ms.1, f.render_ms.0, f.render_ms.1, f.bytes
    );
    Ok(())
}
