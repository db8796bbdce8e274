//! The ids that name the relay's live things, shared by its halves: the
//! signalling names a browser's connection and a call's media by them, the
//! media table and the shells carry them back. Neutral ground, so that
//! neither half imports the other for a name.

/// Names one WebSocket connection for the lifetime of the process (a
/// number on the admin event stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ConnId(pub u64);

/// Names one call's media, between the signalling and the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(pub u64);

impl MediaId {
    /// Which of `workers` media threads carries the call (the media table
    /// names its shared browser port by it, the engine sends it there).
    pub fn worker(self, workers: usize) -> usize {
        let workers = workers.max(1) as u64;
        (self.0 % workers) as usize
    }
}
