// The errors sipline's promises reject with: one class per cause, so an
// app can `instanceof` them, and the SIP status where there is one.

/** A SIP request was refused: `code` and `reason` are the status the server (or the relay) sent. */
export class SipError extends Error {
  /** The SIP status code (486, 403, 408…). */
  readonly code: number;
  /** The reason phrase. */
  readonly reason: string;

  constructor(code: number, reason: string) {
    super(`${code} ${reason}`);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
  }
}

/** A call failed before it was answered (busy, declined, not found, cancelled…). */
export class CallFailedError extends SipError {}

/** The registrar refused the registration (403, 404…) or did not answer (408). */
export class RegistrationError extends SipError {}

/** The relay could not be reached, or did not answer in time. */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The call or phone is not in a state that allows this (answering an outgoing call, holding one that rings…). */
export class InvalidStateError extends Error {
  /**
   * Why, when the SIP engine refused: `not_connected`, `no_such_call`,
   * `wrong_state` (not answered yet, or already), `change_pending` (another
   * hold or ICE restart is under way), `no_referral`, `no_video` (a call
   * without video asked to turn its camera on or off).
   */
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The engine's refusal as this package's error: a bad argument stays the
 * `TypeError` or `RangeError` the engine threw (it names the argument);
 * the wrong moment becomes an `InvalidStateError` with the engine's `code`.
 */
export function fromEngine(e: unknown): unknown {
  if (e instanceof TypeError || e instanceof RangeError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (e instanceof Error && typeof code === "string") return new InvalidStateError(e.message, code);
  return e;
}

/** Runs a call into the engine, its refusal thrown as {@link fromEngine} makes it. */
export function engine<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromEngine(e);
  }
}
