use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = beaker::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("beaker: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let status = runtime.block_on(beaker::cli::run(cli));
    // Tasks cut off by the shutdown deadline are dropped here; a blocking
    // one (an exporter) gets a moment, not a veto over the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    status
}
