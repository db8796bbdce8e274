// What the browser tests hear: the audio an AnalyserNode receives for `ms`
// milliseconds, its spectrum averaged over that time, reduced to the
// strongest frequency and how far it stands above the median bin.
// A classic script (not a module), so that pages include it with <script>
// and drivers inject it with page.addScriptTag alike.

/** A fresh analyser on `ctx`, fine enough to tell tones apart. Connect the
 * remote stream to it; the stream must also play in an <audio> element, or
 * Chromium feeds the analyser silence. */
globalThis.spectrumAnalyser = function spectrumAnalyser(ctx) {
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  return analyser;
};

/** Listens for `ms`: { peakHz, peakOverMedianDb, peakDb }, the last the
 * peak bin's mean level in dB (full scale is about 0). */
globalThis.measureSpectrum = async function measureSpectrum(analyser, ms) {
  const bins = analyser.frequencyBinCount;
  const sum = new Float64Array(bins);
  const frame = new Float32Array(bins);
  const end = performance.now() + ms;
  let frames = 0;
  while (performance.now() < end) {
    await new Promise((ok) => setTimeout(ok, 50));
    analyser.getFloatFrequencyData(frame);
    for (let i = 0; i < bins; i++) sum[i] += Math.pow(10, frame[i] / 10);
    frames++;
  }
  let peak = 1;
  for (let i = 2; i < bins; i++) if (sum[i] > sum[peak]) peak = i;
  const sorted = Array.from(sum).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] || 1e-30;
  return {
    peakHz: (peak * analyser.context.sampleRate) / analyser.fftSize,
    peakOverMedianDb: 10 * Math.log10((sum[peak] || 1e-30) / median),
    peakDb: 10 * Math.log10((sum[peak] || 1e-30) / Math.max(frames, 1)),
  };
};

/** What the demo page plays: its remote stream's <audio> element (the
 * element keeps Chromium feeding the analyser), for `ms`. */
globalThis.measurePagePlaying = async function measurePagePlaying(ms) {
  const audio = document.querySelector("#audio audio");
  if (!audio || !audio.srcObject) return { peakHz: 0, peakOverMedianDb: 0 };
  const ctx = new AudioContext();
  const analyser = spectrumAnalyser(ctx);
  ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
  const heard = await measureSpectrum(analyser, ms);
  await ctx.close();
  return heard;
};

/** The same measure without an AudioContext that plays: records `stream`
 * for `ms` with MediaRecorder, decodes it offline and runs Goertzel's
 * filter every 5 Hz from 100 Hz to 4 kHz over its middle second. Headless
 * Firefox has no audio output, so its AudioContext never leaves
 * "suspended" and an analyser there hears nothing. */
globalThis.measureRecording = async function measureRecording(stream, ms) {
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((ok) => (recorder.onstop = ok));
  recorder.start();
  await new Promise((ok) => setTimeout(ok, ms));
  recorder.stop();
  await stopped;
  const encoded = await new Blob(chunks, { type: recorder.mimeType }).arrayBuffer();
  const audio = await new OfflineAudioContext(1, 48000, 48000).decodeAudioData(encoded);
  const pcm = audio.getChannelData(0);
  const rate = audio.sampleRate;
  const n = Math.min(pcm.length, rate);
  const start = Math.floor((pcm.length - n) / 2);
  const powers = [];
  for (let hz = 100; hz <= 4000; hz += 5) {
    const k = 2 * Math.cos((2 * Math.PI * hz) / rate);
    let s1 = 0;
    let s2 = 0;
    for (let i = start; i < start + n; i++) {
      const s0 = pcm[i] + k * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    powers.push({ hz, power: s1 * s1 + s2 * s2 - k * s1 * s2 });
  }
  const peak = powers.reduce((a, b) => (b.power > a.power ? b : a));
  const sorted = powers.map((p) => p.power).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] || 1e-30;
  return { peakHz: peak.hz, peakOverMedianDb: 10 * Math.log10((peak.power || 1e-30) / median) };
};
