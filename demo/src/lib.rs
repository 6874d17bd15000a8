//! What the demo binaries share.

use std::path::PathBuf;

/// A fresh SQLite file for one demo run, in the system's temp directory, kept afterwards so
/// the operator CLI can inspect it. Returns its URL and path.
pub fn demo_database(name: &str) -> std::io::Result<(String, PathBuf)> {
    // One path per demo, emptied at the start of each run: repeated runs leave one file, not
    // one per run, and the run prints where it is.
    let path = std::env::temp_dir().join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok((format!("sqlite://{}?mode=rwc", path.display()), path))
}

/// Logs taskrow's warnings (retries, failures) to stderr, or what `RUST_LOG` says.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "taskrow=warn".to_owned()))
        .with_ansi(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}
