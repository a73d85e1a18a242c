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
    runtime.block_on(beaker::cli::run(cli))
}
