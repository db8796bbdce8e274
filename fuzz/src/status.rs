//! SIP status codes for the far ends the targets play.

use arbitrary::Arbitrary;

/// Status codes that take sipline down its distinct paths, and any other.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Status {
    /// 100.
    Trying,
    /// 180.
    Ringing,
    /// 183 (early media).
    Progress,
    /// 200.
    Ok,
    /// 202 (a REFER's).
    Accepted,
    /// 401.
    Unauthorized,
    /// 407.
    ProxyAuth,
    /// 422 (session timers).
    SessionTooSmall,
    /// 423 (registration).
    IntervalTooBrief,
    /// 481.
    NoTransaction,
    /// 486.
    Busy,
    /// 487.
    Terminated,
    /// 488.
    NotAcceptable,
    /// 491 (glare).
    Pending,
    /// 503.
    Unavailable,
    /// 603.
    Decline,
    /// Any code from 100 to 699.
    Other(u16),
}

impl Status {
    /// The code.
    pub fn code(self) -> u16 {
        match self {
            Status::Trying => 100,
            Status::Ringing => 180,
            Status::Progress => 183,
            Status::Ok => 200,
            Status::Accepted => 202,
            Status::Unauthorized => 401,
            Status::ProxyAuth => 407,
            Status::SessionTooSmall => 422,
            Status::IntervalTooBrief => 423,
            Status::NoTransaction => 481,
            Status::Busy => 486,
            Status::Terminated => 487,
            Status::NotAcceptable => 488,
            Status::Pending => 491,
            Status::Unavailable => 503,
            Status::Decline => 603,
            Status::Other(c) => 100 + c % 600,
        }
    }
}
