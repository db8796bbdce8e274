// A call's quality in the figures a call-centre dashboard shows, read from
// the browser's RTCStatsReport, with a MOS estimate from the ITU-T G.107
// E-model (simplified: default factors, G.711-like loss robustness).

/** What `call.stats()` returns. Times are in milliseconds. */
export interface CallStats {
  /** Round-trip time to the relay (ICE), or from RTCP when the far end reports it. */
  rttMs?: number;
  /** Interarrival jitter of what we receive. */
  jitterMs?: number;
  /** Packets of the far end's audio we received. */
  packetsReceived: number;
  /** Packets of the far end's audio that never arrived. */
  packetsLost: number;
  /** Lost as a share of expected, 0–100. */
  lossPercent: number;
  /** Audio packets we sent. */
  packetsSent: number;
  /** Bytes received and sent (all streams). */
  bytesReceived: number;
  bytesSent: number;
  /** Estimated listening quality, 1 (bad) to 4.5 (best narrowband). */
  mos: number;
  /** The microphone's level as sent, 0–1 (0 while muted): for a level meter. */
  localAudioLevel?: number;
  /** The far end's audio level as received, 0–1. */
  remoteAudioLevel?: number;
}

type Stat = Record<string, unknown> & { type: string; kind?: string };

/** Reduces a report to `CallStats`. */
export function summarize(report: RTCStatsReport): CallStats {
  const all: Stat[] = [];
  report.forEach((s: Stat) => all.push(s));
  const num = (v: unknown) => (typeof v === "number" ? v : 0);
  const inbound = all.filter((s) => s.type === "inbound-rtp" && s.kind === "audio");
  const outbound = all.filter((s) => s.type === "outbound-rtp");
  const pair = all.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
  const remote = all.find((s) => s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number");
  const rttSecs = typeof pair?.currentRoundTripTime === "number" ? pair.currentRoundTripTime : remote?.roundTripTime;
  const jitters = inbound.map((s) => s.jitter).filter((j): j is number => typeof j === "number");
  const packetsReceived = inbound.reduce((a, s) => a + num(s.packetsReceived), 0);
  const packetsLost = inbound.reduce((a, s) => a + Math.max(0, num(s.packetsLost)), 0);
  const expected = packetsReceived + packetsLost;
  const lossPercent = expected > 0 ? (100 * packetsLost) / expected : 0;
  const rttMs = typeof rttSecs === "number" ? rttSecs * 1000 : undefined;
  const jitterMs = jitters.length ? Math.max(...jitters) * 1000 : undefined;
  return {
    rttMs,
    jitterMs,
    packetsReceived,
    packetsLost,
    lossPercent,
    packetsSent: outbound.filter((s) => s.kind === "audio").reduce((a, s) => a + num(s.packetsSent), 0),
    bytesReceived: all.filter((s) => s.type === "inbound-rtp").reduce((a, s) => a + num(s.bytesReceived), 0),
    bytesSent: outbound.reduce((a, s) => a + num(s.bytesSent), 0),
    mos: mos((rttMs ?? 0) / 2 + 2 * (jitterMs ?? 0) + 20, lossPercent),
    localAudioLevel: level(all.find((s) => s.type === "media-source" && s.kind === "audio")),
    remoteAudioLevel: level(inbound[0]),
  };
}

function level(s: Stat | undefined): number | undefined {
  return typeof s?.audioLevel === "number" ? s.audioLevel : undefined;
}

/**
 * MOS from one-way delay (ms, with a jitter buffer and codec allowance) and
 * packet loss (%): R = 93.2 − Id − Ie,eff, then G.107's R-to-MOS curve.
 */
export function mos(delayMs: number, lossPercent: number): number {
  const d = Math.max(0, delayMs);
  const id = 0.024 * d + (d > 177.3 ? 0.11 * (d - 177.3) : 0);
  const bpl = 25.1; // G.711 with packet-loss concealment (G.113 Appendix I)
  const ie = (95 * lossPercent) / (lossPercent + bpl);
  const r = Math.min(100, Math.max(0, 93.2 - id - ie));
  return Math.round((1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6) * 100) / 100;
}
