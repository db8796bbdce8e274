//! Debian's headless Chromium driving a call through the relay: runs
//! `tests/browser/call.mjs` (playwright-core, never a downloaded browser)
//! and returns the JSON line it prints.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the browser run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Chromium, node or the npm packages are missing.
    #[error("{0} not found: `bash tests/run.sh` installs it")]
    NotInstalled(&'static str),
    /// Running node failed.
    #[error("running node: {0}")]
    Io(#[from] io::Error),
    /// The script did not print its result.
    #[error("the browser script failed ({status}); its stderr:\n{stderr}")]
    Failed {
        /// Its exit status.
        status: String,
        /// What it said.
        stderr: String,
    },
}

/// The folder of the browser scripts.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../browser")
}

/// Runs `call.mjs` with `config` (JSON) and returns its JSON output.
pub fn call(config: &str) -> Result<String, Error> {
    if !Path::new("/usr/bin/chromium").is_file() {
        return Err(Error::NotInstalled("/usr/bin/chromium"));
    }
    if !dir().join("node_modules/playwright-core").is_dir() {
        return Err(Error::NotInstalled(
            "tests/browser/node_modules/playwright-core",
        ));
    }
    let out = Command::new("node")
        .arg(dir().join("call.mjs"))
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotInstalled("node"),
            _ => Error::Io(e),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(line) if out.status.success() && line.starts_with('{') => Ok(line.to_owned()),
        _ => Err(Error::Failed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}
