// The example app every bundler builds: what an app does with sipline, and
// nothing a bundler needs to be told. It registers with the relay named in
// the page's query (server, uri, password), calls `target` (the embedded
// PBX's echo), and leaves its outcome in window.result for the test.
import { Phone } from "sipline";

const q = new URLSearchParams(location.search);

async function run() {
  const phone = await Phone.connect({ server: q.get("server"), uri: q.get("uri"), password: q.get("password") });
  const call = phone.call(q.get("target"));
  await call.accepted;
  // The echo sends back what we send: a second of it both ways.
  await new Promise((ok) => setTimeout(ok, 1500));
  const { packetsSent, packetsReceived } = await call.stats();
  await call.hangup();
  await phone.disconnect();
  return { registered: true, answered: true, packetsSent, packetsReceived };
}

window.result = run().catch((e) => ({ error: String((e && e.stack) || e) }));
