//! Child processes' output: copied to a log file line by line, with the
//! readiness line they print signalled as it passes.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How long any process may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for a line matching `ready` on a child's output; keeps copying
/// every line to `log` meanwhile and afterwards.
pub fn watch_output(
    stream: impl std::io::Read + Send + 'static,
    log: PathBuf,
    ready: impl Fn(&str) -> bool + Send + 'static,
) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .ok();
        let mut signalled = false;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if !signalled && ready(&line) {
                signalled = true;
                let _ = tx.send(());
            }
        }
    });
    rx
}
