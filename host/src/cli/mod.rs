//! The `beaker` command line: `serve`, `gateway`, `openapi`, `asyncapi`,
//! `migrate`, `call`, `ledger`, `rules`, `completions`.

mod client;
mod ledger;
mod rules;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{DbArgs, GatewayCommandArgs, LogArgs, NatsArgs, ServeArgs};
use crate::gateway;
use crate::observe::telemetry;
use crate::startup::{self, GatewaySettings, ServeSettings};
use crate::store::DbConfig;

/// Beaker: an inventory service on NATS, with its business rules in a
/// WebAssembly component.
///
/// Every option can also be set through the environment variable shown
/// beside it.
#[derive(Debug, Parser)]
#[command(name = "beaker", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: answer stock.add, stock.remove and stock.get on NATS.
    ///
    /// Migrates the database first (unless --skip-migrations), loads the
    /// rules component, and serves until SIGINT or SIGTERM; then it stops
    /// taking requests, answers those in flight and exits 0.
    Serve(Box<ServeArgs>),
    /// Run the HTTP gateway: NATS request/reply, publish and subscribe over
    /// HTTP, shaped like the Synadia Cloud HTTP Gateway, plus the operator
    /// console (GET /) and the OpenAPI and AsyncAPI documents.
    ///
    /// Routes: POST /v1/nats/subjects/{subject} (request/reply),
    /// PUT /v1/nats/subjects/{subject} (publish), GET /v1/nats/subjects/{subject}
    /// (subscribe, server-sent events); GET /openapi.json and GET
    /// /asyncapi.json, which like the console need no token. Callers present a token
    /// (Authorization: Bearer <token>); without configured tokens the gateway
    /// refuses to start unless --gateway-allow-anonymous is given.
    ///
    /// Example: BEAKER_GATEWAY_TOKENS=s3cret beaker gateway
    Gateway(Box<GatewayCommandArgs>),
    /// Print the gateway's OpenAPI 3.1 document (generated from schemas/).
    Openapi,
    /// Print the AsyncAPI 3.0 document of the NATS side (generated from schemas/).
    ///
    /// The stock.* requests and their replies, the low-stock events and
    /// the JetStream stream that keeps them.
    Asyncapi,
    /// Create the database if needed and apply the migrations, then exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Send one request and print the reply: the body on stdout, the
    /// service's error headers on stderr.
    ///
    /// Exit status: 0 for a successful reply, 1 for an error reply, 3 when
    /// no reply came (no service, timeout, no NATS).
    ///
    /// Example: beaker call stock.add '{"product-sku":"widget-1","quantity":5}'
    ///
    /// The body from a file or a pipe: beaker call stock.add - < request.json
    Call {
        /// Subject to send to, e.g. stock.get.
        subject: String,
        /// Request body, sent as is (empty if omitted); `-` reads it from
        /// stdin, and an empty stdin is refused.
        #[arg(default_value = "")]
        body: String,
        /// Header to send, as NAME:VALUE (repeatable).
        #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// How long to wait for the reply, in milliseconds.
        #[arg(long = "timeout-ms", default_value_t = 5000)]
        timeout_ms: u64,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Check, deploy, shadow, promote and roll back the rules component.
    #[command(subcommand)]
    Rules(Box<rules::RulesCommand>),
    /// Print a product's ledger: every applied change, oldest first.
    ///
    /// Read from the database when its URL is given (--database-url or
    /// DATABASE_URL); otherwise asked of the running service over NATS
    /// (stock.history), which needs no database password.
    ///
    /// Exit status: 0 printed, 1 the database or the service refused, 3 no
    /// answer (no service, timeout, no NATS).
    Ledger {
        /// The product's SKU.
        sku: String,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Postgres URL: read the ledger from the database itself.
        #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Print the shell completion script for bash, zsh or fish (elvish and
    /// powershell too).
    ///
    /// Save it where the shell looks for completions:
    ///
    /// bash: beaker completions bash > ~/.local/share/bash-completion/completions/beaker
    ///
    /// zsh: beaker completions zsh > ~/.zfunc/_beaker (with ~/.zfunc in fpath, before compinit)
    ///
    /// fish: beaker completions fish > ~/.config/fish/completions/beaker.fish
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// Runs the parsed command; errors are printed here, once, for a person.
/// Sets up logging (and, for `serve`, traces and metrics) first.
pub async fn run(cli: Cli) -> ExitCode {
    let format = cli.log.format.into();
    match cli.command {
        Command::Serve(args) => {
            let settings = match ServeSettings::try_from(&*args) {
                Ok(settings) => settings,
                Err(e) => return refused_settings(&e),
            };
            let telemetry = match telemetry::init_service(format, "info,async_nats=warn,sqlx=warn")
            {
                Ok(telemetry) => Arc::new(telemetry),
                Err(e) => {
                    eprintln!("beaker: {e}");
                    return ExitCode::from(1);
                }
            };
            match startup::serve(settings, telemetry).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "beaker serve stopped");
                    eprintln!("beaker: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Gateway(args) => {
            let settings = match GatewaySettings::try_from(&*args) {
                Ok(settings) => settings,
                Err(e) => return refused_settings(&e),
            };
            telemetry::init_logging(format, "info,async_nats=warn");
            match startup::run_gateway(settings).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "beaker gateway stopped");
                    eprintln!("beaker: {e}");
                    ExitCode::from(1)
                }
            }
        }
        command => {
            // The client commands log only what goes wrong.
            telemetry::init_logging(format, "warn");
            run_client(command).await
        }
    }
}

/// Settings that cannot be used stop the start before anything runs.
fn refused_settings(error: &crate::config::ConfigError) -> ExitCode {
    eprintln!("beaker: {error}");
    ExitCode::from(1)
}

async fn run_client(command: Command) -> ExitCode {
    match command {
        // `run` serves both; nothing else reaches here with them.
        Command::Serve(_) | Command::Gateway(_) => ExitCode::from(2),
        Command::Openapi => print("openapi", &gateway::openapi::document_bytes()),
        Command::Asyncapi => print("asyncapi", &gateway::asyncapi::document_bytes()),
        Command::Completions { shell } => print("completions", &completions(shell)),
        Command::Migrate { db } => client::migrate(&db).await,
        Command::Call {
            subject,
            body,
            headers,
            timeout_ms,
            nats,
        } => client::call(&nats, &subject, &body, &headers, timeout_ms).await,
        Command::Ledger {
            sku,
            json,
            database_url,
            nats,
        } => {
            let source = match database_url {
                Some(url) => ledger::Source::Database(DbConfig::for_client(url)),
                None => ledger::Source::Service(nats),
            };
            ledger::ledger(source, &sku, json).await
        }
        Command::Rules(command) => rules::run(*command).await,
    }
}

/// Writes a generated text to stdout; a closed pipe is an error, not a
/// panic.
fn print(command: &str, text: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beaker {command}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The completion script, generated from the same definition as the
/// parser, so it never offers a command or option that is not there.
/// Written to memory first: the generator panics on a failed write.
fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "beaker", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command parses with its defaults alone. Two settings
    /// flattened into one command under the same field name share an id;
    /// clap only notices in debug builds, and the release binary then
    /// refuses to start ("required argument not provided").
    #[test]
    fn every_command_parses_with_its_defaults() {
        for line in [
            &["beaker", "serve"][..],
            &["beaker", "gateway"],
            &["beaker", "openapi"],
            &["beaker", "asyncapi"],
            &["beaker", "completions", "bash"],
            &["beaker", "migrate"],
            &["beaker", "call", "stock.get", "{}"],
            &["beaker", "ledger", "widget-1"],
            &["beaker", "rules", "check", "rules.wasm"],
            &["beaker", "rules", "deploy", "rules.wasm"],
            &["beaker", "rules", "status"],
            &[
                "beaker", "rules", "check", "r.wasm", "--cases", "c", "--format", "json",
            ],
            &["beaker", "rules", "rollback"],
            &["beaker", "rules", "rollback", "--to", "file"],
            &["beaker", "rules", "history"],
            &[
                "beaker",
                "rules",
                "replay",
                "r.wasm",
                "--database-url",
                "postgres://x/y",
            ],
            &["beaker", "rules", "promote"],
            &["beaker", "rules", "drop-shadow"],
            &["beaker", "rules", "new", "my-rules"],
            &["beaker", "rules", "wit"],
        ] {
            if let Err(e) = Cli::try_parse_from(line) {
                panic!("{line:?}: {e}");
            }
        }
    }

    /// `beaker serve`'s defaults make valid settings.
    #[test]
    fn the_defaults_are_valid_settings() {
        let cli = Cli::try_parse_from(["beaker", "serve"]).unwrap_or_else(|e| panic!("{e}"));
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        if let Err(e) = ServeSettings::try_from(&*args) {
            panic!("{e}");
        }
    }
}
