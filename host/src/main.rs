use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = beaker::cli::Cli::parse();
    // The service logs what it does; the client commands only what goes wrong.
    let default_filter = match cli.command {
        beaker::cli::Command::Serve(_) => "info,async_nats=warn,sqlx=warn",
        _ => "warn",
    };
    beaker::telemetry::init_logging(cli.log.format, default_filter);
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
    runtime.block_on(beaker::cli::run(cli))
}
