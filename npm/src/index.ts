// sipline: a phone in a web page.
//
// This file is the typed, promise-based face of the WebAssembly engine
// (sdk-wasm). The engine owns the SIP logic, the WebSocket, the
// RTCPeerConnections and the timers; this facade keeps one object per call,
// turns the engine's events into typed events, and waits on them for the
// promises it returns. It holds no SIP rule of its own.

import init, { Engine } from "../wasm/sipline_wasm.js";

/** @internal What the facade uses of the engine (a fake one drives the facade's tests). */
export type EngineLike = Pick<Engine,
  "connect" | "close" | "free" | "register" | "unregister" | "checkTarget" | "call" | "acceptReferral" |
  "declineReferral" | "ringing" | "answer" | "decline" | "hangup" | "hold" | "restartIce" | "transfer" |
  "transferReplacing" | "mute" |
  "sendDtmf" | "sendDtmfInfo" | "message" | "callMessage" | "info" | "remoteStream" | "localStream" | "stats">;

export { SipError, CallFailedError, RegistrationError, ConnectionError, InvalidStateError } from "./errors.js";
import { SipError, CallFailedError, RegistrationError, ConnectionError, InvalidStateError, engine, fromEngine } from "./errors.js";
import { Emitter } from "./emitter.js";
import { summarize, type CallStats } from "./stats.js";
import * as check from "./check.js";
export { MAX_BODY_BYTES, MAX_DIGITS, MAX_HEADER_BYTES, MAX_HEADER_VALUE, MAX_HEADERS } from "./check.js";
export type { CallStats } from "./stats.js";

/** How to reach the relay and who to be. */
export interface PhoneOptions {
  /** The relay's WebSocket URL, e.g. `wss://relay.example/sip`. */
  server: string;
  /** Your address of record, e.g. `sip:1001@pbx.example`. */
  uri: string;
  /** Digest password; leave out for a server that does not challenge. */
  password?: string;
  /** Digest user name, when it is not the user part of `uri`. */
  authUser?: string;
  /** Shown to the people you call. */
  displayName?: string;
  /** Tell callers their call rings (`180 Ringing`) as soon as it arrives (default `true`); `false` leaves it to `call.ring()`, e.g. to screen calls first. */
  autoRinging?: boolean;
  /** Register so calls can reach you (default `true`); `false` is guest mode: calls out only. */
  register?: boolean;
  /** Seconds asked for in REGISTER (default 600). */
  registerExpires?: number;
  /** REGISTER's Request-URI, when it is not `sip:<your domain>`. */
  registrar?: string;
  /** RFC 5626 instance id (`urn:uuid:…`); default: one per tab, origin and AoR, kept across reloads (sessionStorage). */
  instanceId?: string;
  /** The User-Agent header. */
  userAgent?: string;
  /** Session timer interval our calls ask for (RFC 4028; default 1800 s, 0 asks for none). */
  sessionExpiresSecs?: number;
  /** Incoming calls and MESSAGEs carry the headers whose names start with one of these (e.g. `["X-"]`). */
  incomingHeaderPrefixes?: string[];
  /** CRLF keep-alive period in seconds (default 30, 0 turns it off). */
  keepAliveSecs?: number;
  /** STUN/TURN servers, as for RTCPeerConnection (usually none: the relay has a known address). */
  iceServers?: RTCIceServer[];
  /** The longest wait for ICE candidates before an offer or answer is sent (default 2000 ms). */
  iceGatheringTimeoutMs?: number;
  /** First reconnect delay (default 500 ms); it doubles per failed attempt, with jitter. */
  reconnectMinMs?: number;
  /** Longest reconnect delay (default 30000 ms). */
  reconnectMaxMs?: number;
  /** How long `Phone.connect` waits to be connected and registered (default 10000 ms). */
  connectTimeoutMs?: number;
  /** Where the engine's `.wasm` is, when a bundler moved it. */
  wasmUrl?: string | URL;
}

/** Your own SIP headers on what an action sends, e.g. `{ "X-Crm-Id": "42" }`. */
export type Headers = Record<string, string>;

/** Options of the actions that send one request or response. */
export interface SendOptions {
  /** Added to it (the user agent's own headers, like Call-ID or Contact, cannot be set). */
  headers?: Headers;
}

/** What a call sends. */
export interface CallOptions extends SendOptions {
  /** Send the microphone (default `true`). */
  audio?: boolean;
  /** Send the camera (default `false`). */
  video?: boolean;
}

/** How DTMF digits travel. */
export interface DtmfOptions extends SendOptions {
  /** `rfc4733` (default): telephone-events in the audio; `info`: SIP INFO `application/dtmf-relay`. */
  method?: "rfc4733" | "info";
  /** Tone length (default 100 ms). */
  durationMs?: number;
  /** Pause between tones (default 70 ms). */
  gapMs?: number;
}

/** Why a call ended. */
export interface HangupInfo {
  /** The SIP status of a failed call (486, 487, 408…); absent for a BYE. */
  code?: number;
  /** The reason phrase, or "BYE". */
  reason: string;
}

/** A SIP MESSAGE that arrived. */
export interface IncomingMessage {
  /** The sender's URI. */
  from: string;
  /** Its Content-Type (`text/plain`…). */
  contentType: string;
  /** The text. */
  body: string;
  /** The call it came in, if it came in one. */
  call?: Call;
  /** Its headers named by `incomingHeaderPrefixes`. */
  headers: Headers;
}

/** An INFO the far end sent in a call (of any type but DTMF's, which is the `dtmf` event). */
export interface IncomingInfo {
  /** Its Content-Type. */
  contentType: string;
  /** Its body. */
  body: string;
  /** Its headers named by `incomingHeaderPrefixes`. */
  headers: Headers;
}

/** A call's life, as the app shows it. */
export type CallState =
  | "calling"
  | "ringing"
  | "early"
  | "incoming"
  | "answering"
  | "established"
  | "ended";

/** Events a call reports. */
export interface CallEvents {
  ringing: [];
  progress: [];
  accepted: [];
  updating: [];
  hold: [{ held: boolean; by: "local" | "remote" }];
  dtmf: [{ digit: string; durationMs: number }];
  info: [IncomingInfo];
  message: [IncomingMessage];
  transfer: [TransferProgress];
  referred: [TransferRequest];
  replaced: [Call];
  hangup: [HangupInfo];
  mediaError: [{ error: unknown }];
}

/**
 * The far end asks to transfer us (a REFER): call `target` instead. Until
 * the app accepts or declines, the far end waits; it then hears how the
 * new call goes (ringing, answered, or why not). With no `referred`
 * listener on the phone or the call, the request is declined.
 */
export interface TransferRequest {
  /** Whom to call (a SIP URI). */
  target: string;
  /** Who asked for it, as the far end says (its Referred-By). */
  referredBy?: string;
  /** An attended transfer: the new call takes the place of the target's call with whoever asked (RFC 3891 Replaces). */
  attended: boolean;
  /** Calls the target: the new call at once, like `phone.call`. */
  accept(options?: CallOptions): Call;
  /** Refuses it: the far end hears 603. */
  decline(): void;
}

/** How a blind transfer goes: the REFER's answer, then the far end's call to the target. */
export interface TransferProgress {
  /** 202 (accepted), then 100/180/200 from the far end's new call, or a failure. */
  code: number;
  /** Its reason phrase. */
  reason: string;
  /** The last one: succeeded (2xx) or failed. */
  done: boolean;
}

/** Events the phone reports. Call events are repeated here with the call first. */
export interface PhoneEvents {
  connected: [];
  reconnecting: [{ attempt: number; delayMs: number; code: number; reason: string }];
  reconnected: [];
  registering: [];
  registered: [{ expires: number }];
  registrationFailed: [{ code: number; reason: string; retryInMs?: number }];
  unregistering: [];
  unregistered: [{ code?: number; reason: string }];
  keepaliveTimeout: [];
  incoming: [Call];
  calling: [Call];
  ringing: [Call];
  progress: [Call];
  accepted: [Call];
  updating: [Call];
  hold: [Call, { held: boolean; by: "local" | "remote" }];
  dtmf: [Call, { digit: string; durationMs: number }];
  info: [Call, IncomingInfo];
  transfer: [Call, TransferProgress];
  referred: [Call, TransferRequest];
  replaced: [Call, Call];
  hangup: [Call, HangupInfo];
  message: [IncomingMessage];
}

type Detail = Record<string, unknown> & { call?: number };

/** The events `phone.on` takes. */
const PHONE_EVENTS: (keyof PhoneEvents)[] = ["connected", "reconnecting", "reconnected", "registering", "registered",
  "registrationFailed", "unregistering", "unregistered", "keepaliveTimeout", "incoming", "calling", "ringing",
  "progress", "accepted", "updating", "hold", "dtmf", "info", "transfer", "referred", "replaced", "hangup", "message"];

/** The events `call.on` takes. */
const CALL_EVENTS: (keyof CallEvents)[] = ["ringing", "progress", "accepted", "updating", "hold", "dtmf", "info", "message",
  "transfer", "referred", "replaced", "hangup", "mediaError"];

let engineReady: Promise<unknown> | undefined;

/** The engine's event names the public ones spell in camelCase. */
const PUBLIC_NAMES: Record<string, string> = {
  registration_failed: "registrationFailed",
  keepalive_timeout: "keepaliveTimeout",
  media_error: "mediaError",
};

/** A phone: one registration (or a guest), its connection and its calls. */
export class Phone extends Emitter<PhoneEvents> {
  readonly #engine: EngineLike;
  readonly #calls = new Map<number, Call>();
  /** Outgoing calls whose INVITE is not sent yet (microphone, offer). */
  readonly #placing = new Set<Call>();
  /** Events of calls the engine announced before `call()` learnt their id. */
  readonly #unclaimed = new Map<number, [string, Detail][]>();
  /** The highest call id known: the engine numbers calls upward, so only a higher one can be a call being placed. */
  #highestId = 0;
  /** Calls that ended lately, for a `call()` whose call ended before it looked. */
  readonly #ended = new Map<number, Call>();
  readonly #waiters = new Map<string, Set<(name: string, d: Detail) => void>>();
  #registered = false;
  #closed = false;

  private constructor(options: PhoneOptions, makeEngine?: (emit: (name: string, detail: Detail) => void) => EngineLike) {
    super(PHONE_EVENTS);
    const emit = (name: string, detail: Detail) => this.#dispatch(name, detail);
    this.#engine = makeEngine ? makeEngine(emit) : new Engine(options, emit);
  }

  /**
   * @internal A phone on a given engine, connected at once (the facade's
   * tests drive it with a fake one).
   */
  static _withEngine(makeEngine: (emit: (name: string, detail: Record<string, unknown>) => void) => EngineLike): Phone {
    return new Phone({ server: "ws://test.invalid", uri: "sip:test@test.invalid" }, makeEngine as never);
  }

  /**
   * Connects to the relay and registers (unless `register: false`). Resolves
   * once registered (a guest: once connected); rejects with a
   * `RegistrationError` or `ConnectionError`.
   */
  static async connect(options: PhoneOptions): Promise<Phone> {
    checkPhoneOptions(options);
    engineReady ??= init(options.wasmUrl ? { module_or_path: options.wasmUrl } : undefined);
    await engineReady;
    // The engine checks the URIs and the free-text options with the
    // core's rules, and throws a TypeError naming the option.
    let phone: Phone;
    try {
      phone = new Phone({ ...options, instanceId: options.instanceId ?? instanceId(options.uri) });
    } catch (e) {
      if (e instanceof TypeError) throw new TypeError(`options.${e.message}`);
      if (e instanceof RangeError) throw new RangeError(`options.${e.message}`);
      throw e;
    }
    const register = options.register ?? true;
    const ready = phone.#next(
      register ? ["registered", "registration_failed"] : ["connected"],
      options.connectTimeoutMs ?? 10_000,
    );
    phone.#engine.connect();
    try {
      const [name, d] = await ready;
      if (name === "registration_failed") {
        throw new RegistrationError(d.code as number, d.reason as string);
      }
    } catch (e) {
      phone.#engine.close();
      phone.#engine.free();
      throw e instanceof SipError ? e : new ConnectionError(`could not reach ${options.server}`);
    }
    return phone;
  }

  /** The calls under way (being placed, ringing, in progress or established). */
  get calls(): Call[] {
    return [...this.#placing, ...this.#calls.values()];
  }

  /** Whether the registrar holds our binding. */
  get registered(): boolean {
    return this.#registered;
  }

  /**
   * Calls `target` (a SIP URI): the call at once, while the microphone
   * opens and the INVITE goes; it can be hung up from now on. `await
   * call.accepted` for the answer (it rejects with a `CallFailedError`
   * carrying the SIP code, 486, 404…, or with why the call could not be
   * placed). A `target` that is not a SIP URI throws a `TypeError`.
   */
  call(target: string, options: CallOptions = {}): Call {
    this._assertOpen();
    this.#checkUri("target", target);
    checkCallOptions(options);
    return this.#place(this.#engine.call(target, options.audio ?? true, options.video ?? false, options.headers), target);
  }

  /** A new outgoing call, bound to its engine id once `placed` gives it. */
  #place(placed: Promise<unknown>, target: string): Call {
    const call = new Call(this, 0, "outgoing", { to: target });
    this.#placing.add(call);
    placed.then(
      (id) => {
        this.#placing.delete(call);
        this.#calls.set(id as number, call);
        this.#highestId = Math.max(this.#highestId, id as number);
        call._bind(id as number);
        const early = this.#unclaimed.get(id as number) ?? [];
        this.#unclaimed.delete(id as number);
        for (const [name, d] of early) this.#dispatch(name, d);
      },
      (e) => {
        this.#placing.delete(call);
        call._failed(fromEngine(e));
      },
    );
    return call;
  }

  /** What the app answers the far end's transfer request in call `from` with. */
  #transferRequest(from: Call, d: Detail): TransferRequest {
    const target = d.target as string;
    return {
      target,
      referredBy: d.referredBy as string | undefined,
      attended: d.attended === true,
      accept: (options: CallOptions = {}): Call => {
        this._assertOpen();
        checkCallOptions(options);
        return this.#place(
          this.#engine.acceptReferral(from.id, options.audio ?? true, options.video ?? false, options.headers),
          target,
        );
      },
      decline: () => {
        this._assertOpen();
        engine(() => this.#engine.declineReferral(from.id));
      },
    };
  }

  /** Sends a MESSAGE (RFC 3428); resolves when the far end accepts it. */
  async message(target: string, text: string, contentType = "text/plain", options: SendOptions = {}): Promise<void> {
    this._assertOpen();
    this.#checkUri("target", target);
    check.body("text", text);
    check.contentType("contentType", contentType);
    checkSendOptions(options);
    const id = engine(() => this.#engine.message(target, contentType, text, options.headers));
    const [name, d] = await this.#next(["message_sent", "message_failed"], 0, (d) => d.id === id);
    if (name === "message_failed") throw new SipError(d.code as number, d.reason as string);
  }

  /** Registers again after `unregister()`. */
  register(): void {
    this._assertOpen();
    this.#engine.register();
  }

  /** Removes the registration; resolves when the registrar confirms (or refuses). */
  async unregister(): Promise<void> {
    this._assertOpen();
    const done = this.#next(["unregistered"], 5_000);
    this.#engine.unregister();
    await done.catch(() => undefined);
  }

  /** Hangs up every call, unregisters, and closes the connection for good. */
  async disconnect(): Promise<void> {
    if (this.#closed) return;
    for (const call of this.calls) call.hangup().catch(() => undefined);
    if (this.#registered) await this.unregister();
    this.#closed = true;
    this.#engine.close();
    this.#engine.free();
  }

  /** @internal Throws once the phone is disconnected: its engine is gone. */
  _assertOpen(): void {
    if (this.#closed) throw new InvalidStateError("the phone is disconnected", "disconnected");
  }

  /** A SIP URI argument, by the engine's (the core's) rule. */
  #checkUri(name: string, v: unknown): asserts v is string {
    check.uri(name, v, (uri) => engine(() => this.#engine.checkTarget(uri)));
  }

  /** @internal The engine, for the calls. */
  get _engine(): EngineLike {
    return this.#engine;
  }

  /** @internal The first of `names` (for `call`, when `test` holds), and how to stop waiting. */
  _wait(names: string[], timeoutMs: number, test?: (d: Detail, name: string) => boolean): [Promise<[string, Detail]>, () => void] {
    let cancel = () => {};
    const promise = new Promise<[string, Detail]>((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => { done(); reject(new ConnectionError("timed out")); }, timeoutMs) : undefined;
      const waiter = (name: string, d: Detail) => {
        if (names.includes(name) && (!test || test(d, name))) {
          done();
          resolve([name, d]);
        }
      };
      const done = () => {
        clearTimeout(timer);
        for (const n of names) this.#waiters.get(n)?.delete(waiter);
      };
      cancel = done;
      for (const n of names) {
        let set = this.#waiters.get(n);
        if (!set) this.#waiters.set(n, (set = new Set()));
        set.add(waiter);
      }
    });
    return [promise, cancel];
  }

  #next(names: string[], timeoutMs: number, test?: (d: Detail, name: string) => boolean): Promise<[string, Detail]> {
    return this._wait(names, timeoutMs, test)[0];
  }

  #dispatch(name: string, d: Detail): void {
    if (name === "registered") this.#registered = true;
    if (name === "unregistered" || name === "registration_failed") this.#registered = false;
    let call = d.call === undefined ? undefined : this.#calls.get(d.call);
    if (!call && name === "incoming") call = this.#track(d.call as number, "incoming", d);
    const replacing = name === "incoming" && call && typeof d.replaces === "number" ? this.#calls.get(d.replaces) : undefined;
    if (replacing && call) {
      // An attended transfer to us (RFC 3891): the new call takes the old
      // one's place without ringing; the app hears of it as `replaced`.
      const fresh = call;
      fresh.answer().catch((e) => {
        if (fresh.state !== "ended") fresh.decline(500, undefined);
        console.error("sipline: a call replacing another could not be answered", e);
      });
      return;
    }
    if (name === "replaced") {
      const by = this.#calls.get(d.by as number);
      if (call && by) {
        call._event(name, { by } as unknown as Detail);
        (this.emit.bind(this) as (n: string, ...a: unknown[]) => void)("replaced", call, by);
      }
      return;
    }
    if (!call && d.call !== undefined && d.call > this.#highestId && this.#placing.size > 0) {
      // A call being placed: its INVITE went before `call()` learnt its id.
      const early = this.#unclaimed.get(d.call) ?? [];
      early.push([name, d]);
      this.#unclaimed.set(d.call, early);
      return;
    }
    if (call && name === "referred") d.request = this.#transferRequest(call, d);
    if (call) {
      call._event(name, d);
      if (name === "hangup") {
        this.#calls.delete(call.id);
        this.#ended.set(call.id, call);
        if (this.#ended.size > 32) this.#ended.delete(this.#ended.keys().next().value as number);
      }
    }
    for (const waiter of [...(this.#waiters.get(name) ?? [])]) waiter(name, d);
    this.#emitPublic(name, d, call);
    // A transfer request nobody listens for is declined, so that the far
    // end is not left waiting for an answer that never comes.
    if (call && name === "referred" && !this.listens("referred") && !call.listens("referred")) {
      engine(() => this.#engine.declineReferral(call.id));
    }
  }

  #track(id: number, direction: "incoming" | "outgoing", d: Detail): Call {
    this.#highestId = Math.max(this.#highestId, id);
    const call = new Call(this, id, direction, d);
    this.#calls.set(id, call);
    return call;
  }

  #emitPublic(name: string, d: Detail, call: Call | undefined): void {
    const e = this.emit.bind(this) as (n: string, ...a: unknown[]) => void;
    switch (name) {
      case "incoming":
      case "calling":
      case "ringing":
      case "progress":
      case "accepted":
      case "updating":
        if (call) e(name, call);
        break;
      case "hold":
      case "dtmf":
      case "info":
      case "transfer":
      case "hangup":
        if (call) e(name, call, strip(d));
        break;
      case "referred":
        if (call) e(name, call, d.request);
        break;
      case "message":
        e(name, { from: d.from, contentType: d.contentType, body: d.body, headers: d.headers ?? {}, call });
        break;
      case "connected":
      case "reconnected":
      case "registering":
      case "unregistering":
      case "keepalive_timeout":
        e(PUBLIC_NAMES[name] ?? name);
        break;
      case "reconnecting":
      case "registered":
      case "registration_failed":
      case "unregistered":
        e(PUBLIC_NAMES[name] ?? name, strip(d));
        break;
      default:
        break;
    }
  }
}

/** One call, incoming or outgoing. */
export class Call extends Emitter<CallEvents> {
  /** The engine's id for this call (unique per phone); 0 while an outgoing call is being placed. */
  #id: number;
  /** Who called whom. */
  readonly direction: "incoming" | "outgoing";
  /** The far end's URI: the caller's, or the one we called. */
  readonly remoteUri?: string;
  /** The caller's display name, if it sent one. */
  readonly displayName?: string;
  /** The INVITE's headers named by `incomingHeaderPrefixes` (incoming calls). */
  readonly headers: Headers;
  /** Settles when the call is up (rejects with `CallFailedError` if it fails first). */
  readonly accepted: Promise<void>;
  /** Settles when the call ends, with why. */
  readonly ended: Promise<HangupInfo>;
  #state: CallState;
  #held = false;
  #heldByRemote = false;
  #muted = false;
  /** Changes of the session (hold, unhold, ICE restart) go one at a time. */
  #negotiation: Promise<unknown> = Promise.resolve();
  /** Hung up before its INVITE went: ended as soon as it has an id. */
  #hangupWanted = false;
  readonly #phone: Phone;
  #settle!: { accept: () => void; fail: (e: Error) => void; end: (h: HangupInfo) => void };

  /** @internal Calls are made by the phone. */
  constructor(phone: Phone, id: number, direction: "incoming" | "outgoing", d: Detail) {
    super(CALL_EVENTS);
    this.#phone = phone;
    this.#id = id;
    this.direction = direction;
    this.remoteUri = (d.from ?? d.to) as string | undefined;
    this.displayName = d.displayName as string | undefined;
    this.headers = (d.headers as Headers | undefined) ?? {};
    this.#state = direction === "incoming" ? "incoming" : "calling";
    let accept!: () => void, fail!: (e: Error) => void, end!: (h: HangupInfo) => void;
    this.accepted = new Promise<void>((a, f) => { accept = a; fail = f; });
    this.accepted.catch(() => undefined); // an unanswered call is not an unhandled rejection
    this.ended = new Promise((e) => { end = e; });
    this.#settle = { accept, fail, end };
  }

  /** The engine's id for this call (unique per phone); 0 while an outgoing call is being placed. */
  get id(): number { return this.#id; }
  /** Where the call stands. */
  get state(): CallState { return this.#state; }
  /** We put the call on hold. */
  get held(): boolean { return this.#held; }
  /** The far end put us on hold. */
  get heldByRemote(): boolean { return this.#heldByRemote; }
  /** Our microphone is muted. */
  get muted(): boolean { return this.#muted; }

  /** What the far end sends: attach it to an `<audio>` (or `<video>`) element. */
  get remoteStream(): MediaStream | undefined { return this.#live() ? this.#phone._engine.remoteStream(this.id) : undefined; }
  /** What we send. */
  get localStream(): MediaStream | undefined { return this.#live() ? this.#phone._engine.localStream(this.id) : undefined; }

  /** Whether the engine may be asked about this call (the phone is still connected). */
  #live(): boolean {
    try {
      this.#phone._assertOpen();
      return true;
    } catch {
      return false;
    }
  }

  /** Answers an incoming call; resolves once the call is up. */
  async answer(options: CallOptions = {}): Promise<void> {
    this.#phone._assertOpen();
    checkCallOptions(options);
    if (this.#state !== "incoming") throw new InvalidStateError(`cannot answer a call that is ${this.#state}`);
    this.#state = "answering";
    try {
      await this.#phone._engine.answer(this.id, options.audio ?? true, options.video ?? false, options.headers);
    } catch (e) {
      if (this.#state === "answering") this.#state = "incoming";
      throw fromEngine(e);
    }
    await this.accepted;
  }

  /** Tells the caller the call rings (`180 Ringing`), when `autoRinging` is off. */
  ring(options: SendOptions = {}): void {
    this.#phone._assertOpen();
    checkSendOptions(options);
    if (this.#state !== "incoming") throw new InvalidStateError(`cannot ring a call that is ${this.#state}`);
    engine(() => this.#phone._engine.ringing(this.id, options.headers));
  }

  /** Declines an incoming call with `code` (486 Busy Here by default, 603 Decline…) and `reason` (by default the code's own phrase). */
  decline(code = 486, reason?: string, options: SendOptions = {}): void {
    this.#phone._assertOpen();
    check.integer("code", code, 400, 699);
    check.optional(reason, (r) => check.text("reason", r));
    checkSendOptions(options);
    if (this.#state !== "incoming") throw new InvalidStateError(`cannot decline a call that is ${this.#state}`);
    engine(() => this.#phone._engine.decline(this.id, code, reason, options.headers));
  }

  /** Ends the call (BYE, or CANCEL while it rings); resolves when it has ended. */
  async hangup(options: SendOptions = {}): Promise<HangupInfo> {
    checkSendOptions(options);
    if (this.#state === "ended") return this.ended;
    this.#phone._assertOpen();
    if (this.#id === 0) {
      // Still being placed: it ends as soon as its INVITE is out.
      this.#hangupWanted = true;
      return this.ended;
    }
    try {
      this.#phone._engine.hangup(this.id, options.headers);
    } catch (e) {
      // Ended in the engine already (its hangup event is on its way):
      // hanging up twice is no error.
      const refusal = fromEngine(e);
      if (!(refusal instanceof InvalidStateError && refusal.code === "no_such_call")) throw refusal;
    }
    return this.ended;
  }

  /** Puts the call on hold (re-INVITE `sendonly`); resolves when the far end agreed. */
  hold(options: SendOptions = {}): Promise<void> { return this.#hold(true, options); }

  /** Resumes a held call. */
  unhold(options: SendOptions = {}): Promise<void> { return this.#hold(false, options); }

  /** Restarts ICE (new credentials, the path checked again) after a network change; resolves when the far end agreed. */
  restartIce(options: SendOptions = {}): Promise<void> {
    try {
      checkSendOptions(options);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#renegotiate("restart ICE", () => this.#phone._engine.restartIce(this.id, options.headers));
  }

  /** Mutes the microphone (no renegotiation: the far end hears silence). */
  mute(): void { this.#mute(true); }

  /** Unmutes the microphone. */
  unmute(): void { this.#mute(false); }

  /** Sends DTMF digits (`0-9*#A-D`, `,` for a pause). */
  async sendDtmf(digits: string, options: DtmfOptions = {}): Promise<void> {
    this.#phone._assertOpen();
    check.string("digits", digits, check.MAX_DIGITS);
    if (!/^[0-9A-Da-d*#,]+$/.test(digits)) throw new TypeError("digits must be DTMF digits: 0-9, *, #, A-D, and , for a pause");
    check.options("options", options);
    check.optional(options.method, (m) => check.oneOf("options.method", m, ["rfc4733", "info"] as const));
    check.optional(options.durationMs, (d) => check.integer("options.durationMs", d, 40, 6000));
    check.optional(options.gapMs, (g) => check.integer("options.gapMs", g, 30, 6000));
    check.headers("options.headers", options.headers);
    const duration = options.durationMs ?? 100;
    const gap = options.gapMs ?? 70;
    this.#mustBeUp("send DTMF");
    if ((options.method ?? "rfc4733") === "rfc4733") {
      if (!this.#phone._engine.sendDtmf(this.id, digits, duration, gap)) {
        throw new InvalidStateError("this call cannot send telephone-events; try method: \"info\"");
      }
      return;
    }
    for (const digit of digits) {
      if (digit !== ",") engine(() => this.#phone._engine.sendDtmfInfo(this.id, digit, duration, options.headers));
      await new Promise((r) => setTimeout(r, digit === "," ? 2000 : duration + gap));
    }
  }

  /**
   * Transfers the far end (REFER). To a SIP URI `target`, blind: the far
   * end calls it. To another `Call` of this phone (a consultation call),
   * attended: the far end calls that call's far end, whose call with us
   * it replaces (RFC 3891 Replaces). Resolves when the far end reports the
   * target answered, and then hangs this call up (and the consultation,
   * if its far end has not ended it); rejects with a `SipError` when the
   * far end refuses or the target's call fails (this call then stays up,
   * e.g. to try another target).
   */
  async transfer(target: string | Call, options: SendOptions = {}): Promise<void> {
    this.#phone._assertOpen();
    const consult = target instanceof Call ? target : undefined;
    if (consult) {
      if (consult === this || consult.#phone !== this.#phone) {
        throw new TypeError("target must be a SIP URI, or another call of the same phone");
      }
    } else {
      check.uri("target", target, (uri) => engine(() => this.#phone._engine.checkTarget(uri)));
    }
    checkSendOptions(options);
    this.#mustBeUp("transfer");
    if (consult && consult.state !== "established") {
      throw new InvalidStateError(`cannot transfer to a call that is ${consult.state}`, "wrong_state");
    }
    // The engine always ends a transfer with one `done` event: the
    // target's answer or why not (the far end refused, the call ended
    // before it took the transfer, or no outcome within two minutes).
    const [outcome, cancel] = this.#phone._wait(["transfer"], 0, (d) => d.call === this.id && d.done === true);
    try {
      engine(() => consult
        ? this.#phone._engine.transferReplacing(this.id, consult.id, options.headers)
        : this.#phone._engine.transfer(this.id, target as string, options.headers));
    } catch (e) {
      cancel();
      throw e;
    }
    const [, d] = await outcome;
    const code = d.code as number;
    if (code >= 300) throw new SipError(code, d.reason as string);
    await this.hangup();
    if (consult && consult.state !== "ended") await consult.hangup();
  }

  /** Sends a MESSAGE in the call's dialog. */
  message(text: string, contentType = "text/plain", options: SendOptions = {}): void {
    this.#phone._assertOpen();
    check.body("text", text);
    check.contentType("contentType", contentType);
    checkSendOptions(options);
    engine(() => this.#phone._engine.callMessage(this.id, contentType, text, options.headers));
  }

  /**
   * Sends an INFO (RFC 6086) with `body` of `contentType` in the call, for
   * whatever the far end understands (a CRM record, a queue command…).
   * Resolves when the far end takes it (2xx); rejects with a `SipError`
   * when it refuses, or an `InvalidStateError` when the call ends first.
   */
  async info(contentType: string, body: string, options: SendOptions = {}): Promise<void> {
    this.#phone._assertOpen();
    check.contentType("contentType", contentType);
    check.body("body", body);
    checkSendOptions(options);
    this.#mustBeUp("send INFO");
    const id = engine(() => this.#phone._engine.info(this.id, contentType, body, options.headers));
    const [answered, cancel] = this.#phone._wait(["info_answered"], 0, (d) => d.call === this.id && d.id === id);
    const outcome = await Promise.race([answered, this.ended.then(() => undefined)]);
    if (!outcome) {
      cancel();
      throw new InvalidStateError("the call ended before the far end answered the INFO", "no_such_call");
    }
    const [, d] = outcome;
    if ((d.code as number) >= 300) throw new SipError(d.code as number, d.reason as string);
  }

  /** RTT, jitter, loss and a MOS estimate, from `getStats()`. */
  async stats(): Promise<CallStats> {
    this.#phone._assertOpen();
    const report = await this.#phone._engine.stats(this.id);
    if (!report) throw new InvalidStateError("the call has no media");
    return summarize(report as RTCStatsReport);
  }

  #hold(held: boolean, options: SendOptions): Promise<void> {
    try {
      checkSendOptions(options);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#renegotiate(held ? "hold" : "unhold", () => this.#phone._engine.hold(this.id, held, options.headers));
  }

  /** Runs one change of the session after the ones before it, to its answer. */
  #renegotiate(what: string, send: () => Promise<unknown>): Promise<void> {
    const run = async () => {
      this.#mustBeUp(what);
      const [done, cancel] = this.#phone._wait(["updated", "update_failed", "hangup"], 0, (d) => d.call === this.id);
      try {
        await send();
      } catch (e) {
        cancel();
        throw fromEngine(e);
      }
      const [name, d] = await done;
      if (name !== "updated") throw new SipError((d.code as number) ?? 481, (d.reason as string) ?? "the call ended");
    };
    const next = this.#negotiation.then(run, run);
    this.#negotiation = next.catch(() => undefined);
    return next;
  }

  #mute(muted: boolean): void {
    this.#phone._assertOpen();
    if (!this.#phone._engine.mute(this.id, muted)) throw new InvalidStateError("the call has no media");
    this.#muted = muted;
  }

  #mustBeUp(what: string): void {
    this.#phone._assertOpen();
    if (this.#state !== "established") throw new InvalidStateError(`cannot ${what}: the call is ${this.#state}`);
  }

  /** @internal The engine sent its INVITE: the call has its id. */
  _bind(id: number): void {
    this.#id = id;
    if (this.#hangupWanted) this.hangup().catch(() => undefined);
  }

  /** @internal It could not be placed (no microphone, no connection…): it ends here. */
  _failed(error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    this.#state = "ended";
    this.#settle.fail(error instanceof Error ? error : new Error(reason));
    const info: HangupInfo = { reason };
    this.#settle.end(info);
    (this.emit.bind(this) as (n: string, ...a: unknown[]) => void)("hangup", info);
  }

  /** @internal The phone routes the engine's events here. */
  _event(name: string, d: Detail): void {
    const e = this.emit.bind(this) as (n: string, ...a: unknown[]) => void;
    switch (name) {
      case "ringing":
        this.#state = "ringing";
        e(name);
        break;
      case "progress":
        this.#state = "early";
        e(name);
        break;
      case "accepted":
        this.#state = "established";
        this.#settle.accept();
        e(name);
        break;
      case "updating":
        e(name);
        break;
      case "hold":
        if (d.by === "local") this.#held = d.held as boolean;
        else this.#heldByRemote = d.held as boolean;
        e(name, strip(d));
        break;
      case "dtmf":
      case "info":
      case "transfer":
        e(name, strip(d));
        break;
      case "referred":
        e(name, d.request);
        break;
      case "replaced":
        e(name, d.by);
        break;
      case "message":
        e(name, { from: d.from, contentType: d.contentType, body: d.body, headers: d.headers ?? {}, call: this });
        break;
      case "media_error":
        e("mediaError", { error: d.error });
        break;
      case "hangup": {
        const info: HangupInfo = { code: d.code as number | undefined, reason: d.reason as string };
        const wasUp = this.#state === "established";
        this.#state = "ended";
        // A call that was never up always ends with a code (the core
        // reports one it cancelled as 487).
        if (!wasUp) this.#settle.fail(new CallFailedError(info.code as number, info.reason));
        this.#settle.end(info);
        e(name, info);
        break;
      }
      default:
        break;
    }
  }
}

function strip(d: Detail): any {
  const { call: _call, ...rest } = d;
  return rest;
}

/** The options of `Phone.connect`: each of the right type and range (the engine checks URIs and text with the core's rules). */
function checkPhoneOptions(o: PhoneOptions): void {
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new TypeError("options must be an object with server and uri");
  check.string("options.server", o.server, check.MAX_URI);
  if (!/^wss?:\/\/[^\s]+$/.test(o.server)) throw new TypeError("options.server must be a ws:// or wss:// URL");
  check.string("options.uri", o.uri, check.MAX_URI);
  check.optional(o.password, (v) => check.string("options.password", v, check.MAX_TEXT));
  check.optional(o.authUser, (v) => check.text("options.authUser", v));
  check.optional(o.displayName, (v) => check.text("options.displayName", v));
  check.optional(o.autoRinging, (v) => check.boolean("options.autoRinging", v));
  check.optional(o.register, (v) => check.boolean("options.register", v));
  check.optional(o.registerExpires, (v) => check.integer("options.registerExpires", v, 1, 604_800));
  check.optional(o.registrar, (v) => check.string("options.registrar", v, check.MAX_URI));
  check.optional(o.instanceId, (v) => check.text("options.instanceId", v));
  check.optional(o.userAgent, (v) => check.text("options.userAgent", v));
  check.optional(o.sessionExpiresSecs, (v) => {
    check.integer("options.sessionExpiresSecs", v, 0, 86_400);
    // RFC 4028 §4: nothing below the 90 s minimum.
    if (v > 0 && v < 90) throw new RangeError("options.sessionExpiresSecs must be 0 (none) or from 90 to 86400");
  });
  check.optional(o.incomingHeaderPrefixes, (v) => {
    if (!Array.isArray(v)) throw new TypeError("options.incomingHeaderPrefixes must be an array of strings");
    if (v.length > check.MAX_HEADERS) throw new RangeError(`options.incomingHeaderPrefixes has more than ${check.MAX_HEADERS} entries`);
    v.forEach((p, i) => check.text(`options.incomingHeaderPrefixes[${i}]`, p, 64));
  });
  check.optional(o.keepAliveSecs, (v) => check.integer("options.keepAliveSecs", v, 0, 3600));
  check.optional(o.iceServers, (v) => {
    if (!Array.isArray(v)) throw new TypeError("options.iceServers must be an array of RTCIceServer");
  });
  check.optional(o.iceGatheringTimeoutMs, (v) => check.integer("options.iceGatheringTimeoutMs", v, 0, 60_000));
  check.optional(o.reconnectMinMs, (v) => check.integer("options.reconnectMinMs", v, 100, 600_000));
  check.optional(o.reconnectMaxMs, (v) => check.integer("options.reconnectMaxMs", v, 100, 3_600_000));
  if ((o.reconnectMaxMs ?? 30_000) < (o.reconnectMinMs ?? 500)) throw new RangeError("options.reconnectMaxMs must not be below options.reconnectMinMs");
  check.optional(o.connectTimeoutMs, (v) => check.integer("options.connectTimeoutMs", v, 100, 600_000));
  check.optional(o.wasmUrl, (v) => {
    if (typeof v !== "string" && !(v instanceof URL)) throw new TypeError("options.wasmUrl must be a string or a URL");
  });
}

/** `{ headers }` of an action that sends. */
function checkSendOptions(o: SendOptions): void {
  check.options("options", o);
  check.headers("options.headers", o?.headers);
}

/** `{ audio, video, headers }` of an action that makes or answers a call. */
function checkCallOptions(o: CallOptions): void {
  checkSendOptions(o);
  check.optional(o?.audio, (v) => check.boolean("options.audio", v));
  check.optional(o?.video, (v) => check.boolean("options.video", v));
}

/** A stable RFC 5626 instance id per origin and AoR, so a reload replaces the old binding. */
function instanceId(uri: string): string | undefined {
  try {
    const key = `sipline.instance.${uri}`;
    // Per tab: a reload replaces its own binding, and two tabs keep two.
    let id = globalThis.sessionStorage?.getItem(key);
    if (!id) {
      id = `urn:uuid:${crypto.randomUUID()}`;
      globalThis.sessionStorage?.setItem(key, id);
    }
    return id;
  } catch {
    return undefined; // no storage (private mode): the engine makes one per page
  }
}
