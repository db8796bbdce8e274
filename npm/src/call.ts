// One call of a phone: its state, its promises, and the actions on it,
// each checking its arguments before the engine is asked.

import { SipError, CallFailedError, InvalidStateError, engine, fromEngine } from "./errors.js";
import { Emitter } from "./emitter.js";
import { summarize, type CallStats } from "./stats.js";
import * as check from "./check.js";
import { checkCallOptions, checkSendOptions } from "./options.js";
import { CALL_EVENTS, type CallEvents, type CallOptions, type CallState, type Detail, type DtmfOptions, type HangupInfo, type Headers, type RecordingInfo, type SendOptions } from "./types.js";
import type { Phone } from "./index.js";

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
  /** We send our camera: the call has video and `setVideo(false)` did not turn it off. */
  get video(): boolean { return this.#live() && this.#phone._engine.sendsVideo(this.id); }

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

  /** Declines an incoming call with `code` (the engine's 486 Busy Here by default, 603 Decline…) and `reason` (by default the code's own phrase). */
  decline(code?: number, reason?: string, options: SendOptions = {}): void {
    this.#phone._assertOpen();
    check.optional(code, (c) => check.integer("code", c, 400, 699));
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

  /**
   * Turns our camera off (`false`: a re-INVITE makes our video
   * receive-only, so the far end's picture goes on) or on again; resolves
   * when the far end agreed. A call placed or answered without video has
   * no camera to turn on (`InvalidStateError`, code `no_video`).
   */
  setVideo(on: boolean, options: SendOptions = {}): Promise<void> {
    try {
      check.boolean("on", on);
      checkSendOptions(options);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#renegotiate(`turn the camera ${on ? "on" : "off"}`, () => this.#phone._engine.video(this.id, on, options.headers));
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

  /**
   * Asks the relay to record the call from now on (an INFO with `Record:
   * on`, as desk phones send; a relay with `[recording] mode =
   * "on-demand"` answers it). Resolves once it records (the `recording`
   * event says `started`); rejects with a `SipError` when it refuses (403
   * when the relay does not record on demand), or an `InvalidStateError`
   * when the call ends first.
   */
  startRecording(options: SendOptions = {}): Promise<void> { return this.#record(true, options); }

  /** Asks the relay to stop recording the call (`Record: off`); settles as `startRecording()` does. */
  stopRecording(options: SendOptions = {}): Promise<void> { return this.#record(false, options); }

  async #record(on: boolean, options: SendOptions): Promise<void> {
    this.#phone._assertOpen();
    checkSendOptions(options);
    this.#mustBeUp(on ? "start recording" : "stop recording");
    const id = engine(() => this.#phone._engine.record(this.id, on, options.headers));
    const [answered, cancel] = this.#phone._wait(["recording"], 0, (d) => d.call === this.id && d.id === id);
    const outcome = await Promise.race([answered, this.ended.then(() => undefined)]);
    if (!outcome) {
      cancel();
      throw new InvalidStateError("the call ended before the relay answered", "no_such_call");
    }
    const [, d] = outcome;
    if (d.state === "failed") throw new SipError(d.code as number, d.reason as string);
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
      if (name === "hangup") throw new InvalidStateError(`cannot ${what}: the call ended`, "no_such_call");
      if (name !== "updated") throw new SipError(d.code as number, d.reason as string);
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
      case "recording":
        e(name, recordingInfo(d));
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

/** @internal The `recording` event's detail as the app sees it. */
export function recordingInfo(d: Detail): RecordingInfo {
  return { state: d.state as RecordingInfo["state"], code: d.code as number, reason: d.reason as string };
}

/** @internal An event's detail without its call id. */
export function strip(d: Detail): any {
  const { call: _call, ...rest } = d;
  return rest;
}
