//! The same loops as the browser page, run natively, to show what the wasm
//! build costs against the same code on the host CPU:
//!
//! ```sh
//! cargo run --release -p sipline-parse-bench --example native
//! ```
//!
//! It reads `messages/` and prints µs/message for [`Corpus::parse`] and
//! [`Corpus::parse_eager`], one message at a time and all of them in turn,
//! after the same warm-up and ≥ 1 s timing as the page (median of 3).

use std::path::Path;
use std::time::Instant;

use sipline_parse_bench::{Corpus, Tally};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("messages");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut rows = Vec::new();
    for path in &files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        rows.push((name, vec![std::fs::read_to_string(path)?]));
    }
    rows.push((
        "mix (all of the above)".to_owned(),
        rows.iter().flat_map(|(_, m)| m.clone()).collect(),
    ));
    println!(
        "{:<28}{:>14}{:>14}",
        "message", "parse µs/msg", "eager µs/msg"
    );
    for (name, messages) in rows {
        let count = u32::try_from(messages.len())?;
        let corpus = Corpus::new(&messages.join("\0"), "\0");
        let lean = measure(count, |n| corpus.parse(n));
        let eager = measure(count, |n| corpus.parse_eager(n));
        println!("{name:<28}{lean:>14.3}{eager:>14.3}");
    }
    Ok(())
}

/// Median µs/message of three runs of at least one second, after doubling
/// the iteration count until one call lasts 300 ms (as the page does).
fn measure(per_iteration: u32, run: impl Fn(u32) -> Tally) -> f64 {
    let timed = |n: u32| {
        let start = Instant::now();
        let tally = run(n);
        assert_eq!(tally.ok, n * per_iteration, "every message parses");
        start.elapsed().as_secs_f64()
    };
    let mut n = 1;
    let mut secs = timed(n);
    while secs < 0.3 {
        n *= 2;
        secs = timed(n);
    }
    // Rounding to whole iterations: the count only needs to be about right.
    let n = (f64::from(n) * 1.15 / secs).ceil() as u32;
    let mut runs: Vec<f64> = (0..3)
        .map(|_| timed(n) * 1e6 / f64::from(n * per_iteration))
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}
