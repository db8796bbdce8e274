// One call's media: the browser's RTCPeerConnection, the microphone (and
// camera) it sends, and the offer/answer steps the core asks for.
//
// SIP carries one complete SDP per offer or answer, so unless the core
// says the far side needs no candidates in it (an ICE-lite gateway, or a
// peer that takes them trickled afterwards), a local description is read
// once ICE gathering has finished, or after a bounded wait when some
// interface is slow. Each step takes the core's word as `gather`.

import { sameTransport } from "../wasm/sipline_wasm.js";

/** What a call sends: the app's choice per call. */
export interface Want {
  audio: boolean;
  video: boolean;
}

/** The page-wide media settings, from `Phone.connect`'s options. */
export interface MediaSettings {
  /** `RTCConfiguration.iceServers` as the app gave it (often none: the relay is ICE-lite on a known address). */
  iceServers?: RTCIceServer[];
  /** The longest wait for ICE gathering before the SDP is sent as it is. */
  gatheringTimeoutMs: number;
  /** The app's word on whether the far side of our offers is ICE-lite; undefined: as the relay says at registration. */
  iceLite?: boolean;
}

/** A trickled candidate of the far end's, as the core parsed it from its INFO. */
export interface RemoteCandidate {
  candidate: string;
  mid?: string;
  index: number;
}

/** A call's peer connection and local stream. */
export class Media {
  readonly #pc: RTCPeerConnection;
  readonly #local: MediaStream;
  readonly #settings: MediaSettings;
  /** Whether we send the camera (the app's `Call.setVideo`), and as last agreed with the far end. */
  #camera = true;
  #cameraAgreed = true;

  private constructor(pc: RTCPeerConnection, local: MediaStream, settings: MediaSettings) {
    this.#pc = pc;
    this.#local = local;
    this.#settings = settings;
  }

  /** Asks for the microphone (and camera) and builds the peer connection that will send them. */
  static async open(want: Want, settings: MediaSettings): Promise<Media> {
    const local = await navigator.mediaDevices.getUserMedia({ audio: want.audio, video: want.video });
    let pc: RTCPeerConnection;
    try {
      pc = new RTCPeerConnection(settings.iceServers ? { iceServers: settings.iceServers } : {});
    } catch (e) {
      // The devices must not stay on for a call that cannot be.
      stopTracks(local);
      throw e;
    }
    for (const track of local.getTracks()) pc.addTrack(track, local);
    return new Media(pc, local, settings);
  }

  /** A new offer (the first, or a re-INVITE's; new ICE credentials with `iceRestart`), set as local description. */
  async offer(gather: boolean, iceRestart = false): Promise<string> {
    return this.#setLocal(await this.#pc.createOffer({ iceRestart }), gather);
  }

  /** The answer to the far end's `offer`, set as local description. */
  async answer(offer: string, gather: boolean): Promise<string> {
    await this.#pc.setRemoteDescription({ type: "offer", sdp: offer });
    return this.#setLocal(await this.#pc.createAnswer(), gather);
  }

  /** The far end's answer: provisional (early media, a 183) or final. */
  async accept(sdp: string, provisional: boolean): Promise<void> {
    await this.#pc.setRemoteDescription({ type: provisional ? "pranswer" : "answer", sdp });
    if (!provisional) this.#cameraAgreed = this.#camera;
  }

  /** Withdraws an offer the far end refused: back to the last agreed session, with the directions it had. */
  async rollback(held: boolean): Promise<void> {
    await this.#pc.setLocalDescription({ type: "rollback" });
    this.#camera = this.#cameraAgreed;
    await this.setHeld(held);
  }

  /** Whether the call has a camera to send (it was placed or answered with video). */
  hasCamera(): boolean {
    return this.#local.getVideoTracks().length > 0;
  }

  /** Whether we send the camera, as asked last. */
  cameraOn(): boolean {
    return this.hasCamera() && this.#camera;
  }

  /**
   * Sends the camera (`on`) or not: the video stream stays, receive-only,
   * so the far end's picture goes on. Applied with the hold state by the
   * next `setHeld`, and carried by the next offer.
   */
  setCamera(on: boolean): void {
    this.#camera = on;
  }

  /** Withdraws a remote offer we could not answer: back to the last agreed session. */
  async rollbackRemote(): Promise<void> {
    if (this.#pc.signalingState === "have-remote-offer") {
      await this.#pc.setRemoteDescription({ type: "rollback" });
    }
  }

  /**
   * Hold (`sendonly`) or resume (`sendrecv`) every stream; the next offer
   * carries it. On hold nothing is sent at all: `sendonly` would allow the
   * live microphone, but whoever pressed hold does not expect to be heard,
   * so each sender's track is taken off (and put back on resume, muted or
   * not as it was: mute stays the app's own). With the camera off, the
   * video stream only receives (`recvonly`; `inactive` on hold).
   */
  async setHeld(held: boolean): Promise<void> {
    for (const t of this.#pc.getTransceivers()) {
      // The receiver's track tells the kind even while the sender has none.
      const kind = t.receiver.track.kind;
      const off = kind === "video" && !this.#camera;
      t.direction = held ? (off ? "inactive" : "sendonly") : off ? "recvonly" : "sendrecv";
      const track = held || off ? null : (kind === "video" ? this.#local.getVideoTracks() : this.#local.getAudioTracks())[0] ?? null;
      await t.sender.replaceTrack(track);
    }
  }

  /** Mutes or unmutes what we send, without renegotiating: the track sends silence while disabled. */
  setMuted(muted: boolean): void {
    for (const track of this.#local.getAudioTracks()) track.enabled = !muted;
  }

  /**
   * Sends `digits` as RFC 4733 telephone-events in the audio stream;
   * `false` when a character is not a DTMF tone (or `,`, a pause) or the
   * call has no audio sender able to.
   */
  sendDtmf(digits: string, durationMs: number, gapMs: number): boolean {
    if (!/^[0-9*#,A-Da-d]+$/.test(digits)) return false;
    for (const sender of this.#pc.getSenders()) {
      if (sender.track?.kind === "audio" && sender.dtmf) {
        sender.dtmf.insertDTMF(digits, durationMs, gapMs);
        return true;
      }
    }
    return false;
  }

  /** What the far end sends, as one stream for an `<audio>` or `<video>` element. */
  remoteStream(): MediaStream {
    return new MediaStream(this.#pc.getReceivers().map((r) => r.track));
  }

  /** What we send (the microphone, the camera): the stream itself, which `close` stops. */
  localStream(): MediaStream {
    return this.#local;
  }

  /** The connection's `RTCStatsReport`, for RTT, jitter and loss. */
  stats(): Promise<RTCStatsReport> {
    return this.#pc.getStats();
  }

  /** Stops the devices and the connection: nothing is sent after a call. */
  close(): void {
    stopTracks(this.#local);
    this.#pc.close();
  }

  /**
   * Calls `then` once if the connection fails for good (`connectionState`
   * `failed`: ICE found no path for ~15 s, or DTLS broke), as when the
   * relay carrying the call died.
   */
  onFailed(then: () => void): void {
    const pc = this.#pc;
    const check = (): void => {
      if (pc.connectionState !== "failed") return;
      pc.removeEventListener("connectionstatechange", check);
      then();
    };
    pc.addEventListener("connectionstatechange", check);
  }

  /** Our local description as it is now (every candidate gathered so far in it), for trickling them. */
  localSdp(): string {
    return this.#pc.localDescription?.sdp ?? "";
  }

  /**
   * The far end's trickled candidates, added to the connection; `end`: it
   * has no more. A candidate the browser refuses is logged and skipped:
   * the others may still connect.
   */
  async addCandidates(candidates: RemoteCandidate[], end: boolean): Promise<void> {
    for (const c of candidates) {
      try {
        await this.#pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.mid ?? null, sdpMLineIndex: c.index });
      } catch (e) {
        console.warn("sipline: candidate refused", e);
      }
    }
    // An empty candidate is the end of them (for the bundle).
    if (end) await this.#pc.addIceCandidate({ candidate: "", sdpMLineIndex: 0 }).catch(() => undefined);
  }

  /**
   * Whether `sdp` (an answer after a reconnect) names the far end this
   * connection already talks to: the same ICE user fragment and DTLS
   * fingerprint as its remote description (the core compares).
   */
  sameFarEnd(sdp: string): boolean {
    const current = this.#pc.remoteDescription;
    return current !== null && sameTransport(current.sdp, sdp);
  }

  /** Sets `description` as local and returns the SDP: at once, or, when `gather`, once ICE gathering is over (or the bounded wait is). */
  async #setLocal(description: RTCSessionDescriptionInit, gather: boolean): Promise<string> {
    await this.#pc.setLocalDescription(description);
    if (gather) await this.gathered();
    const sdp = this.#pc.localDescription?.sdp;
    if (sdp === undefined) throw new Error("no local description");
    return sdp;
  }

  /** When the bounded wait for ICE gathering ends, on `performance.now()`'s clock, if it starts now. */
  gatheringDeadline(): number {
    return performance.now() + this.#settings.gatheringTimeoutMs;
  }

  /** Whether ICE gathering has ended. */
  gatheringComplete(): boolean {
    return this.#pc.iceGatheringState === "complete";
  }

  /** Resolves when ICE gathering is complete, or when the wait is over. */
  async gathered(): Promise<void> {
    const deadline = this.gatheringDeadline();
    while (!this.gatheringComplete() && performance.now() < deadline) await this.gatheringNews(deadline, false);
  }

  /**
   * Resolves at the next change of ICE gathering's state (and, with
   * `candidates`, at the next candidate gathered) or at `deadline`: woken
   * by the browser's events, not by polling. Each wait has its own
   * listeners, so waits on one connection at once do not disturb another.
   */
  async gatheringNews(deadline: number, candidates: boolean): Promise<void> {
    const left = deadline - performance.now();
    if (left <= 0) return;
    const pc = this.#pc;
    let wake = () => {};
    const news = new Promise<void>((resolve) => { wake = resolve; });
    pc.addEventListener("icegatheringstatechange", wake);
    if (candidates) pc.addEventListener("icecandidate", wake);
    // Whole milliseconds, rounded up: never a busy loop.
    const timer = setTimeout(wake, Math.ceil(left));
    await news;
    clearTimeout(timer);
    pc.removeEventListener("icegatheringstatechange", wake);
    pc.removeEventListener("icecandidate", wake);
  }
}

function stopTracks(stream: MediaStream): void {
  for (const track of stream.getTracks()) track.stop();
}
