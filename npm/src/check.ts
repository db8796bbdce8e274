// The checks every public method runs on its arguments before anything
// reaches the engine: a wrong type throws a `TypeError`, a value out of
// range a `RangeError`, each naming the argument. What a SIP URI or a
// header is stays the engine's rule (the core's parser); this file only
// keeps values the engine could not take, or that could not fit in one
// WebSocket frame, from reaching it.

/** Most headers an app may add to one request or response. */
export const MAX_HEADERS = 32;
/** Longest header value an app may add, in characters. */
export const MAX_HEADER_VALUE = 1024;
/** Most bytes of app headers on one request or response (names and values). */
export const MAX_HEADER_BYTES = 8 * 1024;
/** Largest body of a MESSAGE or INFO, in UTF-8 bytes: with the headers it stays below the relay's 64 KiB frame. */
export const MAX_BODY_BYTES = 32 * 1024;
/** Longest free-text value (a reason phrase, a display name, a user agent), in characters. */
export const MAX_TEXT = 256;
/** Longest SIP URI, in characters. */
export const MAX_URI = 1024;
/** Most DTMF digits in one `sendDtmf`. */
export const MAX_DIGITS = 64;

/** A value as an error message may show it: its type, never its (possibly huge or secret) contents. */
function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const t = typeof v;
  if (t === "object") return `an object (${(v as object).constructor?.name ?? "no prototype"})`;
  if (t === "number" && Number.isNaN(v)) return "NaN";
  return t === "undefined" ? "undefined" : `a ${t}`;
}

function typeError(name: string, want: string, v: unknown): TypeError {
  return new TypeError(`${name} must be ${want}, not ${kind(v)}`);
}

/** `v` is a string of at most `max` characters. */
export function string(name: string, v: unknown, max: number): asserts v is string {
  if (typeof v !== "string") throw typeError(name, "a string", v);
  if (v.length > max) throw new RangeError(`${name} is longer than ${max} characters (${v.length})`);
}

/** `v` is a string with no control character (nothing that could end a header line). */
export function text(name: string, v: unknown, max = MAX_TEXT): asserts v is string {
  string(name, v, max);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(v)) throw new TypeError(`${name} must not contain control characters (CR, LF…)`);
}

/** `v` is undefined or passes `check`. */
export function optional<T>(v: T | undefined, check: (v: T) => void): void {
  if (v !== undefined) check(v);
}

/** `v` is a boolean. */
export function boolean(name: string, v: unknown): asserts v is boolean {
  if (typeof v !== "boolean") throw typeError(name, "true or false", v);
}

/** `v` is a whole number within `min..=max`. */
export function integer(name: string, v: unknown, min: number, max: number): asserts v is number {
  if (typeof v !== "number" || Number.isNaN(v)) throw typeError(name, "a number", v);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be a whole number from ${min} to ${max}, not ${v}`);
  }
}

/** `v` is one of `allowed`. */
export function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): asserts v is T {
  if (typeof v !== "string") throw typeError(name, `one of ${allowed.map((a) => `"${a}"`).join(", ")}`, v);
  if (!(allowed as readonly string[]).includes(v)) {
    throw new RangeError(`${name} must be one of ${allowed.map((a) => `"${a}"`).join(", ")}`);
  }
}

/** `v` is undefined or a plain object (an options bag). */
export function options(name: string, v: unknown): asserts v is Record<string, unknown> | undefined {
  if (v === undefined) return;
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw typeError(name, "an object", v);
}

/** `v` is a SIP URI string, as `engineCheck` (the core's parser) says. */
export function uri(name: string, v: unknown, engineCheck: (uri: string) => void): asserts v is string {
  string(name, v, MAX_URI);
  try {
    engineCheck(v);
  } catch (e) {
    if (e instanceof TypeError) throw new TypeError(`${name} must be a SIP URI (sip:user@host)`);
    throw e;
  }
}

const HEADER_NAME = /^[A-Za-z0-9!%*_+`'~.-]+$/;

/** `v` is undefined or `{ "Name": "value" }` that fits in a request: token names, single-line values, within the bounds above. */
export function headers(name: string, v: unknown): void {
  if (v === undefined) return;
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw typeError(name, "an object of header names and values", v);
  const entries = Object.entries(v);
  if (entries.length > MAX_HEADERS) throw new RangeError(`${name} has ${entries.length} headers; at most ${MAX_HEADERS}`);
  let bytes = 0;
  for (const [header, value] of entries) {
    if (header.length > 64 || !HEADER_NAME.test(header)) throw new TypeError(`${name}: a header name must be a SIP token (letters, digits, "-"…)`);
    text(`${name}["${header}"]`, value, MAX_HEADER_VALUE);
    bytes += header.length + utf8Length(value) + 4;
  }
  if (bytes > MAX_HEADER_BYTES) throw new RangeError(`${name} take ${bytes} bytes; at most ${MAX_HEADER_BYTES}`);
}

/** `v` is a body that fits in one request. */
export function body(name: string, v: unknown): asserts v is string {
  if (typeof v !== "string") throw typeError(name, "a string", v);
  const bytes = utf8Length(v);
  if (bytes > MAX_BODY_BYTES) throw new RangeError(`${name} is ${bytes} bytes; at most ${MAX_BODY_BYTES}`);
}

const CONTENT_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\\\r\n]*"|[A-Za-z0-9!#$&^_.+-]+))*$/;

/** `v` is a MIME type such as `text/plain` or `application/json; charset=utf-8`. */
export function contentType(name: string, v: unknown): asserts v is string {
  string(name, v, MAX_TEXT);
  if (!CONTENT_TYPE.test(v)) throw new TypeError(`${name} must be a MIME type such as "text/plain"`);
}

/** UTF-8 length of `s` without encoding it. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
