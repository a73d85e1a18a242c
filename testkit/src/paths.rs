//! Where things are: the workspace, the binaries and components `make
//! build` makes, each test's output folder, free ports.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result};

/// The workspace root (this crate lives in `testkit/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `beaker` binary built in the same profile as this test.
pub fn beaker_bin() -> PathBuf {
    if let Ok(path) = std::env::var("BEAKER_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test binary> → target/<profile>/beaker
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("beaker")))
        .unwrap_or_else(|| workspace_root().join("target/release/beaker"));
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| refuse_stale_binary(&bin));
    bin
}

/// `cargo nextest run` rebuilds the tests but not the `beaker` binary they
/// start (`make test` builds both): fail loudly rather than test old code.
fn refuse_stale_binary(bin: &Path) {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                if meta.is_dir() {
                    newest(&entry.path())
                } else {
                    meta.modified().ok()
                }
            })
            .max()
    }
    let root = workspace_root();
    let sources = ["host/src", "migrations", "schemas", "wit"]
        .iter()
        .filter_map(|dir| newest(&root.join(dir)))
        .max();
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    if let (Some(sources), Some(built)) = (sources, built) {
        assert!(
            built >= sources,
            "{} is older than the host's sources: run `make build` (make test does it first)",
            bin.display()
        );
    }
}

/// The default rules component, built by `make build`.
pub fn default_rules() -> PathBuf {
    workspace_root().join("target/wasm32-wasip2/release/beaker_rules.wasm")
}

/// A folder for one test's logs and artefacts: `target/test-output/NAME`.
pub fn output_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/test-output").join(name);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A free TCP port on loopback, below the kernel's ephemeral range, never
/// the same twice in one process.
///
/// A port the kernel hands out (`bind` to port 0) comes from the range it
/// also uses for every outgoing connection, and a fault test kills a
/// server and starts it again on the same ports a second later: in
/// between, any connection made on the machine could take one of them
/// (seen in CI: a restarted nats-server found its monitoring port taken).
/// Ports below the range are taken only by a listener that asks for them.
///
/// A port is free when it is drawn, not when a server binds it: a cluster
/// draws nine before its first server starts, and a random draw may repeat
/// (seen in a soak: one server's route port was another's client port, and
/// that server never started). So every port handed out is remembered and
/// never drawn again by this process.
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const FLOOR: u16 = 10_000;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let ceiling = ephemeral_floor().unwrap_or(32_768);
    if ceiling > FLOOR + 1_000 {
        for _ in 0..1_000 {
            let port = fastrand::u16(FLOOR..ceiling);
            if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    handed_out.insert(port);
    Ok(port)
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_floor() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A component built by `make build` (`target/wasm32-wasip2/release/NAME.wasm`).
pub fn wasm(name: &str) -> PathBuf {
    workspace_root().join(format!("target/wasm32-wasip2/release/{name}.wasm"))
}

/// Hex SHA-256 of a file, computed here rather than trusted from the host.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Copies `from` over `to` atomically (write aside, then rename), as a
/// deploy script or a build would.
pub fn replace_file(from: &Path, to: &Path) -> Result<()> {
    let aside = to.with_extension("partial");
    std::fs::copy(from, &aside)?;
    std::fs::rename(&aside, to)?;
    Ok(())
}
