// One subscription (RFC 6665) of a phone: a busy lamp, the voicemail
// light, someone's presence, or any event package. The engine keeps it up
// (refreshes, subscribes again after a reconnect) and parses the bodies
// it knows; this object reports them.

import { Emitter } from "./emitter.js";
import { InvalidStateError, SipError } from "./errors.js";
import type { Detail, SendOptions } from "./types.js";

/** A busy lamp (RFC 4235 `dialog-info`): the watched user's busiest call. */
export interface LampStatus {
  kind: "dialog";
  /** The watched user. */
  entity: string;
  /** `idle`, `ringing` (a call rings at them) or `busy` (on a call, or placing one). */
  lamp: "idle" | "ringing" | "busy";
  /** That call's direction, from the watched user's side. */
  direction?: "incoming" | "outgoing";
  /** The other party of that call, when the server says. */
  other?: string;
  /** The document lists every call (else only changes). */
  full: boolean;
}

/** A voicemail summary (RFC 3842). */
export interface VoicemailStatus {
  kind: "message-summary";
  /** Messages are waiting: the light is on. */
  waiting: boolean;
  /** The mailbox, when the server names it. */
  account?: string;
  /** Counts per class (`voice`, `fax`…). */
  counts: { class: string; new: number; old: number; urgentNew: number; urgentOld: number }[];
}

/** Presence (RFC 3863 PIDF). */
export interface PresenceStatus {
  kind: "presence";
  /** The user. */
  entity: string;
  /** Reachable (`open`), or not. */
  open: boolean;
  /** The first note, when there is one. */
  note?: string;
}

/** A NOTIFY body the engine understood. */
export type Status = LampStatus | VoicemailStatus | PresenceStatus;

/** One NOTIFY. */
export interface Notification {
  /** `active`, `pending` or `terminated`. */
  state: string;
  /** The body's type (empty when it has none). */
  contentType: string;
  /** The body as sent. */
  body: string;
  /** The body parsed, for lamps, voicemail and presence. */
  status?: Status;
}

/** Why a subscription ended: the SUBSCRIBE's refusal (`code`), the server's reason, or `Unsubscribed`. */
export interface SubscriptionEnd {
  code?: number;
  reason: string;
}

/** What a subscription reports. */
export interface SubscriptionEvents {
  active: [{ expires: number }];
  notify: [Notification];
  ended: [SubscriptionEnd];
}

/** Options of `phone.subscribe`. */
export interface SubscribeOptions extends SendOptions {
  /** The body types taken (the Accept header); by default the one the package is known to carry. */
  accept?: string;
  /** Seconds asked for (60–86400; the engine asks for 600 by default); refreshed before then. */
  expires?: number;
}

/** @internal The events `subscription.on` takes. */
export const SUBSCRIPTION_EVENTS: (keyof SubscriptionEvents)[] = ["active", "notify", "ended"];

/** A subscription: its NOTIFYs as `notify` events, its last parsed `status`. */
export class Subscription extends Emitter<SubscriptionEvents> {
  /** The engine's id for it. */
  readonly id: number;
  /** Whom it watches. */
  readonly target: string;
  /** The event package (`dialog`, `message-summary`, `presence`…). */
  readonly event: string;
  /** Settles when the server accepted it (rejects with a `SipError` if it refused). */
  readonly active: Promise<void>;
  /** Settles when it ends, with why. */
  readonly ended: Promise<SubscriptionEnd>;
  #status: Status | undefined;
  #state: "subscribing" | "active" | "ended" = "subscribing";
  readonly #end: (id: number) => void;
  #settle!: { active: () => void; refused: (e: Error) => void; ended: (e: SubscriptionEnd) => void };

  /** @internal Subscriptions are made by the phone. */
  constructor(id: number, target: string, event: string, end: (id: number) => void) {
    super(SUBSCRIPTION_EVENTS);
    this.id = id;
    this.target = target;
    this.event = event;
    this.#end = end;
    let active!: () => void, refused!: (e: Error) => void, ended!: (e: SubscriptionEnd) => void;
    this.active = new Promise<void>((a, r) => { active = a; refused = r; });
    this.active.catch(() => undefined); // a refusal is also the `ended` event
    this.ended = new Promise((e) => { ended = e; });
    this.#settle = { active, refused, ended };
  }

  /** The last status a NOTIFY carried (a lamp, the voicemail light, presence). */
  get status(): Status | undefined { return this.#status; }
  /** `subscribing`, `active` or `ended`. */
  get state(): "subscribing" | "active" | "ended" { return this.#state; }

  /** Ends it; resolves when the server has ended it too. */
  async unsubscribe(): Promise<SubscriptionEnd> {
    if (this.#state !== "ended") this.#end(this.id);
    return this.ended;
  }

  /** @internal The phone routes the engine's events here. */
  _event(name: string, d: Detail): void {
    const e = this.emit.bind(this) as (n: string, ...a: unknown[]) => void;
    switch (name) {
      case "subscription_active":
        this.#state = "active";
        this.#settle.active();
        e("active", { expires: d.expires });
        break;
      case "notify": {
        const status = d.status as Status | undefined;
        if (status) this.#status = status;
        e("notify", { state: d.state, contentType: d.contentType, body: d.body, status });
        break;
      }
      case "subscription_ended": {
        const end: SubscriptionEnd = { code: d.code as number | undefined, reason: d.reason as string };
        const was = this.#state;
        this.#state = "ended";
        if (was === "subscribing") {
          this.#settle.refused(end.code === undefined
            ? new InvalidStateError(`the subscription ended: ${end.reason}`, "subscription_ended")
            : new SipError(end.code, end.reason));
        }
        this.#settle.ended(end);
        e("ended", end);
        break;
      }
      default:
        break;
    }
  }
}
