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

/** Listens for `ms`: { peakHz, peakOverMedianDb }. */
globalThis.measureSpectrum = async function measureSpectrum(analyser, ms) {
  const bins = analyser.frequencyBinCount;
  const sum = new Float64Array(bins);
  const frame = new Float32Array(bins);
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await new Promise((ok) => setTimeout(ok, 50));
    analyser.getFloatFrequencyData(frame);
    for (let i = 0; i < bins; i++) sum[i] += Math.pow(10, frame[i] / 10);
  }
  let peak = 1;
  for (let i = 2; i < bins; i++) if (sum[i] > sum[peak]) peak = i;
  const sorted = Array.from(sum).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] || 1e-30;
  return {
    peakHz: (peak * analyser.context.sampleRate) / analyser.fftSize,
    peakOverMedianDb: 10 * Math.log10((sum[peak] || 1e-30) / median),
  };
};
