//! Why the user agent refuses what the application asked for: one typed
//! error for every action, so that each layer above (the wasm engine, the
//! npm package) can say exactly why, instead of guessing from a `false`.

use crate::ids::{CallId, SubscriptionId};

/// An action the user agent did not take, and why. Nothing was sent for
/// it (a transfer request that cannot be followed is still answered: the
/// far end hears 503).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// There is no transport: the WebSocket is not open.
    #[error("not connected")]
    NotConnected,
    /// The argument named is not a SIP URI as given (a `sip:`/`sips:` URI
    /// without spaces, control characters or angle brackets).
    #[error("{0} is not a SIP URI")]
    BadTarget(&'static str),
    /// The argument named holds a line break or control character, which
    /// would forge a header.
    #[error("{0} holds a line break or control character")]
    BadText(&'static str),
    /// Not a status a call can be declined with (300 to 699).
    #[error("{0} is not a status to decline with (300 to 699)")]
    BadCode(u16),
    /// Not a DTMF digit (`0`–`9`, `*`, `#`, `A`–`D`).
    // Quoted by hand: `{:?}` would link Debug's escaping into the SDK.
    #[error("'{0}' is not a DTMF digit (0-9, *, #, A-D)")]
    BadDigit(char),
    /// The user agent has no such call (never, or ended).
    #[error("no call {}", .0.0)]
    NoSuchCall(CallId),
    /// The call is not in a state for this: not answered yet (changing,
    /// transferring or messaging in it), or already answered (ringing).
    #[error("call {} cannot do this in its state", .0.0)]
    WrongState(CallId),
    /// Another change of the call's session (re-INVITE or UPDATE) is
    /// under way, ours or the far end's.
    #[error("call {}: another change of its session is under way", .0.0)]
    ChangePending(CallId),
    /// No transfer request of the far end waits in this call.
    #[error("call {}: no transfer request waits", .0.0)]
    NoReferral(CallId),
    /// The user agent has no such subscription (never, or ended).
    #[error("no subscription {}", .0.0)]
    NoSuchSubscription(SubscriptionId),
    /// The request made of these arguments did not parse back: a value
    /// slipped past the checks above (a bug; nothing was sent).
    #[error("the request could not be built from these arguments")]
    Unsendable,
}

impl ActionError {
    /// A stable name for programs (`not_connected`, `bad_target`…).
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::NotConnected => "not_connected",
            ActionError::BadTarget(_) => "bad_target",
            ActionError::BadText(_) => "bad_text",
            ActionError::BadCode(_) => "bad_code",
            ActionError::BadDigit(_) => "bad_digit",
            ActionError::NoSuchCall(_) => "no_such_call",
            ActionError::WrongState(_) => "wrong_state",
            ActionError::ChangePending(_) => "change_pending",
            ActionError::NoReferral(_) => "no_referral",
            ActionError::NoSuchSubscription(_) => "no_such_subscription",
            ActionError::Unsendable => "unsendable",
        }
    }

    /// Whether the application passed a bad argument (as opposed to asking
    /// at the wrong time): JavaScript throws these as `TypeError` or
    /// `RangeError`.
    pub fn is_argument(&self) -> bool {
        matches!(
            self,
            ActionError::BadTarget(_)
                | ActionError::BadText(_)
                | ActionError::BadCode(_)
                | ActionError::BadDigit(_)
        )
    }
}
