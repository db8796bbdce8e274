//! The user agent's part in starting media without waiting for ICE
//! gathering: when an offer or answer may leave without candidates, and
//! the candidates that follow it trickled (RFC 8840; the rules are in
//! `call/trickle.rs`).

use super::UserAgent;
use crate::Instant;
use crate::error::ActionError;
use crate::ids::CallId;

impl UserAgent {
    /// Whether the registrar's side told us its media is ICE-lite (the
    /// sipline relay does, in the REGISTER's 2xx).
    pub fn peer_ice_lite(&self) -> bool {
        self.registration.flow.ice_lite
    }

    /// Whether our offer or answer may leave before ICE gathering ends,
    /// with whatever candidates it has (possibly none).
    ///
    /// It may when the far side is an ICE-lite agent (RFC 8445 §2.5): we
    /// are then the controlling side and make every check, and it learns
    /// our address from them (peer-reflexive), so candidates in our SDP buy
    /// nothing but the gathering time. When we answer (`answering`: the
    /// call and its offer), the offer says so itself (`a=ice-lite`), or the
    /// caller's INVITE said it takes trickled candidates (RFC 8840: they
    /// follow, [`crate::Event::CandidatesNeeded`]); when we offer, the word is the
    /// app's (`app_says`) if it gave one, else the registrar side's (the
    /// sipline relay). Otherwise the candidates must be in the SDP: a
    /// full-ICE peer's checks toward us are what open our NAT's path.
    pub fn candidates_optional(
        &self,
        answering: Option<(CallId, &str)>,
        app_says: Option<bool>,
    ) -> bool {
        match answering {
            Some((call, offer)) => {
                crate::sdp::is_ice_lite(offer) || self.calls.answer_may_trickle(call)
            }
            None => app_says.unwrap_or_else(|| self.peer_ice_lite()),
        }
    }

    /// Trickles our ICE candidates to `call`'s far end (RFC 8840), the
    /// step that [`crate::Event::CandidatesNeeded`] with `trickle` asks for:
    /// called with our local description `sdp` as it is now, each time the
    /// browser has gathered more, the last time with `complete`. Only what
    /// is new goes, in one INFO.
    pub fn send_candidates(
        &mut self,
        now: Instant,
        call: CallId,
        sdp: &str,
        complete: bool,
    ) -> Result<(), ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.send_candidates(&mut cx, call, sdp, complete)
    }
}
