//! The browser half of sipline's SDK: the WebAssembly module the npm
//! package `sipline` wraps.
//!
//! It owns what only a browser has (the WebSocket, the `RTCPeerConnection`s,
//! `getUserMedia`, `setTimeout`) and drives the sans-IO core with it. All SIP
//! behaviour lives in `sipline-core`; this crate moves bytes, time and SDP,
//! and turns the core's events into calls of one JS function
//! `emit(name, detail)`. The typed, promise-based API that applications use
//! is the TypeScript facade in `npm/`, which builds on [`Engine`].

// In the browser there is no `std`: its panic and formatting machinery
// would be bytes every page pays for. The heap is dlmalloc (what `std`
// uses on wasm32) and a panic, which the core's checks leave only to bugs,
// is the wasm trap it would be anyway (`panic = "abort"`). Natively (the
// workspace's lints and tests) the crate keeps `std`.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static HEAP: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

mod prelude;
use prelude::*;

mod js;
mod media;
mod shell;

use alloc::rc::Rc;
use core::time::Duration;

use js_sys::{Function, Promise};
use sipline_core::CallId;
use sipline_core::sip::reason_phrase;
use sipline_core::{Config, Secret, UserAgent};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::MediaStream;

use media::{MediaSettings, Want};
use shell::{Backoff, CallTo, Shell, ShellSettings};

/// One phone: a registration (or a guest), its WebSocket and its calls.
/// The npm facade creates one per `Phone.connect`.
#[wasm_bindgen]
pub struct Engine {
    shell: Rc<Shell>,
}

/// Reads the options object `Phone.connect` was given (the facade has
/// checked its types and filled defaults).
fn config(options: &JsValue) -> Result<(Config, ShellSettings), JsValue> {
    let server = js::get_str(options, "server").ok_or_else(|| js::error("server is required"))?;
    let uri = js::get_str(options, "uri").ok_or_else(|| js::error("uri is required"))?;
    let mut config = Config::new(uri);
    config.secure = server.starts_with("wss:");
    config.password = js::get_str(options, "password").map(Secret::new);
    config.auth_username = js::get_str(options, "authUser");
    config.display_name = js::get_str(options, "displayName");
    config.registrar = js::get_str(options, "registrar");
    config.instance_id = js::get_str(options, "instanceId");
    if let Some(agent) = js::get_str(options, "userAgent") {
        config.user_agent = agent;
    }
    if let Some(ring) = js::get(options, "autoRinging").as_bool() {
        config.auto_ringing = ring;
    }
    if let Some(register) = js::get(options, "register").as_bool() {
        config.register = register;
    }
    if let Some(expires) = js::get_num(options, "registerExpires") {
        config.register_expires = expires as u32;
    }
    if let Some(secs) = js::get_num(options, "sessionExpiresSecs") {
        config.session_expires = (secs > 0.0).then_some(secs as u32);
    }
    let prefixes = js::get(options, "incomingHeaderPrefixes");
    if prefixes.is_object() {
        config.incoming_header_prefixes = js_sys::Array::from(&prefixes)
            .iter()
            .filter_map(|p| p.as_string())
            .collect();
    }
    if let Some(secs) = js::get_num(options, "keepAliveSecs") {
        config.keepalive_interval = (secs > 0.0).then(|| Duration::from_secs(secs as u64));
    }
    let settings = ShellSettings {
        server,
        media: MediaSettings {
            ice_servers: js::get(options, "iceServers"),
            gathering_timeout_ms: js::get_num(options, "iceGatheringTimeoutMs").unwrap_or(2000.0)
                as i32,
            ice_lite: js::get(options, "iceLite").as_bool(),
        },
        backoff: Backoff {
            min_ms: js::get_num(options, "reconnectMinMs").unwrap_or(500.0),
            max_ms: js::get_num(options, "reconnectMaxMs").unwrap_or(30_000.0),
        },
    };
    Ok((config, settings))
}

fn want(audio: bool, video: bool) -> Want {
    Want { audio, video }
}

#[wasm_bindgen]
impl Engine {
    /// Builds the phone; nothing is sent before [`Engine::connect`].
    /// `emit(name, detail)` receives every event.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, emit: Function) -> Result<Engine, JsValue> {
        let (config, settings) = config(&options)?;
        let ua = UserAgent::new(config, js::seed()?).map_err(|e| js::config_error(&e))?;
        Ok(Engine {
            shell: Shell::new(ua, emit, settings),
        })
    }

    /// Opens the WebSocket; it registers once open (unless a guest) and
    /// reconnects whenever it drops, until [`Engine::close`].
    pub fn connect(&self) {
        self.shell.open_socket();
    }

    /// Registers again (after [`Engine::unregister`]).
    pub fn register(&self) {
        self.shell.with_ua(|ua, now| ua.register(now));
    }

    /// Removes the binding; `unregistered` follows.
    pub fn unregister(&self) {
        self.shell.with_ua(|ua, now| ua.unregister(now));
    }

    /// Closes the WebSocket and every call's media, for good.
    pub fn close(&self) {
        self.shell.close();
    }

    // Every method that sends takes the app's `headers` last: a plain
    // object `{ "X-Name": "value" }` (or undefined), added to what it
    // sends. A header the core refuses throws (or rejects) before
    // anything is sent.

    /// Calls `target`; resolves with the call's id once the INVITE is
    /// sent, rejects when the microphone is refused or there is no
    /// connection.
    pub fn call(&self, target: String, audio: bool, video: bool, headers: JsValue) -> Promise {
        let shell = self.shell.clone();
        let headers = js::headers(&headers);
        future_to_promise(async move {
            shell.with_ua_headers(&headers, |_, _| ())?;
            shell
                .call(CallTo::Target(target), want(audio, video), headers)
                .await
                .map(JsValue::from)
        })
    }

    /// Throws the `TypeError` a call to `target` would get (not a SIP URI),
    /// before anything asks for the microphone.
    #[wasm_bindgen(js_name = checkTarget)]
    pub fn check_target(&self, target: &str) -> Result<(), JsValue> {
        UserAgent::check_target(target).map_err(|e| js::action_error(&e))
    }

    /// Follows the far end's transfer request (a `referred` event) of call
    /// `call`: a new call to its target, whose progress the far end hears
    /// of. Resolves with the new call's id once its INVITE is sent.
    #[wasm_bindgen(js_name = acceptReferral)]
    pub fn accept_referral(
        &self,
        call: u32,
        audio: bool,
        video: bool,
        headers: JsValue,
    ) -> Promise {
        let shell = self.shell.clone();
        let headers = js::headers(&headers);
        future_to_promise(async move {
            shell.with_ua_headers(&headers, |_, _| ())?;
            shell
                .call(CallTo::Referral(call), want(audio, video), headers)
                .await
                .map(JsValue::from)
        })
    }

    /// Refuses the far end's transfer request of call `call` (it hears
    /// 603); throws (`no_referral`) if none waits.
    #[wasm_bindgen(js_name = declineReferral)]
    pub fn decline_referral(&self, call: u32) -> Result<(), JsValue> {
        self.shell
            .act(&[], |ua, now| ua.decline_referral(now, CallId(call)))
    }

    /// Tells the caller of incoming call `call` that it rings (`180`), for
    /// an app that turned `autoRinging` off.
    pub fn ringing(&self, call: u32, headers: JsValue) -> Result<(), JsValue> {
        self.shell.act(&js::headers(&headers), |ua, now| {
            ua.ringing(now, CallId(call))
        })
    }

    /// Answers incoming call `call`; resolves once the answer is sent.
    pub fn answer(&self, call: u32, audio: bool, video: bool, headers: JsValue) -> Promise {
        let shell = self.shell.clone();
        let headers = js::headers(&headers);
        future_to_promise(async move {
            shell.with_ua_headers(&headers, |_, _| ())?;
            shell
                .answer(call, want(audio, video), headers)
                .await
                .map(|()| JsValue::UNDEFINED)
        })
    }

    /// Declines an incoming call with `code` (486, 603…) and `reason`
    /// (by default the code's own phrase).
    pub fn decline(
        &self,
        call: u32,
        code: Option<u16>,
        reason: Option<String>,
        headers: JsValue,
    ) -> Result<(), JsValue> {
        let code = code.unwrap_or(UserAgent::DECLINE_CODE);
        let reason = reason.unwrap_or_else(|| reason_phrase(code).to_owned());
        self.shell.act(&js::headers(&headers), |ua, now| {
            ua.decline(now, CallId(call), code, &reason)
        })
    }

    /// Ends a call: BYE, or CANCEL while it rings.
    pub fn hangup(&self, call: u32, headers: JsValue) -> Result<(), JsValue> {
        self.shell.act(&js::headers(&headers), |ua, now| {
            ua.hangup(now, CallId(call))
        })
    }

    /// Holds (`held`) or resumes a call by re-INVITE; resolves once sent.
    pub fn hold(&self, call: u32, held: bool, headers: JsValue) -> Promise {
        let shell = self.shell.clone();
        let headers = js::headers(&headers);
        future_to_promise(async move {
            shell.with_ua_headers(&headers, |_, _| ())?;
            shell
                .reoffer(call, Some(held), false, headers)
                .await
                .map(|()| JsValue::UNDEFINED)
        })
    }

    /// Restarts ICE (new credentials, the relay checks the new path) by
    /// re-INVITE, e.g. after the network changed; resolves once sent.
    #[wasm_bindgen(js_name = restartIce)]
    pub fn restart_ice(&self, call: u32, headers: JsValue) -> Promise {
        let shell = self.shell.clone();
        let headers = js::headers(&headers);
        future_to_promise(async move {
            shell.with_ua_headers(&headers, |_, _| ())?;
            shell
                .reoffer(call, None, true, headers)
                .await
                .map(|()| JsValue::UNDEFINED)
        })
    }

    /// Blind-transfers a call to `target` (REFER); throws if the call is
    /// not up or `target` is not a SIP URI. `transfer` events follow.
    pub fn transfer(&self, call: u32, target: &str, headers: JsValue) -> Result<(), JsValue> {
        self.shell.act(&js::headers(&headers), |ua, now| {
            ua.transfer(now, CallId(call), target)
        })
    }

    /// Attended transfer: asks the far end of `call` to call the far end
    /// of `other` (the consultation) in its place, with Replaces; the
    /// outcome arrives as `transfer` events, as for [`Engine::transfer`].
    #[wasm_bindgen(js_name = transferReplacing)]
    pub fn transfer_replacing(
        &self,
        call: u32,
        other: u32,
        headers: JsValue,
    ) -> Result<(), JsValue> {
        self.shell.act(&js::headers(&headers), |ua, now| {
            ua.transfer_replacing(now, CallId(call), CallId(other))
        })
    }

    /// Mutes or unmutes the microphone of a call; `false` if no such call.
    pub fn mute(&self, call: u32, muted: bool) -> bool {
        self.shell
            .call_media(call)
            .map(|m| m.set_muted(muted))
            .is_some()
    }

    /// Sends DTMF `digits` in the media (RFC 4733); `false` if the call
    /// has no audio sender.
    #[wasm_bindgen(js_name = sendDtmf)]
    pub fn send_dtmf(&self, call: u32, digits: &str, duration_ms: u32, gap_ms: u32) -> bool {
        self.shell
            .call_media(call)
            .is_some_and(|m| m.send_dtmf(digits, duration_ms, gap_ms))
    }

    /// Sends one DTMF digit as SIP INFO; throws if the call is not up or
    /// `digit` is not one.
    #[wasm_bindgen(js_name = sendDtmfInfo)]
    pub fn send_dtmf_info(
        &self,
        call: u32,
        digit: char,
        duration_ms: u32,
        headers: JsValue,
    ) -> Result<(), JsValue> {
        self.shell.act(&js::headers(&headers), |ua, now| {
            ua.send_dtmf_info(now, CallId(call), digit, duration_ms)
        })
    }

    /// Sends a MESSAGE outside any call; returns its id (`message_sent` or
    /// `message_failed` follows); throws when not connected or `target` is
    /// not a SIP URI.
    pub fn message(
        &self,
        target: &str,
        content_type: &str,
        body: &str,
        headers: JsValue,
    ) -> Result<u32, JsValue> {
        self.shell
            .act(&js::headers(&headers), |ua, now| {
                ua.message(now, target, content_type, body)
            })
            .map(|id| id.0)
    }

    /// Subscribes to `event` of `target` (RFC 6665), taking `accept`
    /// bodies, for `expires` seconds (the core's defaults when undefined;
    /// kept up until `unsubscribe`); its
    /// id, which the `subscription_active`, `notify` and
    /// `subscription_ended` events carry.
    pub fn subscribe(
        &self,
        target: &str,
        event: &str,
        accept: Option<String>,
        expires: Option<u32>,
        headers: JsValue,
    ) -> Result<u32, JsValue> {
        self.shell
            .act(&js::headers(&headers), |ua, now| {
                ua.subscribe(now, target, event, accept.as_deref(), expires)
            })
            .map(|id| id.0)
    }

    /// Ends a subscription; `subscription_ended` follows.
    pub fn unsubscribe(&self, subscription: u32) -> Result<(), JsValue> {
        self.shell.act(&[], |ua, now| {
            ua.unsubscribe(now, sipline_core::SubscriptionId(subscription))
        })
    }

    /// Sends a MESSAGE in a call's dialog; throws if the call is not up.
    #[wasm_bindgen(js_name = callMessage)]
    pub fn call_message(
        &self,
        call: u32,
        content_type: &str,
        body: &str,
        headers: JsValue,
    ) -> Result<(), JsValue> {
        self.shell.act(&js::headers(&headers), |ua, now| {
            ua.call_message(now, CallId(call), content_type, body)
        })
    }

    /// Sends an INFO of any type in a call; returns its id, which the
    /// `info_answered` event names. Throws if the call is not up.
    pub fn info(
        &self,
        call: u32,
        content_type: &str,
        body: &str,
        headers: JsValue,
    ) -> Result<u32, JsValue> {
        self.shell
            .act(&js::headers(&headers), |ua, now| {
                ua.info(now, CallId(call), content_type, body)
            })
            .map(|id| id.0)
    }

    /// What the far end sends, for an `<audio>`/`<video>` element.
    #[wasm_bindgen(js_name = remoteStream)]
    pub fn remote_stream(&self, call: u32) -> Option<MediaStream> {
        self.shell.call_media(call)?.remote_stream().ok()
    }

    /// What the call sends (the microphone, the camera).
    #[wasm_bindgen(js_name = localStream)]
    pub fn local_stream(&self, call: u32) -> Option<MediaStream> {
        Some(self.shell.call_media(call)?.local_stream())
    }

    /// The call's `RTCStatsReport`; `undefined` if there is no such call.
    pub fn stats(&self, call: u32) -> Option<Promise> {
        Some(self.shell.call_media(call)?.stats())
    }
}
