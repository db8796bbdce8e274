// The demo phone: the npm package `sipline` used exactly as an app would
// (served here from ./sdk/). Everything SIP is the SDK's; this file is the
// user interface: forms, the dial pad, the calls list, meters and stats.

import { Phone, SipError, ConnectionError, InvalidStateError } from "./sdk/dist/index.js";
import { unlockAudio, audioRunning, ringtone, ringback, levelMeter, toMeter } from "./webaudio.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  account: $("account"),
  connect: $("connect"),
  accountFields: $("account-fields"),
  accountSummary: $("account-summary"),
  connectButton: $("connect-button"),
  disconnect: $("disconnect"),
  dial: $("dial"),
  target: $("target"),
  callButton: $("call-button"),
  pad: $("pad"),
  dtmfInfo: $("dtmf-info"),
  incoming: $("incoming"),
  incomingFrom: $("incoming-from"),
  answer: $("answer"),
  decline: $("decline"),
  callList: $("call-list"),
  noCalls: $("no-calls"),
  active: $("active"),
  activeTitle: $("active-title"),
  hangup: $("hangup"),
  hold: $("hold"),
  mute: $("mute"),
  record: $("record"),
  recordingsNote: $("recordings-note"),
  recordingList: $("recording-list"),
  transfer: $("transfer"),
  consult: $("consult"),
  join: $("join"),
  voicemail: $("voicemail"),
  lamps: $("lamps"),
  watch: $("watch"),
  watchButton: $("watch-button"),
  micLevel: $("mic-level"),
  remoteLevel: $("remote-level"),
  stats: $("stats"),
  messageList: $("message-list"),
  message: $("message"),
  send: $("send"),
  audio: $("audio"),
};

let phone = null;
let domain = "";
/** The calls by their Call object (an outgoing one has no id while it is placed). */
/** @type {Map<import("./sdk/dist/index.js").Call, {call: import("./sdk/dist/index.js").Call, audio: HTMLAudioElement}>} */
const calls = new Map();
let active = null;
let ringing = null;
/** The call held while its transfer target is consulted. */
let consulting = null;
/** The calls the relay records, as its answers to Record said. */
const recorded = new WeakSet();

/** A SIP status, or any error, in words a call-centre agent understands. */
function inWords(e) {
  const words = {
    403: "refused: check the user and password",
    404: "no such number",
    408: "no answer",
    480: "not available right now",
    481: "the call no longer exists",
    486: "busy",
    487: "cancelled",
    488: "the far end cannot take this call's media",
    503: "the service is unavailable",
    603: "declined",
  };
  if (e instanceof SipError) return `${words[e.code] ?? e.reason} (${e.code})`;
  if (e instanceof ConnectionError) return "cannot reach the relay";
  if (e instanceof InvalidStateError) return e.message;
  if (e && e.name === "NotAllowedError") return "the microphone was not allowed";
  return String(e && e.message ? e.message : e);
}

function setStatus(text, state) {
  ui.status.textContent = text;
  ui.status.dataset.state = state;
}

/** `bob` → `sip:bob@<domain>`; full SIP addresses are kept. */
function address(input) {
  const t = input.trim();
  if (t.startsWith("sip:") || t.startsWith("sips:")) return t;
  return `sip:${t.includes("@") ? t : `${t}@${domain}`}`;
}

async function prefill() {
  try {
    const config = await (await fetch("/api/config")).json();
    domain = config.domain;
    const f = ui.connect.elements;
    f.server.value = config.server;
    f.uri.value = `sip:alice@${config.domain}`;
    f.register.checked = config.register;
    ui.connect.dataset.iceServers = JSON.stringify(config.iceServers ?? []);
  } catch {
    setStatus("Not connected (no /api/config: fill in the form)", "offline");
  }
}

/** Once connected, the account form folds to one line. */
function showConnected(connected) {
  const f = ui.connect.elements;
  ui.account.classList.toggle("connected", connected);
  ui.accountFields.hidden = connected;
  ui.connectButton.hidden = connected;
  ui.accountSummary.hidden = !connected;
  ui.accountSummary.textContent = connected ? `${f.uri.value} via ${f.server.value}` : "";
  ui.connectButton.disabled = connected;
  ui.disconnect.disabled = !connected;
  ui.callButton.disabled = !connected;
  ui.send.disabled = !connected;
  ui.watchButton.disabled = !connected;
  if (!connected) {
    ui.lamps.replaceChildren();
    showVoicemail(undefined);
  }
}

ui.connect.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  unlockAudio();
  const f = ui.connect.elements;
  domain = f.uri.value.split("@")[1] ?? domain;
  ui.connectButton.disabled = true;
  setStatus("Connecting…", "busy");
  try {
    phone = await Phone.connect({
      server: f.server.value,
      uri: f.uri.value.trim(),
      authUser: f.authUser.value.trim() || undefined,
      password: f.password.value || undefined,
      displayName: f.displayName.value.trim() || undefined,
      register: f.register.checked,
      iceServers: JSON.parse(ui.connect.dataset.iceServers ?? "[]"),
    });
    wirePhone(phone);
    setStatus(phone.registered ? `Registered as ${f.uri.value}` : "Connected (guest)", "ready");
    showConnected(true);
    if (phone.registered) watchVoicemail(phone);
    ui.target.focus();
  } catch (e) {
    phone = null;
    setStatus(`Could not connect: ${inWords(e)}`, "error");
    ui.connectButton.disabled = false;
  }
});

ui.disconnect.addEventListener("click", async () => {
  if (!phone) return;
  await phone.disconnect();
  phone = null;
  setStatus("Not connected", "offline");
  showConnected(false);
});

function wirePhone(p) {
  p.on("reconnecting", (d) => setStatus(`Connection lost: reconnecting (attempt ${d.attempt})…`, "busy"));
  p.on("reconnected", () => setStatus("Reconnected", "ready"));
  p.on("registered", () => setStatus("Registered", "ready"));
  p.on("registrationFailed", (d) => setStatus(`Registration failed: ${inWords(new SipError(d.code, d.reason))}`, "error"));
  p.on("incoming", (call) => {
    track(call);
    ringing = call;
    ui.incomingFrom.textContent = call.displayName ? `${call.displayName} <${call.remoteUri}>` : call.remoteUri;
    ui.incoming.hidden = false;
    ringtone(true);
    ui.answer.focus();
  });
  p.on("message", (m) => addMessage(`${m.from}: ${m.body}`, "in"));
  // An attended transfer to us: the new call takes the old one's place.
  p.on("replaced", (old, by) => {
    track(by);
    const entry = calls.get(by);
    if (entry) entry.audio.srcObject = by.remoteStream ?? null;
    addMessage(`${old.remoteUri} transferred ${by.remoteUri} to you`, "note");
    select(by);
  });
  // The far end transfers us: follow it, as a desk phone does.
  p.on("referred", async (call, request) => {
    addMessage(`${call.remoteUri ?? "The far end"} transfers you to ${request.target}`, "note");
    try {
      const next = request.accept();
      track(next);
      await next.accepted;
    } catch (e) {
      addMessage(`Transfer to ${request.target} failed: ${inWords(e)}`, "error");
    }
  });
}

/** Keeps a call in the list, with its own <audio> for the far end. */
function track(call) {
  if (calls.has(call)) return;
  const audio = document.createElement("audio");
  audio.autoplay = true;
  ui.audio.append(audio);
  calls.set(call, { call, audio });
  const attach = () => {
    const stream = call.remoteStream;
    if (stream && audio.srcObject !== stream) audio.srcObject = stream;
  };
  call.on("progress", attach);
  call.on("accepted", () => {
    attach();
    select(call);
  });
  for (const name of ["ringing", "progress", "accepted", "hold"]) call.on(name, render);
  call.on("hangup", (info) => {
    audio.remove();
    calls.delete(call);
    if (ringing === call) hideIncoming();
    if (active === call) active = null;
    addMessage(`Call with ${call.remoteUri ?? "the far end"} ended${info.code ? `: ${inWords(new SipError(info.code, info.reason))}` : ""}`, "note");
    render();
  });
  call.on("dtmf", (d) => addMessage(`DTMF ${d.digit} received`, "note"));
  call.on("recording", (r) => {
    if (r.state === "started") recorded.add(call);
    if (r.state === "stopped") recorded.delete(call);
    render();
  });
  call.ended.then(() => {
    // Its recording's files are finished a moment after the call.
    if (recorded.has(call)) setTimeout(listRecordings, 500);
  });
  render();
}

function hideIncoming() {
  ringing = null;
  ui.incoming.hidden = true;
  ringtone(false);
}

ui.answer.addEventListener("click", async () => {
  unlockAudio();
  const call = ringing;
  hideIncoming();
  if (!call) return;
  await holdOthers(call);
  call.answer().catch((e) => setStatus(`Could not answer: ${inWords(e)}`, "error"));
});

ui.decline.addEventListener("click", () => {
  const call = ringing;
  hideIncoming();
  call?.decline(486);
});

ui.dial.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!phone || !ui.target.value.trim()) return;
  unlockAudio();
  const target = address(ui.target.value);
  await holdOthers(null);
  setStatus(`Calling ${target}…`, "busy");
  try {
    // The call at once: it shows (and can be hung up) while it rings.
    const call = phone.call(target);
    track(call);
    await call.accepted;
    setStatus(`In a call with ${target}`, "ready");
    ui.target.value = "";
  } catch (e) {
    setStatus(`Call to ${target} failed: ${inWords(e)}`, "error");
  }
});

/** The dial pad types into the target, or sends DTMF in the active call. */
ui.pad.addEventListener("click", (ev) => {
  const digit = ev.target.closest("button")?.textContent;
  if (!digit) return;
  const call = current();
  if (call && call.state === "established") {
    sendDtmf(call, digit);
  } else {
    ui.target.value += digit;
    ui.target.focus();
  }
});

document.addEventListener("keydown", (ev) => {
  // Digits typed outside a text field are DTMF in the active call.
  const typing = ev.target instanceof HTMLInputElement;
  const call = current();
  if (!typing && call && call.state === "established" && /^[0-9*#]$/.test(ev.key)) {
    sendDtmf(call, ev.key);
  }
  if (ev.key === "Escape" && ringing) ui.decline.click();
});

function sendDtmf(call, digit) {
  const method = ui.dtmfInfo.checked ? "info" : "rfc4733";
  call.sendDtmf(digit, { method }).catch((e) => setStatus(`DTMF: ${inWords(e)}`, "error"));
}

function current() {
  return active !== null && calls.has(active) ? active : null;
}

/** Puts every established call but `keep` on hold. */
async function holdOthers(keep) {
  for (const { call } of calls.values()) {
    if (call !== keep && call.state === "established" && !call.held) {
      await call.hold().catch(() => {});
    }
  }
}

/** Makes a call the active one: the others on hold, this one resumed. */
async function select(chosen) {
  active = chosen;
  render();
  await holdOthers(chosen);
  const call = current();
  if (call && call.held) await call.unhold().catch((e) => setStatus(`Resume: ${inWords(e)}`, "error"));
  render();
}

ui.hangup.addEventListener("click", () => current()?.hangup());
ui.hold.addEventListener("click", async () => {
  const call = current();
  if (!call) return;
  try {
    await (call.held ? call.unhold() : call.hold());
  } catch (e) {
    setStatus(`Hold: ${inWords(e)}`, "error");
  }
  render();
});
ui.mute.addEventListener("click", () => {
  const call = current();
  if (!call) return;
  if (call.muted) call.unmute(); else call.mute();
  render();
});
ui.record.addEventListener("click", async () => {
  const call = current();
  if (!call) return;
  const stopping = recorded.has(call);
  try {
    await (stopping ? call.stopRecording() : call.startRecording());
    setStatus(stopping ? "Recording stopped" : "Recording", "ready");
    if (stopping) setTimeout(listRecordings, 500);
  } catch (e) {
    setStatus(`Record: ${inWords(e)}`, "error");
  }
  render();
});

/** The relay's finished recordings (its embedded PBX's demo lists them to
 * its page; in front of a PBX they need the operator's admin token). */
async function listRecordings() {
  let list;
  try {
    const r = await fetch("/admin/recordings", { cache: "no-store" });
    if (!r.ok) {
      ui.recordingsNote.textContent = r.status === 401 || r.status === 404
        ? "Recordings are listed here with the embedded PBX; in front of a PBX, ask your operator."
        : `Recordings unavailable (${r.status}).`;
      return;
    }
    list = (await r.json()).recordings;
  } catch {
    return;
  }
  ui.recordingsNote.textContent = list.length ? "" : "None yet: press Record in a call.";
  ui.recordingList.replaceChildren(...list.map(recordingItem));
}

function recordingItem(rec) {
  const li = document.createElement("li");
  li.dataset.callId = rec.call_id;
  const when = new Date(rec.started_unix_ms).toLocaleTimeString();
  const secs = Math.round((rec.ended_unix_ms - rec.started_unix_ms) / 1000);
  const keys = rec.dtmf?.length ? `, keys ${rec.dtmf.map((k) => k.digit).join("")}` : "";
  const title = document.createElement("p");
  title.textContent = `${when}: ${rec.from ?? "?"} → ${rec.to ?? "?"}, ${secs} s${keys}${rec.complete ? "" : ` (cut short: ${rec.failure})`}`;
  li.append(title);
  const wav = rec.files.find((f) => f.format === "wav");
  if (wav) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = `/admin/recordings/${encodeURIComponent(wav.path)}`;
    li.append(audio);
  }
  const pcap = rec.files.find((f) => f.format === "pcap");
  if (pcap) {
    const a = document.createElement("a");
    a.href = `/admin/recordings/${encodeURIComponent(pcap.path)}`;
    a.download = pcap.path;
    a.textContent = "pcap";
    li.append(" ", a);
  }
  return li;
}

ui.transfer.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const call = current();
  const to = ui.transfer.elements.target.value;
  if (!call || !to.trim()) return;
  setStatus(`Transferring to ${address(to)}…`, "busy");
  try {
    await call.transfer(address(to));
    setStatus(`Transferred to ${address(to)}`, "ready");
    ui.transfer.reset();
  } catch (e) {
    setStatus(`Transfer failed: ${inWords(e)}`, "error");
  }
});

/** Consult first: the active call goes on hold while the target is called;
 * then "Transfer the held call to this one" joins them (attended). */
ui.consult.addEventListener("click", async () => {
  const first = current();
  const to = ui.transfer.elements.target.value;
  if (!phone || !first || !to.trim()) return;
  consulting = first;
  await holdOthers(null);
  setStatus(`Consulting ${address(to)}…`, "busy");
  try {
    const consult = phone.call(address(to));
    track(consult);
    await consult.accepted;
    setStatus(`Consulting ${address(to)}: transfer when ready`, "ready");
    ui.transfer.reset();
  } catch (e) {
    consulting = null;
    setStatus(`Consultation failed: ${inWords(e)}`, "error");
  }
  render();
});

ui.join.addEventListener("click", async () => {
  const consult = current();
  const first = consulting;
  if (!first || !consult) return;
  setStatus(`Transferring ${first.remoteUri} to ${consult.remoteUri}…`, "busy");
  try {
    await first.transfer(consult);
    setStatus("Transferred", "ready");
  } catch (e) {
    setStatus(`Transfer failed: ${inWords(e)}`, "error");
  }
  consulting = null;
  render();
});

/** The voicemail light: lit while messages wait. */
function watchVoicemail(p) {
  const mwi = p.voicemail();
  mwi.on("notify", (n) => showVoicemail(n.status));
  mwi.active.catch(() => { ui.voicemail.textContent = "Voicemail: not offered"; });
}

function showVoicemail(status) {
  const waiting = status?.kind === "message-summary" && status.waiting;
  const voice = status?.kind === "message-summary" ? status.counts.find((c) => c.class === "voice") : undefined;
  ui.voicemail.dataset.waiting = String(waiting);
  ui.voicemail.textContent = !status
    ? "Voicemail: —"
    : waiting ? `Voicemail: ${voice?.new ?? "some"} new` : "Voicemail: none";
}

/** A busy lamp per colleague. */
ui.watch.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!phone) return;
  const me = ui.connect.elements.uri.value.trim();
  for (const name of ui.watch.elements.users.value.split(/[\s,]+/).filter(Boolean)) {
    const uri = address(name);
    if (uri === me || ui.lamps.querySelector(`[data-uri="${CSS.escape(uri)}"]`)) continue;
    const li = document.createElement("li");
    li.dataset.uri = uri;
    li.dataset.lamp = "unknown";
    li.textContent = `${name}: …`;
    ui.lamps.append(li);
    const lamp = phone.watch(uri);
    lamp.on("notify", (n) => {
      if (n.status?.kind !== "dialog") return;
      li.dataset.lamp = n.status.lamp;
      const with_ = n.status.other ? ` (${n.status.other})` : "";
      li.textContent = `${name}: ${n.status.lamp}${n.status.lamp === "idle" ? "" : with_}`;
    });
    lamp.on("ended", () => { li.dataset.lamp = "unknown"; li.textContent = `${name}: not watched`; });
  }
});

ui.message.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ui.message.elements;
  if (!phone || !f.to.value.trim() || !f.text.value) return;
  const to = address(f.to.value);
  const text = f.text.value;
  try {
    await phone.message(to, text);
    addMessage(`me → ${to}: ${text}`, "out");
    f.text.value = "";
  } catch (e) {
    addMessage(`not delivered to ${to}: ${inWords(e)}`, "error");
  }
});

function addMessage(text, kind) {
  const li = document.createElement("li");
  li.textContent = text;
  li.className = kind;
  ui.messageList.append(li);
  li.scrollIntoView({ block: "nearest" });
}

const STATE_WORDS = {
  calling: "calling",
  ringing: "ringing",
  early: "ringing (early media)",
  incoming: "incoming",
  answering: "answering",
  established: "in call",
  ended: "ended",
};

function render() {
  ui.callList.replaceChildren(
    ...[...calls.values()].map(({ call }) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      const state = call.held ? "on hold" : call.heldByRemote ? "held by the far end" : STATE_WORDS[call.state];
      button.textContent = `${call.remoteUri ?? "…"}: ${state}`;
      button.setAttribute("aria-current", String(call === active));
      button.addEventListener("click", () => select(call));
      li.append(button);
      return li;
    }),
  );
  ui.noCalls.hidden = calls.size > 0;
  // Ringback while a call of ours rings with no early media of its own.
  ringback([...calls.values()].some(({ call }) => call.state === "ringing"));
  const call = current();
  ui.active.hidden = !call;
  if (!call) return;
  ui.activeTitle.textContent = `${call.remoteUri ?? ""}: ${STATE_WORDS[call.state]}`;
  ui.hold.textContent = call.held ? "Resume" : "Hold";
  ui.hold.setAttribute("aria-pressed", String(call.held));
  ui.mute.textContent = call.muted ? "Unmute" : "Mute";
  ui.mute.setAttribute("aria-pressed", String(call.muted));
  ui.record.textContent = recorded.has(call) ? "Stop recording" : "Record";
  ui.record.setAttribute("aria-pressed", String(recorded.has(call)));
  ui.join.hidden = !(consulting && calls.has(consulting) && consulting !== call && call.state === "established");
}

/** The active call's meters: read from its streams with Web Audio ten
 * times a second, or from its statistics where Web Audio does not run. */
const meters = { key: null, mic: () => null, far: () => null };
const statsLevels = { mic: 0, far: 0 };

function closeMeters() {
  meters.mic.close?.();
  meters.far.close?.();
  Object.assign(meters, { key: null, mic: () => null, far: () => null });
}

/** Meters on the call's current audio tracks (a renegotiation may swap
 * them; the streams around them are made afresh on each read). */
function metersFor(call) {
  const track = (stream) => stream?.getAudioTracks()[0]?.id;
  const key = [call.id, track(call.localStream), track(call.remoteStream), audioRunning()].join();
  if (meters.key !== key) {
    closeMeters();
    Object.assign(meters, { key, mic: levelMeter(call.localStream), far: levelMeter(call.remoteStream) });
  }
  return meters;
}

setInterval(() => {
  const call = current();
  if (!call || call.state !== "established") {
    if (meters.key !== null) closeMeters();
    ui.micLevel.value = 0;
    ui.remoteLevel.value = 0;
    return;
  }
  const m = metersFor(call);
  ui.micLevel.value = call.muted ? 0 : m.mic() ?? statsLevels.mic;
  ui.remoteLevel.value = m.far() ?? statsLevels.far;
}, 100);

/** Stats of the active call, once a second. */
setInterval(async () => {
  const call = current();
  if (!call || call.state !== "established") {
    ui.stats.replaceChildren();
    return;
  }
  try {
    const s = await call.stats();
    statsLevels.mic = toMeter(s.localAudioLevel);
    statsLevels.far = toMeter(s.remoteAudioLevel);
    const rows = [
      ["Round trip", s.rttMs === undefined ? "—" : `${s.rttMs.toFixed(0)} ms`],
      ["Jitter", s.jitterMs === undefined ? "—" : `${s.jitterMs.toFixed(1)} ms`],
      ["Loss", `${s.lossPercent.toFixed(1)} %`],
      ["Quality (MOS)", s.mos.toFixed(2)],
    ];
    ui.stats.replaceChildren(
      ...rows.flatMap(([k, v]) => {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v;
        return [dt, dd];
      }),
    );
  } catch {
    // The call ended between two ticks.
  }
}, 1000);

prefill();
listRecordings();
