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

/// One dialog as a fuzzer's peer sees it: the Call-ID, the side under test
/// (its tag included once it has one) and the peer's own side.
#[derive(Clone, Debug)]
pub struct Dialog {
    /// The Call-ID.
    pub call_id: String,
    /// The From or To value of the side under test.
    pub ours: String,
    /// The peer's From or To value.
    pub theirs: String,
}

/// Appends `item` to `recent`, dropping the oldest beyond `max`: what a
/// target remembers of what it saw (requests to answer, dialogs), newest
/// last.
pub fn remember<T>(recent: &mut Vec<T>, item: T, max: usize) {
    if recent.len() == max {
        recent.remove(0);
    }
    recent.push(item);
}
