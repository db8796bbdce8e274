// The checks of the options objects the public methods take (see
// check.ts for the values themselves).

import * as check from "./check.js";
import type { CallOptions, PhoneOptions, SendOptions } from "./types.js";

/** The options of `Phone.connect`: each of the right type and range (the engine checks URIs and text with the core's rules). */
export function checkPhoneOptions(o: PhoneOptions): void {
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
  check.optional(o.iceLite, (v) => check.boolean("options.iceLite", v));
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
export function checkSendOptions(o: SendOptions): void {
  check.options("options", o);
  check.headers("options.headers", o?.headers);
}

/** `{ audio, video, headers }` of an action that makes or answers a call. */
export function checkCallOptions(o: CallOptions): void {
  checkSendOptions(o);
  check.optional(o?.audio, (v) => check.boolean("options.audio", v));
  check.optional(o?.video, (v) => check.boolean("options.video", v));
}
