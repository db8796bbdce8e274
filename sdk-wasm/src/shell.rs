//! The I/O shell around the sans-IO core: one WebSocket (reconnected with
//! backoff and jitter), one `setTimeout` for the core's next deadline, one
//! peer connection per call, and the queue that turns core events into
//! media steps and then JS events, in order.
//!
//! Nothing here decides anything SIP: every request, response, timer and
//! retry is the core's, and so are offer/answer, glare and who holds whom.
//! The shell moves bytes, time and SDP between the core and the browser;
//! the browser's side of each call's media steps is in `calls`.

use crate::prelude::*;
use alloc::collections::VecDeque;
use alloc::rc::{Rc, Weak};
use core::cell::RefCell;

use js_sys::Function;
use sipline_core::ActionError;
use sipline_core::{Event, Instant, UserAgent};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

mod calls;
mod notify;

pub(crate) use self::calls::CallTo;
use self::calls::{CallMap, CallMedia};
use crate::js::{self, Obj};
use crate::media::MediaSettings;

/// How long to wait before the next connection attempt: doubling from
/// `min_ms` to `max_ms`, each delay drawn from its upper half so that a
/// relay restart is not met by every browser at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Backoff {
    fn delay_ms(self, attempt: u32) -> f64 {
        // (`Math`: no float functions without `std`.)
        let doubled = js_sys::Math::pow(2.0, f64::from(attempt.min(30)) - 1.0);
        let ceiling = (self.min_ms * doubled).min(self.max_ms);
        ceiling * (0.5 + 0.5 * js::random())
    }
}

/// Everything the shell needs besides the core.
pub(crate) struct ShellSettings {
    pub server: String,
    pub media: MediaSettings,
    pub backoff: Backoff,
}

/// The open WebSocket and the handlers it calls: kept together so the
/// handlers live exactly as long as the socket can call them.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn detach(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
    }
}

struct State {
    ua: UserAgent,
    socket: Option<Socket>,
    /// The socket that just closed: its handler may still be on the stack,
    /// so it is dropped only when the next one is made.
    retired: Option<Socket>,
    generation: u32,
    /// The armed core timer: its handle and the instant it fires at.
    core_timer: Option<(i32, Instant)>,
    reconnect_timer: Option<i32>,
    attempts: u32,
    /// The current socket opened (the core was told so).
    open: bool,
    connected_once: bool,
    /// `close()` was called: no more reconnects.
    closed: bool,
    calls: CallMap,
    queue: VecDeque<Event>,
    draining: bool,
}

/// The shell. Handlers and tasks hold it weakly or briefly; the JS
/// `Engine` object owns it.
pub(crate) struct Shell {
    state: RefCell<State>,
    emit: Function,
    settings: ShellSettings,
    on_core_timer: RefCell<Option<Closure<dyn FnMut()>>>,
    on_reconnect_timer: RefCell<Option<Closure<dyn FnMut()>>>,
}

fn now() -> Instant {
    Instant::from_millis(js::now_ms().max(0.0) as u64)
}

impl Shell {
    pub(crate) fn new(ua: UserAgent, emit: Function, settings: ShellSettings) -> Rc<Shell> {
        let shell = Rc::new(Shell {
            state: RefCell::new(State {
                ua,
                socket: None,
                retired: None,
                generation: 0,
                core_timer: None,
                reconnect_timer: None,
                attempts: 0,
                open: false,
                connected_once: false,
                closed: false,
                calls: CallMap::default(),
                queue: VecDeque::new(),
                draining: false,
            }),
            emit,
            settings,
            on_core_timer: RefCell::new(None),
            on_reconnect_timer: RefCell::new(None),
        });
        let weak = Rc::downgrade(&shell);
        *shell.on_core_timer.borrow_mut() = Some(Closure::new(move || {
            if let Some(shell) = weak.upgrade() {
                shell.state.borrow_mut().core_timer = None;
                shell.state.borrow_mut().ua.handle_timeout(now());
                shell.pump();
            }
        }));
        let weak = Rc::downgrade(&shell);
        *shell.on_reconnect_timer.borrow_mut() = Some(Closure::new(move || {
            if let Some(shell) = weak.upgrade() {
                shell.state.borrow_mut().reconnect_timer = None;
                shell.open_socket();
            }
        }));
        shell
    }

    /// Tells the app; a handler that throws is logged, not fatal.
    fn emit(&self, name: &str, detail: JsValue) {
        if let Err(e) = self
            .emit
            .call2(&JsValue::NULL, &JsValue::from_str(name), &detail)
        {
            web_sys::console::error_2(&JsValue::from_str("sipline: event handler threw"), &e);
        }
    }

    /// Runs `f` on the core at the current time, then sends what it queued.
    pub(crate) fn with_ua<R>(self: &Rc<Self>, f: impl FnOnce(&mut UserAgent, Instant) -> R) -> R {
        let r = f(&mut self.state.borrow_mut().ua, now());
        self.pump();
        r
    }

    /// [`Self::with_ua`] with the app's `headers` on what `f` sends; a
    /// header the core refuses rejects the whole action.
    pub(crate) fn with_ua_headers<R>(
        self: &Rc<Self>,
        headers: &[(String, String)],
        f: impl FnOnce(&mut UserAgent, Instant) -> R,
    ) -> Result<R, JsValue> {
        let pairs = header_pairs(headers);
        let now = now();
        let r = self
            .state
            .borrow_mut()
            .ua
            .with_headers(&pairs, |ua| f(ua, now));
        self.pump();
        r.map_err(|e| header_error(&e))
    }

    /// [`Self::with_ua_headers`] for an action the core may refuse: its
    /// refusal becomes the typed JavaScript error.
    pub(crate) fn act<R>(
        self: &Rc<Self>,
        headers: &[(String, String)],
        f: impl FnOnce(&mut UserAgent, Instant) -> Result<R, ActionError>,
    ) -> Result<R, JsValue> {
        self.with_ua_headers(headers, f)?
            .map_err(|e| js::action_error(&e))
    }

    /// Opens the WebSocket (subprotocol `sip`, RFC 7118 §4).
    pub(crate) fn open_socket(self: &Rc<Self>) {
        let mut s = self.state.borrow_mut();
        if s.closed || s.socket.is_some() {
            return;
        }
        s.generation = s.generation.wrapping_add(1);
        let generation = s.generation;
        s.retired = None;
        let ws = match WebSocket::new_with_str(&self.settings.server, "sip") {
            Ok(ws) => ws,
            Err(e) => {
                drop(s);
                web_sys::console::error_1(&e);
                self.schedule_reconnect(0, "the WebSocket could not be created");
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let weak = Rc::downgrade(self);
        let on_open = Closure::<dyn FnMut()>::new(move || {
            if let Some(shell) = live(&weak, generation) {
                shell.on_open();
            }
        });
        let weak = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(shell) = live(&weak, generation) {
                shell.on_frame(e.data());
            }
        });
        let weak = Rc::downgrade(self);
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            if let Some(shell) = live(&weak, generation) {
                shell.on_close(e.code(), &e.reason());
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        s.socket = Some(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    fn generation(&self) -> u32 {
        self.state.borrow().generation
    }

    fn on_open(self: &Rc<Self>) {
        let again = {
            let mut s = self.state.borrow_mut();
            s.attempts = 0;
            s.open = true;
            let again = s.connected_once;
            s.connected_once = true;
            s.ua.transport_connected(now());
            again
        };
        self.emit(
            if again { "reconnected" } else { "connected" },
            Obj::new().build(),
        );
        self.pump();
    }

    fn on_frame(self: &Rc<Self>, data: JsValue) {
        let bytes = match data.as_string() {
            Some(text) => text.into_bytes(),
            None => js_sys::Uint8Array::new(&data).to_vec(),
        };
        let result = self.state.borrow_mut().ua.handle_message(now(), &bytes);
        if let Err(e) = result {
            // Dropped, as RFC 3261 §18.1.2 / §18.2.1 say; the relay logs it too.
            web_sys::console::warn_1(&JsValue::from_str(&format!(
                "sipline: dropped a malformed SIP message: {e}"
            )));
        }
        self.pump();
    }

    fn on_close(self: &Rc<Self>, code: u16, reason: &str) {
        {
            let mut s = self.state.borrow_mut();
            if let Some(socket) = s.socket.take() {
                socket.detach();
                s.retired = Some(socket);
            }
            // A socket that never opened changes nothing for the core.
            if core::mem::replace(&mut s.open, false) {
                s.ua.transport_closed(now());
            }
        }
        self.pump();
        if !self.state.borrow().closed {
            self.schedule_reconnect(code, reason);
        }
    }

    fn schedule_reconnect(self: &Rc<Self>, code: u16, reason: &str) {
        let delay = {
            let mut s = self.state.borrow_mut();
            s.attempts += 1;
            self.settings.backoff.delay_ms(s.attempts)
        };
        let attempt = self.state.borrow().attempts;
        if let (Ok(w), Some(cb)) = (js::window(), self.on_reconnect_timer.borrow().as_ref()) {
            let handle = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                cb.as_ref().unchecked_ref(),
                delay as i32,
            );
            self.state.borrow_mut().reconnect_timer = handle.ok();
        }
        self.emit(
            "reconnecting",
            Obj::new()
                .set("attempt", attempt)
                .set("delayMs", js_sys::Math::round(delay))
                .set("code", code)
                .set("reason", reason)
                .build(),
        );
    }

    /// Closes the socket and stops everything: the app's `disconnect()`,
    /// after the unregistration had its chance.
    pub(crate) fn close(self: &Rc<Self>) {
        let (socket, timers, calls) = {
            let mut s = self.state.borrow_mut();
            s.closed = true;
            let timers = (s.core_timer.take(), s.reconnect_timer.take());
            let calls = s.calls.take_all();
            (s.socket.take(), timers, calls)
        };
        if let Ok(w) = js::window() {
            if let Some((handle, _)) = timers.0 {
                w.clear_timeout_with_handle(handle);
            }
            if let Some(handle) = timers.1 {
                w.clear_timeout_with_handle(handle);
            }
        }
        for media in calls {
            media.close();
        }
        if let Some(socket) = socket {
            socket.detach();
            let _ = socket.ws.close();
            let mut s = self.state.borrow_mut();
            s.retired = Some(socket);
            if core::mem::replace(&mut s.open, false) {
                s.ua.transport_closed(now());
            }
            drop(s);
            self.pump();
        }
    }

    /// Sends what the core queued, re-arms its timer, and queues its events.
    pub(crate) fn pump(self: &Rc<Self>) {
        let start = {
            let mut s = self.state.borrow_mut();
            let s = &mut *s;
            while let Some(frame) = s.ua.poll_transmit() {
                let Some(socket) = s.socket.as_ref() else {
                    continue;
                };
                if socket.ws.ready_state() != WebSocket::OPEN {
                    continue;
                }
                // One SIP message per frame (RFC 7118 §5.2): text when it is
                // UTF-8, as SIP nearly always is.
                let sent = match core::str::from_utf8(&frame) {
                    Ok(text) => socket.ws.send_with_str(text),
                    Err(_) => socket.ws.send_with_u8_array(&frame),
                };
                if let Err(e) = sent {
                    web_sys::console::warn_1(&e);
                }
            }
            self.arm_core_timer(s);
            while let Some(event) = s.ua.poll_event() {
                s.queue.push_back(event);
            }
            let start = !s.draining && !s.queue.is_empty();
            s.draining |= start;
            start
        };
        if start {
            wasm_bindgen_futures::spawn_local(self.clone().drain());
        }
    }

    fn arm_core_timer(&self, s: &mut State) {
        if s.closed {
            return; // closed for good: nothing may call back into a freed engine
        }
        let next = s.ua.poll_timeout();
        if s.core_timer.map(|(_, at)| at) == next {
            return;
        }
        let Ok(w) = js::window() else { return };
        if let Some((handle, _)) = s.core_timer.take() {
            w.clear_timeout_with_handle(handle);
        }
        let callback = self.on_core_timer.borrow();
        let (Some(at), Some(cb)) = (next, callback.as_ref()) else {
            return;
        };
        let delay = at
            .saturating_duration_since(now())
            .as_millis()
            .min(i32::MAX as u128);
        if let Ok(handle) = w.set_timeout_with_callback_and_timeout_and_arguments_0(
            cb.as_ref().unchecked_ref(),
            delay as i32,
        ) {
            s.core_timer = Some((handle, at));
        }
    }

    /// Handles the queued events one at a time, media first: the app hears
    /// `accepted` once the answer is applied, never before.
    async fn drain(self: Rc<Self>) {
        loop {
            let event = {
                let mut s = self.state.borrow_mut();
                match s.queue.pop_front() {
                    Some(event) => event,
                    None => {
                        s.draining = false;
                        return;
                    }
                }
            };
            self.on_event(event).await;
        }
    }

    async fn on_event(self: &Rc<Self>, event: Event) {
        let name = event.name();
        let detail = match event {
            Event::KeepAliveTimeout => {
                // The flow is dead though the socket looks open: close it,
                // and the close handler reconnects.
                if let Some(socket) = self.state.borrow().socket.as_ref() {
                    let _ = socket.ws.close();
                }
                Obj::new()
            }
            Event::Registered { expires } => Obj::new().set("expires", expires),
            Event::RegistrationFailed {
                code,
                reason,
                retry_in,
            } => Obj::new()
                .set("code", code)
                .set("reason", reason)
                .opt("retryInMs", retry_in.map(|d| d.as_millis() as f64)),
            Event::Unregistered { code, reason } => {
                Obj::new().opt("code", code).set("reason", reason)
            }
            Event::Incoming {
                call,
                from,
                display_name,
                sdp,
                headers,
                replaces,
            } => {
                let has_offer = sdp.is_some();
                self.state.borrow_mut().calls.insert(
                    call.0,
                    CallMedia {
                        offer: sdp,
                        ..CallMedia::default()
                    },
                );
                Obj::new()
                    .set("call", call.0)
                    .set("from", from)
                    .opt("displayName", display_name)
                    .set("hasOffer", has_offer)
                    .set("headers", js::header_object(headers))
                    .opt("replaces", replaces.map(|c| c.0))
            }
            Event::Calling { call, target } => Obj::new().set("call", call.0).set("to", target),
            Event::Ringing { call } => Obj::new().set("call", call.0),
            Event::Progress { call, sdp } => {
                if let Some(media) = self.media(call)
                    && let Err(e) = media.accept(&sdp, true).await
                {
                    return self.media_failed(call, &e);
                }
                Obj::new().set("call", call.0)
            }
            Event::Accepted { call, sdp } => {
                // Empty when there is nothing new (we answered its offer).
                if !sdp.is_empty()
                    && let Some(media) = self.media(call)
                    && let Err(e) = media.accept(&sdp, false).await
                {
                    // Not `accepted`: the call is being hung up.
                    return self.media_failed(call, &e);
                }
                Obj::new().set("call", call.0)
            }
            Event::CandidatesNeeded { call, trickle } => {
                // The app's call does not change: an INFO or a re-INVITE
                // carries our candidates once gathered, off the event
                // queue (which must not wait for gathering).
                wasm_bindgen_futures::spawn_local(self.clone().send_candidates(call, trickle));
                return;
            }
            Event::RemoteCandidates {
                call,
                candidates,
                end,
            } => {
                if let Some(media) = self.media(call) {
                    media.add_candidates(&candidates, end).await;
                }
                return;
            }
            Event::Recovered { call, sdp } => {
                if let Some(media) = self.media(call)
                    && !media.same_far_end(&sdp)
                {
                    // The relay answered with other media (it restarted,
                    // or made a new session): ours reaches nobody.
                    self.media_failed(
                        call,
                        &js::error("the call's media did not survive the reconnect"),
                    );
                }
                Obj::new().set("call", call.0)
            }
            Event::Updating { call, sdp } => {
                self.far_end_update(call, sdp).await;
                Obj::new().set("call", call.0)
            }
            Event::Updated { call, sdp } => {
                if let Some(media) = self.media(call)
                    && let Err(e) = media.accept(&sdp, false).await
                {
                    return self.media_failed(call, &e);
                }
                Obj::new().set("call", call.0)
            }
            Event::Hold { call, held, by } => Obj::new()
                .set("call", call.0)
                .set("held", held)
                .set("by", by.as_str()),
            Event::UpdateFailed { call, code, reason } => {
                if let Some(media) = self.media(call) {
                    // The refused offer's change did not happen: the
                    // directions go back to what was agreed.
                    let held = self.state.borrow().ua.held(call);
                    if let Err(e) = media.rollback(held).await {
                        self.media_failed(call, &e);
                    }
                }
                Obj::new()
                    .set("call", call.0)
                    .set("code", code)
                    .set("reason", reason)
            }
            Event::Dtmf {
                call,
                digit,
                duration_ms,
            } => Obj::new()
                .set("call", call.0)
                .set("digit", String::from(digit))
                .set("durationMs", duration_ms),
            Event::Message {
                call,
                from,
                content_type,
                body,
                headers,
            } => Obj::new()
                .opt("call", call.map(|c| c.0))
                .set("from", from)
                .set("contentType", content_type)
                .set("body", body)
                .set("headers", js::header_object(headers)),
            Event::Transfer {
                call,
                code,
                reason,
                done,
            } => Obj::new()
                .set("call", call.0)
                .set("code", code)
                .set("reason", reason)
                .set("done", done),
            Event::Referred {
                call,
                target,
                referred_by,
                attended,
            } => Obj::new()
                .set("call", call.0)
                .set("target", target)
                .opt("referredBy", referred_by)
                .set("attended", attended),
            Event::Replaced { call, by } => Obj::new().set("call", call.0).set("by", by.0),
            Event::Info {
                call,
                content_type,
                body,
                headers,
            } => Obj::new()
                .set("call", call.0)
                .set("contentType", content_type)
                .set("body", body)
                .set("headers", js::header_object(headers)),
            Event::InfoAnswered {
                call,
                id,
                code,
                reason,
            } => Obj::new()
                .set("call", call.0)
                .set("id", id.0)
                .set("code", code)
                .set("reason", reason),
            Event::SubscriptionActive {
                subscription,
                expires,
            } => Obj::new()
                .set("subscription", subscription.0)
                .set("expires", expires),
            Event::Notify {
                subscription,
                state,
                content_type,
                body,
                status,
            } => Obj::new()
                .set("subscription", subscription.0)
                .set("state", state)
                .set("contentType", content_type)
                .set("body", body)
                .opt("status", status.map(notify::status_object)),
            Event::SubscriptionEnded {
                subscription,
                code,
                reason,
            } => Obj::new()
                .set("subscription", subscription.0)
                .opt("code", code)
                .set("reason", reason),
            Event::MessageSent { id } => Obj::new().set("id", id.0),
            Event::MessageFailed { id, code, reason } => Obj::new()
                .set("id", id.0)
                .set("code", code)
                .set("reason", reason),
            Event::Hangup { call, code, reason } => {
                let media = self.state.borrow_mut().calls.remove(&call.0);
                if let Some(media) = media.and_then(|c| c.media) {
                    media.close();
                }
                Obj::new()
                    .set("call", call.0)
                    .opt("code", code)
                    .set("reason", reason)
            }
            Event::Registering | Event::Unregistering => Obj::new(),
        };
        self.emit(name, detail.build());
    }
}

impl Drop for Shell {
    /// The engine was freed: no timer may fire into its dropped closures.
    fn drop(&mut self) {
        let s = self.state.get_mut();
        if let Ok(w) = js::window() {
            if let Some((handle, _)) = s.core_timer.take() {
                w.clear_timeout_with_handle(handle);
            }
            if let Some(handle) = s.reconnect_timer.take() {
                w.clear_timeout_with_handle(handle);
            }
        }
        if let Some(socket) = s.socket.take() {
            socket.detach();
            let _ = socket.ws.close();
        }
    }
}

/// The app's headers as the core takes them. Out of line, as
/// [`header_error`]: [`Shell::with_ua_headers`] is copied for every
/// exported action, these once.
#[inline(never)]
fn header_pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// A header the core refused, as the `Error` the app gets.
#[inline(never)]
fn header_error(e: &sipline_core::HeaderError) -> JsValue {
    js::error(&e.to_string())
}

/// The shell, if it is still there and `generation` is its current socket.
fn live(weak: &Weak<Shell>, generation: u32) -> Option<Rc<Shell>> {
    weak.upgrade().filter(|s| s.generation() == generation)
}
