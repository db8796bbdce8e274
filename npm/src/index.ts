// sipline: a phone in a web page.
//
// This file is the typed, promise-based face of the engine (engine.ts): the
// sans-IO SIP core compiled to WebAssembly (sdk-wasm), driven by the
// engine's WebSocket, RTCPeerConnections and timers. This facade keeps one
// object per call, turns the engine's events into typed events, and waits
// on them for the promises it returns. Neither holds a SIP rule: those are
// the core's.

import init from "../wasm/sipline_wasm.js";
import { Engine, type EngineLike } from "./engine.js";

export { SipError, CallFailedError, RegistrationError, ConnectionError, InvalidStateError } from "./errors.js";
import { SipError, RegistrationError, ConnectionError, InvalidStateError, engine, fromEngine } from "./errors.js";
import { Emitter } from "./emitter.js";
import * as check from "./check.js";
import { Call, recordingInfo, strip } from "./call.js";
import { Subscription, type SubscribeOptions } from "./subscription.js";
import { checkCallOptions, checkPhoneOptions, checkSendOptions } from "./options.js";
import { PHONE_EVENTS, type CallOptions, type Detail, type PhoneEvents, type PhoneOptions, type SendOptions, type TransferRequest } from "./types.js";
export { Call } from "./call.js";
export { Subscription } from "./subscription.js";
export type {
  LampStatus, Notification, PresenceStatus, Status, SubscribeOptions, SubscriptionEnd, SubscriptionEvents,
  VoicemailStatus,
} from "./subscription.js";
export { MAX_BODY_BYTES, MAX_DIGITS, MAX_HEADER_BYTES, MAX_HEADER_VALUE, MAX_HEADERS } from "./check.js";
export type { CallStats } from "./stats.js";
export type {
  CallEvents, CallOptions, CallState, DtmfOptions, HangupInfo, Headers, IncomingInfo, IncomingMessage,
  PhoneEvents, PhoneOptions, RecordingInfo, SendOptions, TransferProgress, TransferRequest,
} from "./types.js";

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
  readonly #subscriptions = new Map<number, Subscription>();
  /** Our address of record (the voicemail's target). */
  readonly #uri: string;

  private constructor(options: PhoneOptions, makeEngine?: (emit: (name: string, detail: Detail) => void) => EngineLike) {
    super(PHONE_EVENTS);
    this.#uri = options.uri;
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

  /**
   * Subscribes to `event` of `target` (RFC 6665): the subscription at
   * once; `await sub.active` for the server's acceptance (it rejects with
   * a `SipError` when refused). Its NOTIFYs arrive as `notify` events,
   * parsed where the engine knows the body (`sub.status`). Kept up until
   * `sub.unsubscribe()`: refreshed, and subscribed again after a
   * reconnect.
   */
  subscribe(target: string, event: string, options: SubscribeOptions = {}): Subscription {
    this._assertOpen();
    this.#checkUri("target", target);
    check.string("event", event, 64);
    if (!/^[A-Za-z0-9!%*_+`'~.-]+(;[A-Za-z0-9!%*_+`'~.-]+=[A-Za-z0-9!%*_+`'~.-]+)*$/.test(event)) {
      throw new TypeError("event must be an event package name such as \"dialog\"");
    }
    checkSendOptions(options);
    check.optional(options.accept, (a) => {
      check.text("options.accept", a);
      for (const type of a.split(",")) check.contentType("options.accept", type.trim());
    });
    check.optional(options.expires, (v) => check.integer("options.expires", v, 60, 86_400));
    const id = engine(() =>
      this.#engine.subscribe(target, event, options.accept, options.expires, options.headers),
    );
    const sub = new Subscription(id, target, event, (s) => engine(() => this.#engine.unsubscribe(s)));
    this.#subscriptions.set(id, sub);
    return sub;
  }

  /** A busy lamp for `target` (BLF: RFC 4235 `dialog`); `sub.status.lamp` is `idle`, `ringing` or `busy`. */
  watch(target: string, options: SendOptions = {}): Subscription {
    check.options("options", options);
    return this.subscribe(target, "dialog", options);
  }

  /** Our voicemail light (MWI: RFC 3842 `message-summary`); `sub.status.waiting` and the counts. */
  voicemail(options: SendOptions = {}): Subscription {
    check.options("options", options);
    return this.subscribe(this.#uri, "message-summary", options);
  }

  /** Whether `target` is reachable (RFC 3856 `presence`, PIDF); `sub.status.open` and its note. */
  presence(target: string, options: SendOptions = {}): Subscription {
    check.options("options", options);
    return this.subscribe(target, "presence", options);
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
    for (const sub of this.#subscriptions.values()) {
      sub._event("subscription_ended", { reason: "Disconnected" });
    }
    this.#subscriptions.clear();
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
    if (typeof d.subscription === "number") {
      this.#subscriptions.get(d.subscription)?._event(name, d);
      if (name === "subscription_ended") this.#subscriptions.delete(d.subscription);
      return;
    }
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
        if (fresh.state !== "ended") fresh.hangup().catch(() => undefined);
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
      case "recording":
        if (call) e(name, call, recordingInfo(d));
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
