// The facade's public types: the options, events and records the app
// sees, and what it uses of the engine.

import type { Call } from "./call.js";

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
  /** The far side of your offers is an ICE-lite gateway: they go without waiting for ICE candidates (a full-ICE answerer then gets them trickled in INFOs, RFC 8840, or else in a re-INVITE). Default: as the relay says when registering (the sipline relay is one); `false` makes offers wait. Answers go at once to an ICE-lite offer (`a=ice-lite`) or a caller that takes trickled candidates, else with candidates. */
  iceLite?: boolean;
  /** The longest wait for ICE candidates before an offer or answer is sent (default 2000 ms), when the far side is not ICE-lite. */
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

/** The relay's answer to `startRecording()` or `stopRecording()`. */
export interface RecordingInfo {
  /** `started` or `stopped` as asked, or `failed` (refused, or unanswered). */
  state: "started" | "stopped" | "failed";
  /** The relay's status: 200; 403 when it does not record on demand (or, recording every call, for a stop); 408 when no answer came. */
  code: number;
  /** Its reason phrase (`Recording Disabled`, `Recording Is Mandatory`…). */
  reason: string;
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
  recording: [RecordingInfo];
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
  recording: [Call, RecordingInfo];
  hangup: [Call, HangupInfo];
  message: [IncomingMessage];
}

/** @internal An engine event's detail. */
export type Detail = Record<string, unknown> & { call?: number };

/** The events `phone.on` takes. */
export const PHONE_EVENTS: (keyof PhoneEvents)[] = ["connected", "reconnecting", "reconnected", "registering", "registered",
  "registrationFailed", "unregistering", "unregistered", "keepaliveTimeout", "incoming", "calling", "ringing",
  "progress", "accepted", "updating", "hold", "dtmf", "info", "transfer", "referred", "replaced", "recording", "hangup",
  "message"];

/** The events `call.on` takes. */
export const CALL_EVENTS: (keyof CallEvents)[] = ["ringing", "progress", "accepted", "updating", "hold", "dtmf", "info", "message",
  "transfer", "referred", "replaced", "recording", "hangup", "mediaError"];
