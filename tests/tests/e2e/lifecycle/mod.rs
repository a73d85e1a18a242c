//! Start-up, the command line, and graceful shutdown.
//!
//! One module per topic: the `serve` command's start and stop, the client
//! commands and their help, and the documented NATS permissions.

mod cli;
mod permissions;
mod serve;
