//! Session timers of calls (RFC 4028) on our side: the refresher's
//! re-INVITE before the interval ends, the interval restarted by the far
//! end's refresh, and a call whose session expired ended with BYE. The
//! negotiation itself is in `crate::session_timer`.

use super::incoming::send_callee_bye;
use super::{CallState, Calls, Purpose, Update, hangup, send_bye};
use crate::ctx::Ctx;
use crate::ids::CallId;
use crate::prelude::*;
use crate::session_timer::{Refresher, SessionTimer};
use crate::sip::{Message, Method};
use crate::{Instant, session_timer};

impl Calls {
    /// Where a call of either kind keeps its session timer.
    pub(super) fn timer_slot_mut(&mut self, id: CallId) -> Option<&mut Option<SessionTimer>> {
        Some(self.session_mut(id)?.timer)
    }

    /// The session timer of a call of either kind.
    pub(super) fn timer_mut(&mut self, id: CallId) -> Option<&mut SessionTimer> {
        self.session_mut(id)?.timer.as_mut()
    }

    /// The far end's re-INVITE or UPDATE (`req`) refreshes the session
    /// timer, and may renegotiate it: we are its UAS. Returns the
    /// Session-Expires for our 2xx. `sdp` is our answer, the session's SDP
    /// from now on.
    pub(super) fn refreshed_by_them(
        &mut self,
        now: Instant,
        id: CallId,
        req: &Message<'_>,
        sdp: Option<&str>,
    ) -> Option<String> {
        if let (Some(sdp), Some(local)) = (sdp, self.local_sdp_mut(id)) {
            *local = sdp.to_owned();
        }
        let slot = self.timer_slot_mut(id)?;
        let Some((secs, refresher)) = session_timer::as_uas(req) else {
            // RFC 4028 §9: a change without Session-Expires turns the timer
            // off; keeping ours would end a call nobody refreshes.
            *slot = None;
            return None;
        };
        let timer = slot.get_or_insert_with(|| SessionTimer::new(now, secs, false));
        timer.interval = secs;
        timer.we_refresh = refresher == Refresher::Uas;
        timer.refreshed(now);
        Some(SessionTimer::response_header(secs, refresher))
    }

    /// Ends call `id` at once: a BYE goes, and the app hears `code`
    /// (the session expired, or a refresh found the dialog gone).
    pub(super) fn end_expired(&mut self, cx: &mut Ctx<'_>, id: CallId, code: u16, reason: &str) {
        if let Some(call) = self.calls.iter_mut().find(|c| c.id == id) {
            send_bye(call, cx);
        } else if let Some(call) = self.incoming.iter_mut().find(|c| c.id == id) {
            send_callee_bye(call, cx);
        }
        self.forget(cx, id);
        hangup(cx, id, Some(code), reason);
    }

    /// Sends the refreshes that are due and ends the sessions that expired
    /// (RFC 4028 §10).
    pub(super) fn session_timeouts(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        // Calls being hung up are left alone: their BYE is on its way.
        let timers: Vec<(CallId, bool, bool)> = self
            .calls
            .iter()
            .filter(|c| c.state == CallState::Confirmed)
            .filter_map(|c| Some((c.id, c.timer.as_ref()?)))
            .chain(
                self.incoming
                    .iter()
                    .filter(|c| c.bye_tx.is_none() && !c.bye_wanted)
                    .filter_map(|c| Some((c.id, c.timer.as_ref()?))),
            )
            .map(|(id, t)| (id, t.expired(now), t.refresh_due(now)))
            .collect();
        for (id, expired, refresh) in timers {
            if expired {
                self.end_expired(cx, id, 408, "Session Timer Expired");
                continue;
            }
            if !refresh {
                continue;
            }
            let busy = self.updates.iter().any(|u| {
                u.call() == id && !matches!(u, Update::Retry { .. } | Update::Acked { .. })
            });
            let Some(timer) = self.timer_mut(id) else {
                continue;
            };
            if busy {
                // A change is under way (it refreshes too); look again soon.
                timer.retry_refresh(now);
                continue;
            }
            timer.refresh_sent();
            let sdp = self
                .local_sdp_mut(id)
                .map(|s| s.clone())
                .unwrap_or_default();
            self.updates
                .retain(|u| !(u.call() == id && matches!(u, Update::Acked { .. })));
            if !self.send_update(cx, id, &sdp, Method::Invite, Purpose::Refresh, None)
                && let Some(timer) = self.timer_mut(id)
            {
                timer.retry_refresh(now);
            }
        }
    }

    pub(super) fn session_deadline(&self) -> Option<Instant> {
        self.calls
            .iter()
            .filter_map(|c| c.timer.as_ref())
            .chain(self.incoming.iter().filter_map(|c| c.timer.as_ref()))
            .map(SessionTimer::deadline)
            .min()
    }
}
