//! The WebAssembly half of sipline's SDK: the sans-IO core behind a thin,
//! synchronous binding, which the npm package `sipline` drives.
//!
//! Everything SIP and SDP is decided in `sipline-core`; this crate only
//! carries its inputs and outputs across: bytes that arrived and the time
//! in, bytes to send, the next deadline and events out, and the app's
//! actions. The browser's objects (the WebSocket, the `RTCPeerConnection`s,
//! `getUserMedia`, `setTimeout`) are held by the package's TypeScript
//! engine (`npm/src/engine.ts`), which applies what the core decides: kept
//! there, they cost a few kilobytes of JavaScript instead of tens of
//! kilobytes of bindings and async state machines here.
//!
//! The crossing is kept small on purpose: numbers and strings in, strings
//! out. Events leave as JSON records (`record`). An action the core
//! refuses returns `false` (or nothing, where it would return an id), and
//! [`Core::refusal`] says why, as `"<code> <message>"`, which the engine
//! turns into the `TypeError`, `RangeError` or `Error` the app gets.

// In the browser there is no `std`: its panic and formatting machinery
// would be bytes every page pays for. The heap is talc (a well-kept wasm
// allocator, 2 KB gzipped smaller than dlmalloc, which `std` uses on
// wasm32), and a panic, which the core's checks leave only to bugs,
// is the wasm trap it would be anyway (`panic = "abort"`). Natively (the
// workspace's lints and tests) the crate keeps `std`.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static HEAP: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

mod json;
mod options;
mod prelude;
mod record;

use prelude::*;

use sipline_core::sip::reason_phrase;
use sipline_core::{ActionError, CallId, Instant, MessageId, SubscriptionId, UserAgent};
use wasm_bindgen::prelude::*;

pub use options::Options;

/// One phone's user agent: a registration (or a guest) and its calls.
#[wasm_bindgen]
pub struct Core {
    ua: UserAgent,
    /// The app's headers for the next action, staged by [`Core::header`].
    headers: Vec<(String, String)>,
    /// Why the last action was refused, for [`Core::refusal`].
    refused: String,
}

/// Milliseconds on the page's monotonic clock as the core's time.
fn at(now_ms: f64) -> Instant {
    // `as` saturates: a negative or NaN clock reads as 0.
    Instant::from_millis(now_ms as u64)
}

/// A refusal as the engine reads it: `"<code> <message>"`.
#[inline(never)]
fn refusal(e: &ActionError) -> String {
    let mut s = String::from(e.code());
    s.push(' ');
    s.push_str(&e.to_string());
    s
}

#[wasm_bindgen]
impl Core {
    /// The user agent for `options` (what `Phone.connect` was given, checked
    /// by the package), its tags and nonces drawn from `seed` (32 bytes
    /// from `crypto.getRandomValues`). Throws `"type <message>"` or
    /// `"range <message>"` naming the option the core refuses.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &Options, seed: &[u8]) -> Result<Core, String> {
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| String::from("range seed must be 32 bytes"))?;
        let config = options::config(options)?;
        let ua = UserAgent::new(config, seed).map_err(|e| options::refusal(&e))?;
        Ok(Core {
            ua,
            headers: Vec::new(),
            refused: String::new(),
        })
    }

    /// The WebSocket opened: the core registers (unless a guest) and
    /// recovers its calls.
    pub fn connected(&mut self, now: f64) {
        self.ua.transport_connected(at(now));
    }

    /// The WebSocket closed.
    pub fn closed(&mut self, now: f64) {
        self.ua.transport_closed(at(now));
    }

    /// One WebSocket frame, one SIP message (RFC 7118 §5.2). A malformed
    /// one is dropped (RFC 3261 §18); what was wrong with it is returned,
    /// for the console.
    pub fn receive(&mut self, now: f64, frame: &[u8]) -> Option<String> {
        self.ua
            .handle_message(at(now), frame)
            .err()
            .map(|e| e.to_string())
    }

    /// The deadline [`Core::deadline`] named has come.
    pub fn timeout(&mut self, now: f64) {
        self.ua.handle_timeout(at(now));
    }

    /// The next SIP message to send, one per frame.
    pub fn transmit(&mut self) -> Option<Vec<u8>> {
        self.ua.poll_transmit()
    }

    /// When [`Core::timeout`] is next due, in the clock's milliseconds;
    /// `-1` when nothing is.
    pub fn deadline(&self) -> f64 {
        self.ua
            .poll_timeout()
            .map_or(-1.0, |t| t.as_millis() as f64)
    }

    /// The next event as its JSON record `["name", { detail }]`.
    pub fn event(&mut self) -> Option<String> {
        self.ua.poll_event().map(record::record)
    }

    /// Adds a header (`X-Crm-Id: 42`) to what the next action sends; the
    /// core refuses malformed and reserved ones when that action runs.
    pub fn header(&mut self, name: String, value: String) {
        self.headers.push((name, value));
    }

    /// Runs `action` with the staged headers at `now`: what it made, or
    /// `None` when it (or a header) was refused, kept for
    /// [`Core::refusal`]. (Not a `Result` across the boundary: an export
    /// returning one carries a wrapper in the wasm and in the glue, 0.2 KB
    /// of the SDK for the twenty actions.)
    fn act<R>(
        &mut self,
        now: f64,
        action: impl FnOnce(&mut UserAgent, Instant) -> Result<R, ActionError>,
    ) -> Option<R> {
        let headers = core::mem::take(&mut self.headers);
        let pairs = header_pairs(&headers);
        let now = at(now);
        let refused = match self.ua.with_headers(&pairs, |ua| action(ua, now)) {
            Ok(Ok(r)) => return Some(r),
            Ok(Err(e)) => refusal(&e),
            Err(e) => header_refusal(&e),
        };
        self.refused = refused;
        None
    }

    /// Why the last action that returned `false` (or nothing) was refused:
    /// `"<code> <message>"`.
    pub fn refusal(&self) -> String {
        self.refused.clone()
    }

    /// Checks (and drops) the staged headers, before an action that first
    /// opens the microphone: a bad header fails it before the browser asks.
    #[wasm_bindgen(js_name = checkHeaders)]
    pub fn check_headers(&mut self) -> bool {
        self.act(0.0, |_, _| Ok(())).is_some()
    }

    /// Registers again (after [`Core::unregister`]).
    pub fn register(&mut self, now: f64) {
        self.ua.register(at(now));
    }

    /// Removes the binding; `unregistered` follows.
    pub fn unregister(&mut self, now: f64) {
        self.ua.unregister(at(now));
    }

    /// Calls `target` with our SDP `offer`; the new call's id.
    pub fn call(&mut self, now: f64, target: &str, offer: &str) -> Option<u32> {
        self.act(now, |ua, now| ua.call(now, target, offer).map(|c| c.0))
    }

    /// Follows the far end's transfer request in `call` with a new call
    /// offering `offer`; its id.
    #[wasm_bindgen(js_name = acceptReferral)]
    pub fn accept_referral(&mut self, now: f64, call: u32, offer: &str) -> Option<u32> {
        self.act(now, |ua, now| {
            ua.accept_referral(now, CallId(call), offer).map(|c| c.0)
        })
    }

    /// Refuses the far end's transfer request in `call` (603).
    #[wasm_bindgen(js_name = declineReferral)]
    pub fn decline_referral(&mut self, now: f64, call: u32) -> bool {
        self.act(now, |ua, now| ua.decline_referral(now, CallId(call)))
            .is_some()
    }

    /// `180 Ringing` for incoming `call`.
    pub fn ringing(&mut self, now: f64, call: u32) -> bool {
        self.act(now, |ua, now| ua.ringing(now, CallId(call)))
            .is_some()
    }

    /// Our `sdp` for `call`: the answer to its offer (incoming, or a far
    /// end's change), or our offer where it sent none.
    pub fn answer(&mut self, now: f64, call: u32, sdp: &str) -> bool {
        self.act(now, |ua, now| ua.answer(now, CallId(call), sdp))
            .is_some()
    }

    /// Declines incoming `call` with `code` (486 when not given) and
    /// `reason` (the code's own phrase when not given).
    pub fn decline(
        &mut self,
        now: f64,
        call: u32,
        code: Option<u16>,
        reason: Option<String>,
    ) -> bool {
        let code = code.unwrap_or(UserAgent::DECLINE_CODE);
        let reason = reason.unwrap_or_else(|| reason_phrase(code).to_owned());
        self.act(now, |ua, now| ua.decline(now, CallId(call), code, &reason))
            .is_some()
    }

    /// Ends `call`: BYE, or CANCEL while it rings.
    pub fn hangup(&mut self, now: f64, call: u32) -> bool {
        self.act(now, |ua, now| ua.hangup(now, CallId(call)))
            .is_some()
    }

    /// Blind transfer of `call` to `target` (REFER).
    pub fn transfer(&mut self, now: f64, call: u32, target: &str) -> bool {
        self.act(now, |ua, now| ua.transfer(now, CallId(call), target))
            .is_some()
    }

    /// Attended transfer: the far end of `call` calls the far end of
    /// `other` in our place (REFER with Replaces).
    #[wasm_bindgen(js_name = transferReplacing)]
    pub fn transfer_replacing(&mut self, now: f64, call: u32, other: u32) -> bool {
        self.act(now, |ua, now| {
            ua.transfer_replacing(now, CallId(call), CallId(other))
        })
        .is_some()
    }

    /// Asks the relay to start (`on`) or stop recording `call`; the id
    /// its `recording` event names.
    pub fn record(&mut self, now: f64, call: u32, on: bool) -> Option<u32> {
        self.act(now, |ua, now| ua.record(now, CallId(call), on).map(|m| m.0))
    }

    /// One DTMF digit as SIP INFO.
    #[wasm_bindgen(js_name = sendDtmfInfo)]
    pub fn send_dtmf_info(&mut self, now: f64, call: u32, digit: char, duration_ms: u32) -> bool {
        self.act(now, |ua, now| {
            ua.send_dtmf_info(now, CallId(call), digit, duration_ms)
        })
        .is_some()
    }

    /// A MESSAGE outside any call; its id (`message_sent` or
    /// `message_failed` names it).
    pub fn message(
        &mut self,
        now: f64,
        target: &str,
        content_type: &str,
        body: &str,
    ) -> Option<u32> {
        self.act(now, |ua, now| {
            ua.message(now, target, content_type, body).map(|m| m.0)
        })
    }

    /// A MESSAGE in `call`'s dialog.
    #[wasm_bindgen(js_name = callMessage)]
    pub fn call_message(&mut self, now: f64, call: u32, content_type: &str, body: &str) -> bool {
        self.act(now, |ua, now| {
            ua.call_message(now, CallId(call), content_type, body)
        })
        .is_some()
    }

    /// An INFO of any type in `call`; its id (`info_answered` names it).
    pub fn info(&mut self, now: f64, call: u32, content_type: &str, body: &str) -> Option<u32> {
        self.act(now, |ua, now| {
            ua.info(now, CallId(call), content_type, body)
                .map(|m: MessageId| m.0)
        })
    }

    /// Subscribes to `event` of `target` (RFC 6665); its id.
    pub fn subscribe(
        &mut self,
        now: f64,
        target: &str,
        event: &str,
        accept: Option<String>,
        expires: Option<u32>,
    ) -> Option<u32> {
        self.act(now, |ua, now| {
            ua.subscribe(now, target, event, accept.as_deref(), expires)
                .map(|s| s.0)
        })
    }

    /// Ends a subscription; `subscription_ended` follows.
    pub fn unsubscribe(&mut self, now: f64, subscription: u32) -> bool {
        self.act(now, |ua, now| {
            ua.unsubscribe(now, SubscriptionId(subscription))
        })
        .is_some()
    }

    /// Reserves `call`'s next session change for an offer of ours (hold
    /// when `held` says so, else as it is); whether that offer must hold.
    #[wasm_bindgen(js_name = beginUpdate)]
    pub fn begin_update(&mut self, call: u32, held: Option<bool>) -> Option<bool> {
        self.act(0.0, |ua, _| ua.begin_update(CallId(call), held))
    }

    /// Gives the reserved change back: the offer could not be made.
    #[wasm_bindgen(js_name = abandonUpdate)]
    pub fn abandon_update(&mut self, call: u32) {
        self.ua.abandon_update(CallId(call));
    }

    /// Sends our new `offer` for `call` in the reserved change (re-INVITE).
    pub fn update(&mut self, now: f64, call: u32, offer: &str) -> bool {
        self.act(now, |ua, now| ua.update(now, CallId(call), offer))
            .is_some()
    }

    /// The browser could not take the far end's offer in `call`: it is
    /// refused, and the call stays as it was.
    #[wasm_bindgen(js_name = refuseOffer)]
    pub fn refuse_offer(&mut self, now: f64, call: u32) -> bool {
        self.act(now, |ua, now| ua.refuse_offer(now, CallId(call)))
            .is_some()
    }

    /// Whether we hold `call`, as agreed so far.
    pub fn held(&self, call: u32) -> bool {
        self.ua.held(CallId(call))
    }

    /// Whether our answer to `offer` in `call` (or, without `offer`, our
    /// offer) may leave before ICE gathering ends; `app_says`: the app's
    /// `iceLite` option.
    #[wasm_bindgen(js_name = candidatesOptional)]
    pub fn candidates_optional(
        &self,
        call: u32,
        offer: Option<String>,
        app_says: Option<bool>,
    ) -> bool {
        let answering = offer.as_deref().map(|o| (CallId(call), o));
        self.ua.candidates_optional(answering, app_says)
    }

    /// Trickles what is new in our local description `sdp` to `call`'s
    /// far end (RFC 8840), the last time with `complete`.
    #[wasm_bindgen(js_name = sendCandidates)]
    pub fn send_candidates(&mut self, now: f64, call: u32, sdp: &str, complete: bool) -> bool {
        self.act(now, |ua, now| {
            ua.send_candidates(now, CallId(call), sdp, complete)
        })
        .is_some()
    }
}

/// Why a call to `target` would be refused (it is not a SIP URI), as
/// [`refusal`]'s string; nothing when it would not.
#[wasm_bindgen(js_name = checkTarget)]
pub fn check_target(target: &str) -> Option<String> {
    UserAgent::check_target(target).err().map(|e| refusal(&e))
}

/// Whether two SDPs name the same far end (ICE user fragment and DTLS
/// fingerprint): after a reconnect, whether the relay's answer still
/// reaches the media we have.
#[wasm_bindgen(js_name = sameTransport)]
pub fn same_transport(a: &str, b: &str) -> bool {
    sipline_core::sdp::same_transport(a, b)
}

/// The staged headers as the core takes them. Out of line, as
/// [`header_refusal`]: [`Core::act`] is copied for every action.
#[inline(never)]
fn header_pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// A header the core refused, as a refusal with the code `bad_header`.
#[inline(never)]
fn header_refusal(e: &sipline_core::HeaderError) -> String {
    let mut s = String::from("bad_header ");
    s.push_str(&e.to_string());
    s
}
