// The engine: the I/O shell around the sans-IO core (sdk-wasm, compiled to
// WebAssembly). It owns what only a browser has: one WebSocket
// (reconnected with backoff and jitter), one timer for the core's next
// deadline, one peer connection per call, and the queue that turns the
// core's events into media steps and then the facade's events, in order.
//
// Nothing here decides anything SIP: every request, response, timer and
// retry is the core's, and so are offer/answer, glare, who holds whom and
// when an SDP may leave without candidates. The engine moves bytes, time
// and SDP between the core and the browser.

import { Core, checkTarget as coreCheckTarget } from "../wasm/sipline_wasm.js";
import { Media, type MediaSettings, type RemoteCandidate, type Want } from "./media.js";
import type { Detail, Headers, PhoneOptions } from "./types.js";

type Emit = (name: string, detail: Detail) => void;

/** @internal What the facade uses of the engine (a fake one drives the facade's tests). */
export type EngineLike = Pick<Engine,
  "connect" | "close" | "free" | "register" | "unregister" | "checkTarget" | "call" | "acceptReferral" |
  "declineReferral" | "ringing" | "answer" | "decline" | "hangup" | "hold" | "restartIce" | "transfer" |
  "transferReplacing" | "subscribe" | "unsubscribe" | "mute" | "video" | "sendsVideo" |
  "sendDtmf" | "sendDtmfInfo" | "message" | "callMessage" | "info" | "record" | "remoteStream" | "localStream" | "stats">;

/** A call as the engine sees it: its media once there is any, and the far end's offer until the app answers it. */
interface CallMedia {
  media?: Media;
  offer?: string;
}

/** The refusal codes that mean a bad argument (a `TypeError`). */
const ARGUMENT_CODES = new Set(["bad_target", "bad_text", "bad_digit"]);

/**
 * A refusal of the core's (`"<code> <message>"`) as the error JavaScript
 * expects: a bad argument a `TypeError` (a `RangeError` for a number out of
 * range) naming it, the wrong moment an `Error`; each with the refusal's
 * `code` (`not_connected`, `wrong_state`…) for the facade to sort on. A
 * refused header is a plain `Error`.
 */
function refusal(text: string): Error {
  const space = text.indexOf(" ");
  const code = text.slice(0, space);
  const message = text.slice(space + 1);
  if (code === "bad_header") return new Error(message);
  const error = code === "bad_code" ? new RangeError(message) : ARGUMENT_CODES.has(code) ? new TypeError(message) : new Error(message);
  return Object.assign(error, { code });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** Milliseconds on the page's monotonic clock: wall clock jumps must not fire or starve SIP timers. */
const now = (): number => performance.now();

/** One phone's engine: a registration (or a guest), its WebSocket, its calls' media. The facade creates one per `Phone.connect`. */
export class Engine {
  readonly #core: Core;
  readonly #emit: Emit;
  readonly #server: string;
  readonly #media: MediaSettings;
  readonly #backoff: { min: number; max: number };
  #socket: WebSocket | undefined;
  /** Counts sockets: the handlers of an old one do nothing. */
  #generation = 0;
  /** The armed core timer and the deadline it fires at. */
  #coreTimer: { handle: ReturnType<typeof setTimeout>; at: number } | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #attempts = 0;
  /** The current socket opened (the core was told so). */
  #open = false;
  #connectedOnce = false;
  /** `close()` was called: no more reconnects. */
  #closed = false;
  /** `free()` was called: the core is gone. */
  #freed = false;
  readonly #calls = new Map<number, CallMedia>();
  readonly #queue: [string, Detail][] = [];
  #draining = false;

  /** Builds the phone; nothing is sent before {@link connect}. `emit(name, detail)` receives every event. */
  constructor(options: PhoneOptions, emit: Emit) {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    try {
      this.#core = new Core(options, seed);
    } catch (e) {
      // The core names the option: "type uri must be…" or "range …".
      const text = String(e);
      const space = text.indexOf(" ");
      throw new (text.startsWith("range") ? RangeError : TypeError)(text.slice(space + 1));
    }
    this.#emit = emit;
    this.#server = options.server;
    this.#media = {
      iceServers: options.iceServers,
      gatheringTimeoutMs: options.iceGatheringTimeoutMs ?? 2000,
      iceLite: options.iceLite,
    };
    this.#backoff = { min: options.reconnectMinMs ?? 500, max: options.reconnectMaxMs ?? 30_000 };
  }

  /** Opens the WebSocket; it registers once open (unless a guest) and reconnects whenever it drops, until {@link close}. */
  connect(): void {
    this.#openSocket();
  }

  /** Registers again (after {@link unregister}). */
  register(): void {
    this.#with((c, t) => c.register(t));
  }

  /** Removes the binding; `unregistered` follows. */
  unregister(): void {
    this.#with((c, t) => c.unregister(t));
  }

  /** Closes the WebSocket and every call's media, for good. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimers();
    for (const c of this.#calls.values()) c.media?.close();
    this.#calls.clear();
    const ws = this.#socket;
    if (ws) {
      this.#detach(ws);
      ws.close();
      this.#socket = undefined;
      if (this.#open) {
        this.#open = false;
        this.#with((c, t) => c.closed(t));
      }
    }
  }

  /** Frees the core: no timer or handler may reach it after this. */
  free(): void {
    this.close();
    if (this.#freed) return;
    this.#freed = true;
    this.#core.free();
  }

  // Every action that sends takes the app's `headers` last (or undefined),
  // added to what it sends. A header the core refuses throws (or rejects)
  // before anything is sent.

  /** Throws the `TypeError` a call to `target` would get (not a SIP URI), before anything asks for the microphone. */
  checkTarget(target: string): void {
    const e = coreCheckTarget(target);
    if (e !== undefined) throw refusal(e);
  }

  /** Calls `target`; resolves with the call's id once the INVITE is sent, rejects when the microphone is refused or there is no connection. */
  async call(target: string, audio: boolean, video: boolean, headers?: Headers): Promise<number> {
    this.#checkHeaders(headers);
    return this.#place((c, t, offer) => c.call(t, target, offer), { audio, video }, headers);
  }

  /** Follows the far end's transfer request of call `call`: a new call to its target; resolves with its id once its INVITE is sent. */
  async acceptReferral(call: number, audio: boolean, video: boolean, headers?: Headers): Promise<number> {
    this.#checkHeaders(headers);
    return this.#place((c, t, offer) => c.acceptReferral(t, call, offer), { audio, video }, headers);
  }

  /** Refuses the far end's transfer request of call `call` (603); throws (`no_referral`) if none waits. */
  declineReferral(call: number): void {
    this.#act(undefined, (c, t) => c.declineReferral(t, call));
  }

  /** Tells the caller of incoming call `call` that it rings (`180`), for an app that turned `autoRinging` off. */
  ringing(call: number, headers?: Headers): void {
    this.#act(headers, (c, t) => c.ringing(t, call));
  }

  /** Answers incoming call `call`: the microphone, then our answer to its offer (or our offer, when it came without one); resolves once sent. */
  async answer(call: number, audio: boolean, video: boolean, headers?: Headers): Promise<void> {
    this.#checkHeaders(headers);
    const waiting = this.#calls.get(call);
    if (!waiting || waiting.media) throw new Error("no such call waiting for an answer");
    const offer = waiting.offer;
    const media = await Media.open({ audio, video }, this.#media);
    let sdp: string;
    try {
      const gather = this.#gatherFirst(call, offer);
      sdp = offer === undefined ? await media.offer(gather) : await media.answer(offer, gather);
    } catch (e) {
      media.close();
      throw e;
    }
    const still = this.#calls.get(call);
    if (!still || still.media) {
      media.close();
      throw new Error("the call ended before it was answered");
    }
    still.media = media;
    this.#watch(call, media);
    this.#act(headers, (c, t) => c.answer(t, call, sdp));
  }

  /** Declines an incoming call with `code` (486, 603…) and `reason` (by default the code's own phrase). */
  decline(call: number, code?: number, reason?: string, headers?: Headers): void {
    this.#act(headers, (c, t) => c.decline(t, call, code, reason));
  }

  /** Ends a call: BYE, or CANCEL while it rings. */
  hangup(call: number, headers?: Headers): void {
    this.#act(headers, (c, t) => c.hangup(t, call));
  }

  /** Holds (`held`) or resumes a call by re-INVITE; resolves once sent. */
  async hold(call: number, held: boolean, headers?: Headers): Promise<void> {
    this.#checkHeaders(headers);
    return this.#reoffer(call, held, false, this.#gatherFirst(), headers);
  }

  /** Turns the camera of a call with video off (its video receive-only) or on again by re-INVITE; resolves once sent. */
  async video(call: number, on: boolean, headers?: Headers): Promise<void> {
    this.#checkHeaders(headers);
    const media = this.#calls.get(call)?.media;
    if (!media?.hasCamera()) throw Object.assign(new Error("the call sends no video"), { code: "no_video" });
    const before = media.cameraOn();
    media.setCamera(on);
    try {
      await this.#reoffer(call, undefined, false, this.#gatherFirst(), headers);
    } catch (e) {
      // Not offered: as it was.
      media.setCamera(before);
      await media.setHeld(this.#core.held(call)).catch(() => undefined);
      throw e;
    }
  }

  /** Whether a call sends its camera. */
  sendsVideo(call: number): boolean {
    return this.#calls.get(call)?.media?.cameraOn() ?? false;
  }

  /** Restarts ICE (new credentials, the relay checks the new path) by re-INVITE, e.g. after the network changed; resolves once sent. */
  async restartIce(call: number, headers?: Headers): Promise<void> {
    this.#checkHeaders(headers);
    return this.#reoffer(call, undefined, true, this.#gatherFirst(), headers);
  }

  /** Blind-transfers a call to `target` (REFER); `transfer` events follow. */
  transfer(call: number, target: string, headers?: Headers): void {
    this.#act(headers, (c, t) => c.transfer(t, call, target));
  }

  /** Attended transfer: asks the far end of `call` to call the far end of `other` in its place, with Replaces. */
  transferReplacing(call: number, other: number, headers?: Headers): void {
    this.#act(headers, (c, t) => c.transferReplacing(t, call, other));
  }

  /** Mutes or unmutes the microphone of a call; `false` if no such call has media. */
  mute(call: number, muted: boolean): boolean {
    const media = this.#calls.get(call)?.media;
    media?.setMuted(muted);
    return media !== undefined;
  }

  /** Sends DTMF `digits` in the media (RFC 4733); `false` if the call has no audio sender. */
  sendDtmf(call: number, digits: string, durationMs: number, gapMs: number): boolean {
    return this.#calls.get(call)?.media?.sendDtmf(digits, durationMs, gapMs) ?? false;
  }

  /** Sends one DTMF digit as SIP INFO; throws if the call is not up or `digit` is not one. */
  sendDtmfInfo(call: number, digit: string, durationMs: number, headers?: Headers): void {
    this.#act(headers, (c, t) => c.sendDtmfInfo(t, call, digit, durationMs));
  }

  /** Sends a MESSAGE outside any call; returns its id (`message_sent` or `message_failed` follows). */
  message(target: string, contentType: string, body: string, headers?: Headers): number {
    return this.#make(headers, (c, t) => c.message(t, target, contentType, body));
  }

  /** Subscribes to `event` of `target` (RFC 6665); its id, which the subscription's events carry. */
  subscribe(target: string, event: string, accept?: string, expires?: number, headers?: Headers): number {
    return this.#make(headers, (c, t) => c.subscribe(t, target, event, accept, expires));
  }

  /** Ends a subscription; `subscription_ended` follows. */
  unsubscribe(subscription: number): void {
    this.#act(undefined, (c, t) => c.unsubscribe(t, subscription));
  }

  /** Sends a MESSAGE in a call's dialog; throws if the call is not up. */
  callMessage(call: number, contentType: string, body: string, headers?: Headers): void {
    this.#act(headers, (c, t) => c.callMessage(t, call, contentType, body));
  }

  /** Sends an INFO of any type in a call; returns its id, which the `info_answered` event names. */
  info(call: number, contentType: string, body: string, headers?: Headers): number {
    return this.#make(headers, (c, t) => c.info(t, call, contentType, body));
  }

  /** Asks the relay to start (`on`) or stop recording a call; returns the id its `recording` event names. */
  record(call: number, on: boolean, headers?: Headers): number {
    return this.#make(headers, (c, t) => c.record(t, call, on));
  }

  /** What the far end sends, for an `<audio>`/`<video>` element. */
  remoteStream(call: number): MediaStream | undefined {
    return this.#calls.get(call)?.media?.remoteStream();
  }

  /** What the call sends (the microphone, the camera). */
  localStream(call: number): MediaStream | undefined {
    return this.#calls.get(call)?.media?.localStream();
  }

  /** The call's `RTCStatsReport`; undefined if there is no such call. */
  stats(call: number): Promise<RTCStatsReport> | undefined {
    return this.#calls.get(call)?.media?.stats();
  }

  // --- the core -----------------------------------------------------------

  /** Runs `f` on the core at the current time, then sends what it queued. */
  #with<R>(f: (core: Core, now: number) => R): R {
    try {
      return f(this.#core, now());
    } finally {
      this.#pump();
    }
  }

  /** {@link #with} for an action with the app's `headers` that makes nothing: its refusal (`false`; of a header or of the action) thrown as the typed error. */
  #act(headers: Headers | undefined, f: (core: Core, now: number) => boolean): void {
    this.#make(headers, (c, t) => f(c, t) || undefined);
  }

  /** {@link #with} for an action with the app's `headers` that makes something (a call's or a message's id): it, or its refusal (`undefined`) thrown as the typed error. */
  #make<R>(headers: Headers | undefined, f: (core: Core, now: number) => R | undefined): R {
    if (this.#freed) throw Object.assign(new Error("the phone is disconnected"), { code: "not_connected" });
    for (const [name, value] of Object.entries(headers ?? {})) {
      if (typeof value === "string") this.#core.header(name, value);
    }
    const made = this.#with(f);
    if (made === undefined) throw refusal(this.#core.refusal());
    return made;
  }

  /** Checks the app's headers before an action that first opens the microphone. */
  #checkHeaders(headers: Headers | undefined): void {
    this.#act(headers, (c) => c.checkHeaders());
  }

  /** Sends what the core queued, re-arms its timer, and queues its events. */
  #pump(): void {
    if (this.#freed) return;
    for (let frame = this.#core.transmit(); frame !== undefined; frame = this.#core.transmit()) {
      const ws = this.#socket;
      if (!ws || ws.readyState !== WebSocket.OPEN) continue;
      // One SIP message per frame (RFC 7118 §5.2): text when it is UTF-8,
      // as SIP nearly always is.
      let text: string | undefined;
      try {
        text = utf8.decode(frame);
      } catch {
        text = undefined;
      }
      try {
        ws.send(text ?? frame);
      } catch (e) {
        console.warn(e);
      }
    }
    this.#armCoreTimer();
    for (let record = this.#core.event(); record !== undefined; record = this.#core.event()) {
      this.#queue.push(JSON.parse(record) as [string, Detail]);
    }
    if (!this.#draining && this.#queue.length > 0) {
      this.#draining = true;
      queueMicrotask(() => void this.#drain());
    }
  }

  #armCoreTimer(): void {
    if (this.#closed) return; // closed for good: nothing may call back into a freed core
    const at = this.#core.deadline();
    if (this.#coreTimer?.at === at) return;
    if (this.#coreTimer) clearTimeout(this.#coreTimer.handle);
    this.#coreTimer = undefined;
    if (at < 0) return;
    const handle = setTimeout(() => {
      this.#coreTimer = undefined;
      this.#with((c, t) => c.timeout(t));
    }, Math.max(0, at - now()));
    this.#coreTimer = { handle, at };
  }

  #clearTimers(): void {
    if (this.#coreTimer) clearTimeout(this.#coreTimer.handle);
    clearTimeout(this.#reconnectTimer);
    this.#coreTimer = undefined;
    this.#reconnectTimer = undefined;
  }

  // --- the WebSocket ------------------------------------------------------

  /** Opens the WebSocket (subprotocol `sip`, RFC 7118 §4). */
  #openSocket(): void {
    if (this.#closed || this.#socket) return;
    const generation = ++this.#generation;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.#server, "sip");
    } catch (e) {
      console.error(e);
      this.#scheduleReconnect(0, "the WebSocket could not be created");
      return;
    }
    ws.binaryType = "arraybuffer";
    const live = () => generation === this.#generation && !this.#closed;
    ws.onopen = () => { if (live()) this.#onOpen(); };
    ws.onmessage = (e) => { if (live()) this.#onFrame(e.data as string | ArrayBuffer); };
    ws.onclose = (e) => { if (live()) this.#onClose(e.code, e.reason); };
    this.#socket = ws;
  }

  #detach(ws: WebSocket): void {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
  }

  #onOpen(): void {
    this.#attempts = 0;
    this.#open = true;
    const again = this.#connectedOnce;
    this.#connectedOnce = true;
    this.#core.connected(now());
    this.#emitSafe(again ? "reconnected" : "connected", {});
    this.#pump();
  }

  #onFrame(data: string | ArrayBuffer): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : new Uint8Array(data);
    const malformed = this.#with((c, t) => c.receive(t, bytes));
    // Dropped, as RFC 3261 §18.1.2 / §18.2.1 say; the relay logs it too.
    if (malformed !== undefined) console.warn(`sipline: dropped a malformed SIP message: ${malformed}`);
  }

  #onClose(code: number, reason: string): void {
    if (this.#socket) this.#detach(this.#socket);
    this.#socket = undefined;
    // A socket that never opened changes nothing for the core.
    if (this.#open) {
      this.#open = false;
      this.#with((c, t) => c.closed(t));
    }
    if (!this.#closed) this.#scheduleReconnect(code, reason);
  }

  /**
   * The next connection attempt: doubling from `reconnectMinMs` to
   * `reconnectMaxMs`, each delay drawn from its upper half so that a relay
   * restart is not met by every browser at once.
   */
  #scheduleReconnect(code: number, reason: string): void {
    const attempt = ++this.#attempts;
    const ceiling = Math.min(this.#backoff.min * 2 ** (Math.min(attempt, 30) - 1), this.#backoff.max);
    const delay = ceiling * (0.5 + 0.5 * Math.random());
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#openSocket();
    }, delay);
    this.#emitSafe("reconnecting", { attempt, delayMs: Math.round(delay), code, reason });
  }

  // --- events -------------------------------------------------------------

  /** Tells the facade; a handler that throws is logged, not fatal. */
  #emitSafe(name: string, detail: Detail): void {
    try {
      this.#emit(name, detail);
    } catch (e) {
      console.error("sipline: event handler threw", e);
    }
  }

  /** Handles the queued events one at a time, media first: the app hears `accepted` once the answer is applied, never before. */
  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
      await this.#onEvent(next[0], next[1]);
    }
    this.#draining = false;
  }

  async #onEvent(name: string, d: Detail): Promise<void> {
    const call = d.call as number;
    const media = this.#calls.get(call)?.media;
    const sdp = d.sdp as string | undefined;
    delete d.sdp;
    try {
      switch (name) {
        case "keepalive_timeout":
          // The flow is dead though the socket looks open: close it, and
          // the close handler reconnects.
          this.#socket?.close();
          break;
        case "incoming":
          this.#calls.set(call, { offer: sdp });
          break;
        case "progress":
          await media?.accept(sdp as string, true);
          break;
        case "accepted":
        case "updated":
          // Empty when there is nothing new (we answered its offer).
          if (sdp) await media?.accept(sdp, false);
          break;
        case "candidates_needed":
          // The app's call does not change: an INFO or a re-INVITE carries
          // our candidates once gathered, off the event queue (which must
          // not wait for gathering).
          void this.#sendCandidates(call, d.trickle === true);
          return;
        case "remote_candidates":
          await media?.addCandidates(d.candidates as RemoteCandidate[], d.end === true);
          return;
        case "recovered":
          // The relay answered with other media (it restarted, or made a
          // new session): ours reaches nobody.
          if (media && !media.sameFarEnd(sdp as string)) {
            this.#mediaFailed(call, new Error("the call's media did not survive the reconnect"));
          }
          break;
        case "updating":
          await this.#farEndUpdate(call, sdp);
          break;
        case "update_failed":
          // The refused offer's change did not happen: the directions go
          // back to what was agreed.
          await media?.rollback(!this.#freed && this.#core.held(call));
          break;
        case "hangup":
          this.#calls.get(call)?.media?.close();
          this.#calls.delete(call);
          break;
      }
    } catch (e) {
      // A media step failed under a live call: not `accepted` (or its
      // like): the call is being hung up.
      this.#mediaFailed(call, e);
      if (name !== "update_failed") return;
    }
    this.#emitSafe(name, d);
  }

  /** A media step failed under a live call: the call cannot carry what was agreed, so it ends (BYE) and the app is told why. */
  #mediaFailed(call: number, error: unknown): void {
    console.error("sipline: media failed", error);
    this.#emitSafe("media_error", { call, error });
    // Gone already (the far end hung up first): nothing to end.
    this.#quietly((c, t) => c.hangup(t, call));
  }

  // --- calls' media -------------------------------------------------------

  /**
   * Whether our answer (to `offer` in `call`) or our offer (no `offer`)
   * waits for ICE gathering: the core's rule, with the app's word on offers.
   */
  #gatherFirst(call = 0, offer?: string): boolean {
    return !this.#core.candidatesOptional(call, offer, this.#media.iceLite);
  }

  /** Places a call: the microphone, an offer, then the INVITE (`send`). */
  async #place(send: (core: Core, now: number, offer: string) => number | undefined, want: Want, headers?: Headers): Promise<number> {
    const media = await Media.open(want, this.#media);
    let call: number;
    try {
      const offer = await media.offer(this.#gatherFirst());
      call = this.#make(headers, (c, t) => send(c, t, offer));
    } catch (e) {
      media.close();
      throw e;
    }
    this.#calls.set(call, { media });
    this.#watch(call, media);
    return call;
  }

  /** A call whose media connection fails for good ends (BYE, or at once while the WebSocket is down) and the app is told why: a relay that died takes its calls' media with it. */
  #watch(call: number, media: Media): void {
    media.onFailed(() => {
      if (this.#calls.get(call)?.media === media) {
        this.#mediaFailed(call, new Error("the call's media connection failed"));
      }
    });
  }

  /**
   * The far end's re-INVITE or UPDATE: answer its offer, or make one when
   * it sent none. (A change of ours under way already got `491` from the
   * core; who holds whom it reports once this is answered.)
   */
  async #farEndUpdate(call: number, offer: string | undefined): Promise<void> {
    const media = this.#calls.get(call)?.media;
    if (!media) return;
    const gather = this.#gatherFirst(call, offer);
    let sdp: string;
    try {
      sdp = offer === undefined ? await media.offer(gather) : await media.answer(offer, gather);
    } catch (e) {
      // The browser cannot take this offer: the core refuses the change,
      // and the call stays as it was.
      console.warn("sipline: refused an offer", e);
      if (offer !== undefined) await media.rollbackRemote().catch(() => undefined);
      this.#quietly((c, t) => c.refuseOffer(t, call));
      return;
    }
    // The call may have ended while the browser made its answer.
    this.#quietly((c, t) => c.answer(t, call, sdp));
  }

  /** A core step whose refusal only means the call moved on (it ended, or changed first). */
  #quietly(f: (core: Core, now: number) => unknown): void {
    if (!this.#freed) this.#with(f);
  }

  /**
   * Changes a call with a new offer in a re-INVITE: hold or resume
   * (`held`), and/or an ICE restart; the outcome arrives as `updated` (+
   * `hold` when that changed), or `update_failed`.
   */
  async #reoffer(call: number, held: boolean | undefined, iceRestart: boolean, gather: boolean, headers?: Headers): Promise<void> {
    const media = this.#calls.get(call)?.media;
    if (!media) throw new Error("no such call with media");
    // The core holds the call's next change for this offer (the far end's
    // own meanwhile gets 491) and says which way it must go.
    const current = this.#core.held(call);
    const target = this.#make(undefined, (c) => c.beginUpdate(call, held));
    let offer: string;
    try {
      await media.setHeld(target);
      offer = await media.offer(gather, iceRestart);
    } catch (e) {
      await media.setHeld(current).catch(() => undefined);
      this.#quietly((c) => c.abandonUpdate(call));
      throw e;
    }
    try {
      this.#act(headers, (c, t) => c.update(t, call, offer));
    } catch (e) {
      this.#quietly((c) => c.abandonUpdate(call));
      await media.rollback(current);
      throw e;
    }
  }

  /**
   * The core's `candidates_needed`: our offer or answer went without
   * candidates to a full-ICE far end, so once they are gathered they
   * follow: trickled in INFOs when the far end takes that (`trickle`), else
   * in a re-INVITE (same ICE credentials, the call held or not as it was).
   * When that fails (an app's change got there first), the call goes on as
   * it is: checks from our side often find the way alone.
   */
  async #sendCandidates(call: number, trickle: boolean): Promise<void> {
    const media = this.#calls.get(call)?.media;
    if (!media) return;
    try {
      if (trickle) {
        // Each time the browser has more, what is new goes (the core keeps
        // what went), and the end of them once gathering ends or the
        // bounded wait does.
        const deadline = media.gatheringDeadline();
        for (;;) {
          const complete = media.gatheringComplete() || now() >= deadline;
          const sdp = media.localSdp();
          this.#act(undefined, (c, t) => c.sendCandidates(t, call, sdp, complete));
          if (complete) break;
          await media.gatheringNews(deadline, true);
        }
      } else {
        // Gathered before the change is reserved: meanwhile the app's own
        // changes and the far end's go through.
        await media.gathered();
        await this.#reoffer(call, undefined, false, true);
      }
    } catch (e) {
      console.warn("sipline: candidates not sent", e);
    }
  }
}
