//! A call's media as the shell drives it: the microphone and an offer
//! before our INVITE, the answer to an incoming call, a change of ours
//! (hold, ICE restart) in the change the core reserved for it, and the
//! far end's change answered. The core decides every SIP step; these only
//! run the browser's side of what it decided.

use crate::prelude::*;
use alloc::rc::Rc;

use sipline_core::CallId;
use wasm_bindgen::prelude::*;

use super::Shell;
use crate::js::{self, Obj};
use crate::media::{Media, Want};

/// A call as the shell sees it: its media once there is any, and the far
/// end's offer until the app answers it. Everything SIP about the call
/// (who holds it, which offer is pending, glare) is the core's.
#[derive(Default)]
pub(super) struct CallMedia {
    pub(super) media: Option<Rc<Media>>,
    pub(super) offer: Option<String>,
}

/// The calls' media by call id: a handful at most, so a vector (smaller
/// in wasm than a hash map, and as fast at this size).
#[derive(Default)]
pub(super) struct CallMap(Vec<(u32, CallMedia)>);

impl CallMap {
    pub(super) fn get(&self, id: &u32) -> Option<&CallMedia> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, c)| c)
    }

    pub(super) fn get_mut(&mut self, id: &u32) -> Option<&mut CallMedia> {
        self.0.iter_mut().find(|(k, _)| k == id).map(|(_, c)| c)
    }

    pub(super) fn insert(&mut self, id: u32, call: CallMedia) {
        self.remove(&id);
        self.0.push((id, call));
    }

    /// Every call's media, the map left empty.
    pub(super) fn take_all(&mut self) -> Vec<Rc<Media>> {
        self.0.drain(..).filter_map(|(_, c)| c.media).collect()
    }

    pub(super) fn remove(&mut self, id: &u32) -> Option<CallMedia> {
        let i = self.0.iter().position(|(k, _)| k == id)?;
        Some(self.0.swap_remove(i).1)
    }
}

/// Whom a new call goes to.
pub(crate) enum CallTo {
    /// A SIP URI the app gave.
    Target(String),
    /// The target of the far end's transfer request in this call.
    Referral(u32),
}

impl Shell {
    pub(super) fn media(&self, call: CallId) -> Option<Rc<Media>> {
        self.state.borrow().calls.get(&call.0)?.media.clone()
    }

    /// A media step failed under a live call: the call cannot carry what
    /// was agreed, so it ends (BYE) and the app is told why.
    pub(super) fn media_failed(self: &Rc<Self>, call: CallId, error: &JsValue) {
        web_sys::console::error_2(&JsValue::from_str("sipline: media failed"), error);
        self.emit(
            "media_error",
            Obj::new()
                .set("call", call.0)
                .set("error", error.clone())
                .build(),
        );
        // Gone already (the far end hung up first): nothing to end.
        let _ = self.with_ua(|ua, now| ua.hangup(now, call));
    }

    /// The far end's re-INVITE or UPDATE: answer its offer, or make one
    /// when it sent none. (A change of ours under way already got `491`
    /// from the core; who holds whom it reports once this is answered.)
    pub(super) async fn far_end_update(self: &Rc<Self>, call: CallId, offer: Option<String>) {
        let Some(media) = self.media(call) else {
            return;
        };
        let gather = self.gather_first(offer.as_deref().map(|o| (call, o)));
        let sdp = match &offer {
            Some(offer) => media.answer(offer, gather).await,
            None => media.offer(gather).await,
        };
        match sdp {
            // The call may have ended while the browser made its answer.
            Ok(sdp) => {
                let _ = self.with_ua(|ua, now| ua.answer(now, call, &sdp));
            }
            Err(e) => {
                // The browser cannot take this offer: the core refuses the
                // change, and the call stays as it was.
                web_sys::console::warn_2(&JsValue::from_str("sipline: refused an offer"), &e);
                if offer.is_some() {
                    let _ = media.rollback_remote().await;
                }
                let _ = self.with_ua(|ua, now| ua.refuse_offer(now, call));
            }
        }
    }

    /// Places a call: the microphone, an offer, then the INVITE.
    pub(crate) async fn call(
        self: Rc<Self>,
        to: CallTo,
        want: Want,
        headers: Vec<(String, String)>,
    ) -> Result<u32, JsValue> {
        let media = Rc::new(Media::open(want, &self.settings.media).await?);
        let offer = match media.offer(self.gather_first(None)).await {
            Ok(offer) => offer,
            Err(e) => {
                media.close();
                return Err(e);
            }
        };
        let call = self.act(&headers, |ua, now| match &to {
            CallTo::Target(target) => ua.call(now, target, &offer),
            CallTo::Referral(from) => ua.accept_referral(now, CallId(*from), &offer),
        });
        let call = match call {
            Ok(call) => call,
            Err(e) => {
                media.close();
                return Err(e);
            }
        };
        self.state.borrow_mut().calls.insert(
            call.0,
            CallMedia {
                media: Some(media),
                ..CallMedia::default()
            },
        );
        Ok(call.0)
    }

    /// Answers an incoming call: the microphone, then our answer to its
    /// offer (or our offer, when it came without one).
    pub(crate) async fn answer(
        self: Rc<Self>,
        call: u32,
        want: Want,
        headers: Vec<(String, String)>,
    ) -> Result<(), JsValue> {
        let offer = match self.state.borrow().calls.get(&call) {
            Some(c) if c.media.is_none() => c.offer.clone(),
            _ => return Err(js::error("no such call waiting for an answer")),
        };
        let media = Rc::new(Media::open(want, &self.settings.media).await?);
        let gather = self.gather_first(offer.as_deref().map(|o| (CallId(call), o)));
        let sdp = match &offer {
            Some(offer) => media.answer(offer, gather).await,
            None => media.offer(gather).await,
        };
        let ringing = {
            let mut s = self.state.borrow_mut();
            match s.calls.get_mut(&call) {
                Some(c) if c.media.is_none() && sdp.is_ok() => {
                    c.media = Some(media.clone());
                    true
                }
                _ => false,
            }
        };
        match sdp {
            Ok(sdp) if ringing => self.act(&headers, |ua, now| ua.answer(now, CallId(call), &sdp)),
            Ok(_) => {
                media.close();
                Err(js::error("the call ended before it was answered"))
            }
            Err(e) => {
                media.close();
                Err(e)
            }
        }
    }

    /// Puts a call on hold or resumes it with a re-INVITE; the outcome
    /// arrives as `updated` + `hold`, or `update_failed`.
    /// Changes a call with a new offer in a re-INVITE: hold or resume
    /// (`held`), and/or an ICE restart; the outcome arrives as `updated`
    /// (+ `hold` when that changed), or `update_failed`.
    pub(crate) async fn reoffer(
        self: Rc<Self>,
        call: u32,
        held: Option<bool>,
        ice_restart: bool,
        headers: Vec<(String, String)>,
    ) -> Result<(), JsValue> {
        let gather = self.gather_first(None);
        self.reoffer_with(CallId(call), held, ice_restart, gather, headers)
            .await
    }

    /// The core's [`Event::CandidatesNeeded`](sipline_core::Event): our
    /// offer or answer went without candidates to a full-ICE far end, so
    /// once they are gathered they follow: trickled in an INFO when the far
    /// end takes that (`trickle`), else in a re-INVITE (same ICE
    /// credentials, the call held or not as it was). When that fails (an
    /// app's change got there first), the call goes on as it is: checks
    /// from our side often find the way alone.
    pub(super) async fn send_candidates(self: Rc<Self>, call: CallId, trickle: bool) {
        let Some(media) = self.media(call) else {
            return;
        };
        let sent = if trickle {
            // Each time the browser has more, what is new goes (the core
            // keeps what went), and the end of them once gathering ends
            // or the bounded wait does.
            let deadline = media.gathering_deadline();
            loop {
                let complete = media.gathering_complete() || js::now_ms() >= deadline;
                let sdp = media.local_sdp().unwrap_or_default();
                let sent = self.act(&[], |ua, now| ua.send_candidates(now, call, &sdp, complete));
                if complete || sent.is_err() {
                    break sent;
                }
                media.gathering_news(deadline, true).await;
            }
        } else {
            // Gathered before the change is reserved: meanwhile the app's
            // own changes and the far end's go through.
            media.gathered().await;
            self.reoffer_with(call, None, false, true, Vec::new()).await
        };
        if let Err(e) = sent {
            web_sys::console::warn_2(&JsValue::from_str("sipline: candidates not sent"), &e);
        }
    }

    async fn reoffer_with(
        self: Rc<Self>,
        id: CallId,
        held: Option<bool>,
        ice_restart: bool,
        gather: bool,
        headers: Vec<(String, String)>,
    ) -> Result<(), JsValue> {
        let Some(media) = self.media(id) else {
            return Err(js::error("no such call with media"));
        };
        // The core holds the call's next change for this offer (the far
        // end's own meanwhile gets 491) and says which way it must go.
        let current = self.state.borrow().ua.held(id);
        let target = self.act(&[], |ua, _| ua.begin_update(id, held))?;
        let offer = match media.set_held(target).await {
            Ok(()) => media.offer_with(ice_restart, gather).await,
            Err(e) => Err(e),
        };
        let offer = match offer {
            Ok(offer) => offer,
            Err(e) => {
                let _ = media.set_held(current).await;
                self.with_ua(|ua, _| ua.abandon_update(id));
                return Err(e);
            }
        };
        match self.act(&headers, |ua, now| ua.update(now, id, &offer)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.with_ua(|ua, _| ua.abandon_update(id));
                media.rollback(current).await?;
                Err(e)
            }
        }
    }

    /// Whether our answer (`answering`: the call and its offer) or our
    /// offer (`None`) waits for ICE gathering: the core's rule, with the
    /// app's word on offers.
    fn gather_first(&self, answering: Option<(CallId, &str)>) -> bool {
        let app_says = self.settings.media.ice_lite;
        !self
            .state
            .borrow()
            .ua
            .candidates_optional(answering, app_says)
    }

    pub(crate) fn call_media(&self, call: u32) -> Option<Rc<Media>> {
        self.media(CallId(call))
    }
}
