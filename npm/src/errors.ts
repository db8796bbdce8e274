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
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
