//! Debian's headless Chromium driving calls through the relay: runs a
//! script of `tests/browser/` (playwright-core, never a downloaded
//! browser) and returns the JSON line it prints. `call.mjs` drives a plain
//! page with a SIP shim; `sdk.mjs` drives the built npm package; `demo.mjs`
//! drives the demo phone page through its form and buttons, and
//! `demo-firefox.mjs` does so in Firefox ESR too (puppeteer-core).

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
    call_with_events(config, |_| {})
}

/// [`call`], telling `on_event` each `event <name>` line the script prints
/// on the way (`registered`: the page is ready for an incoming call).
pub fn call_with_events(config: &str, on_event: impl FnMut(&str)) -> Result<String, Error> {
    run("call.mjs", config, on_event)
}

/// Runs `sdk.mjs`: `config` holds the microphone file and the steps; each
/// `mark` step reaches `on_event` by its name.
pub fn sdk(config: &str, on_event: impl FnMut(&str)) -> Result<String, Error> {
    let package = dir().join("../../npm");
    if !package.join("dist/index.js").is_file()
        || !package.join("wasm/sipline_wasm_bg.wasm").is_file()
    {
        return Err(Error::NotInstalled(
            "the built npm package (run `bash npm/build.sh`)",
        ));
    }
    run("sdk.mjs", config, on_event)
}

/// Runs `demo.mjs`: the demo page at `config.url`, driven through its
/// form and buttons.
pub fn demo(config: &str) -> Result<String, Error> {
    run("demo.mjs", config, |_| {})
}

/// Runs `demo-call.mjs`: two people calling each other through the demo
/// page and a third calling the echo, each in its own Chromium.
pub fn demo_call(config: &str) -> Result<String, Error> {
    run("demo-call.mjs", config, |_| {})
}

/// Runs `demo-firefox.mjs`: Firefox ESR and Chromium calling each other
/// through the demo page, and Firefox calling the echo.
pub fn demo_firefox(config: &str) -> Result<String, Error> {
    if !Path::new("/usr/bin/firefox-esr").is_file() {
        return Err(Error::NotInstalled("/usr/bin/firefox-esr"));
    }
    if !dir().join("node_modules/puppeteer-core").is_dir() {
        return Err(Error::NotInstalled(
            "tests/browser/node_modules/puppeteer-core",
        ));
    }
    run("demo-firefox.mjs", config, |_| {})
}

fn run(script: &str, config: &str, on_event: impl FnMut(&str)) -> Result<String, Error> {
    script_at(&dir().join(script), config, on_event)
}

/// Runs the node script at `path` (a benchmark's driver, which imports
/// `chromium.mjs` from this folder) with `config` as its argument, as the
/// scripts here run: `event <name>` lines reach `on_event`, and the last
/// line, a JSON object, is returned.
pub fn script_at(
    path: &Path,
    config: &str,
    mut on_event: impl FnMut(&str),
) -> Result<String, Error> {
    use std::io::{BufRead, BufReader, Read};
    if !Path::new("/usr/bin/chromium").is_file() {
        return Err(Error::NotInstalled("/usr/bin/chromium"));
    }
    if !dir().join("node_modules/playwright-core").is_dir() {
        return Err(Error::NotInstalled(
            "tests/browser/node_modules/playwright-core",
        ));
    }
    let mut child = Command::new("node")
        .arg(path)
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotInstalled("node"),
            _ => Error::Io(e),
        })?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| io::Error::other("no stderr"))?;
    // Read stderr aside, so that a chatty page cannot block the script.
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let mut last = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match line.strip_prefix("event ") {
            Some(name) => on_event(name),
            None => last = Some(line),
        }
    }
    let status = child.wait()?;
    let stderr = errors.join().unwrap_or_default();
    match last {
        Some(line) if status.success() && line.starts_with('{') => Ok(line),
        _ => Err(Error::Failed {
            status: status.to_string(),
            stderr,
        }),
    }
}
