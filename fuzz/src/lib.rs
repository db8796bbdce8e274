//! What sipline's fuzz targets share: the real messages and SDP bodies
//! their inputs start from, the edits that mutate them, STUN checks built
//! and answers verified, and the oracles more than one target asserts.
//!
//! The targets are in `fuzz_targets/`; `fuzz/run.sh` builds and runs them
//! (see DEVELOPERS.md, "Fuzzing").

#![forbid(unsafe_code)]

pub mod bodies;
pub mod corpus;
pub mod edit;
pub mod oracle;
pub mod status;
pub mod stun;

/// Appends `item` to `recent`, dropping the oldest beyond `max`: what a
/// target remembers of what it saw (requests to answer, dialogs), newest
/// last.
pub fn remember<T>(recent: &mut Vec<T>, item: T, max: usize) {
    if recent.len() == max {
        recent.remove(0);
    }
    recent.push(item);
}
