// The page's own Web Audio: the ringtone of an incoming call, the ringback
// tone while the far end rings, and level meters read from the streams
// themselves (smooth, and in every browser: Firefox's statistics carry no
// microphone level). One AudioContext, made on the user's first click, so
// that browsers let it play.

let ctx = null;

/** Call from a click handler: browsers start audio only after a gesture. */
export function unlockAudio() {
  if (!ctx) {
    try {
      ctx = new AudioContext();
    } catch {
      return; // No Web Audio: no tones, and the meters fall back to stats.
    }
  }
  if (ctx.state === "suspended") ctx.resume().catch(() => {});
}

/** Whether the context runs: a headless browser without an audio output,
 * or a page nobody clicked yet, has one that does not. */
export function audioRunning() {
  return ctx !== null && ctx.state === "running";
}

/**
 * A cadenced two-tone signal, started and stopped with `set(on)`:
 * `cadence` is [seconds on, seconds off].
 */
function signal(freqs, cadence, volume) {
  let stop = null;
  return (on) => {
    if (on && !stop && audioRunning()) {
      const gain = ctx.createGain();
      gain.gain.value = 0;
      gain.connect(ctx.destination);
      const oscillators = freqs.map((f) => {
        const o = ctx.createOscillator();
        o.frequency.value = f;
        o.connect(gain);
        o.start();
        return o;
      });
      const [onSecs, offSecs] = cadence;
      const period = onSecs + offSecs;
      // Schedule a minute of cadence at a time; a call rings for less.
      const t0 = ctx.currentTime + 0.05;
      for (let t = 0; t < 60; t += period) {
        gain.gain.setValueAtTime(volume, t0 + t);
        gain.gain.setValueAtTime(0, t0 + t + onSecs);
      }
      stop = () => {
        for (const o of oscillators) o.stop();
        gain.disconnect();
      };
    } else if (!on && stop) {
      stop();
      stop = null;
    }
  };
}

/** An incoming call: 440 + 480 Hz, 2 s on, 4 s off (the North American ring). */
export const ringtone = signal([440, 480], [2, 4], 0.15);
/** Our call rings at the far end: 425 Hz, 1 s on, 4 s off (the European ringback). */
export const ringback = signal([425], [1, 4], 0.1);

/**
 * A meter on `stream`: returns a function that reads its level now, 0–1 on
 * a 60 dB scale (speech sits around two thirds), or null when the context
 * does not run and the caller should use another source.
 */
export function levelMeter(stream) {
  if (!audioRunning() || !stream || stream.getAudioTracks().length === 0) return () => null;
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  const source = ctx.createMediaStreamSource(stream);
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const read = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    return toMeter(Math.sqrt(sum / samples.length));
  };
  read.close = () => source.disconnect();
  return read;
}

/** A linear level (RMS, or a statistics audioLevel) on the meters' scale. */
export function toMeter(linear) {
  if (!(linear > 0)) return 0;
  return Math.min(1, Math.max(0, (20 * Math.log10(linear) + 60) / 60));
}
