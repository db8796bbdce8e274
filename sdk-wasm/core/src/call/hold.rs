//! Who holds a call, as the offers say (RFC 3264 §8.4, RFC 6337 §5.3): an
//! offer whose first media section is `sendonly` or `inactive` puts the
//! other side on hold. The core follows both sides' agreed offers and tells
//! the application when either changes ([`Event::Hold`]), so that no shell
//! reads SDP to know.

use super::Calls;
use crate::ctx::Ctx;
use crate::event::{Event, HoldBy};
use crate::ids::CallId;
use crate::sdp::{Direction, Sdp};

/// One call's hold state, per side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Hold {
    /// We hold the call: our last agreed offer was sendonly or inactive.
    pub ours: bool,
    /// The far end holds us: its last offer was sendonly or inactive.
    pub theirs: bool,
}

/// Whether an offer puts the other side on hold.
pub(super) fn offer_holds(offer: &[u8]) -> bool {
    Sdp::parse(offer)
        .is_ok_and(|sdp| matches!(sdp.direction(0), Direction::SendOnly | Direction::Inactive))
}

impl Calls {
    /// Whether we hold call `id` (our last agreed offer said so).
    pub fn held(&self, id: CallId) -> bool {
        self.hold(id).ours
    }

    fn hold(&self, id: CallId) -> Hold {
        self.holds
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, h)| *h)
            .unwrap_or_default()
    }

    fn set_hold(&mut self, id: CallId, hold: Hold) {
        match self.holds.iter_mut().find(|(c, _)| *c == id) {
            Some((_, h)) => *h = hold,
            None => self.holds.push((id, hold)),
        }
    }

    /// An offer in call `id` was settled: the far end's answered
    /// ([`HoldBy::Remote`]) or ours agreed ([`HoldBy::Local`]). That side
    /// holds the call, or resumed it, as `held` ([`offer_holds`] of that
    /// offer) says; the application hears of a change only.
    pub(super) fn offer_settled(&mut self, cx: &mut Ctx<'_>, id: CallId, held: bool, by: HoldBy) {
        let mut hold = self.hold(id);
        let side = match by {
            HoldBy::Local => &mut hold.ours,
            HoldBy::Remote => &mut hold.theirs,
        };
        if *side != held {
            *side = held;
            self.set_hold(id, hold);
            cx.events.push(Event::Hold { call: id, held, by });
        }
    }
}
