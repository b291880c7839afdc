// SMART App Launch 2.2 standalone launch with fhirclient (client-js 2.6.3),
// the SMART Health IT library, used exactly as a Node app uses it:
//
//   smart(req, res, storage).authorize({...})  → a 302 to Warden's authorize URL
//   (the user signs in with a one-time code and approves)
//   smart(req, res, storage).ready()           → the code exchanged for tokens
//   client.request("Patient/…"), client.refresh(), client.request again
//
// The app "runs" at the demo's registered redirect_uri
// (http://127.0.0.1:8765/callback) but no listener is needed: fhirclient's
// Node adapter only reads req.url and req.headers.host and writes a 302 to
// res, so plain objects stand in for them.
//
// Usage: NODE_EXTRA_CA_CERTS=DIR/pki/ca.pem node fhirclient-standalone.mjs DIR/demo.json [USERNAME]

import smart from "fhirclient/lib/entry/node.js";

import { Browser } from "./browser.mjs";
import { check, clientOfType, loadDemo, run, userNamed } from "./demo.mjs";

const SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs";

/** fhirclient's storage interface (get/set/unset), kept in memory. */
class MemoryStorage {
  #values = new Map();
  async get(key) {
    return this.#values.get(key);
  }
  async set(key, value) {
    this.#values.set(key, value);
    return value;
  }
  async unset(key) {
    return this.#values.delete(key);
  }
}

/** The parts of a Node http.IncomingMessage that the adapter reads. */
function appRequest(appOrigin, pathAndQuery) {
  const origin = new URL(appOrigin);
  return { url: pathAndQuery, headers: { host: origin.host }, socket: { encrypted: origin.protocol === "https:" } };
}

/** The parts of a Node http.ServerResponse that the adapter writes. */
class CapturedResponse {
  status = 0;
  headers = {};
  writeHead(status, headers = {}) {
    this.status = status;
    this.headers = headers;
  }
  end() {}
}

await run("fhirclient-standalone", async () => {
  const demo = await loadDemo();
  const app = clientOfType(demo, "public");
  const { user, patient: expectedPatient } = userNamed(demo, process.argv[3] || "patient1");
  check(expectedPatient, `${user.username} is not a patient user`);
  const redirectUri = app.redirect_uris[0];
  const storage = new MemoryStorage();

  // 1. The launch page: fhirclient discovers the endpoints from
  //    {iss}/.well-known/smart-configuration and redirects to authorize.
  const launch = new CapturedResponse();
  await smart(appRequest(redirectUri, "/launch"), launch, storage).authorize({
    iss: demo.fhir_base,
    clientId: app.client_id,
    scope: SCOPE,
    redirectUri,
    pkceMode: "required",
  });
  check(launch.status === 302 && launch.headers.location, `authorize() did not redirect (status ${launch.status})`);
  const authorizeUrl = new URL(launch.headers.location);
  const q = authorizeUrl.searchParams;
  check(q.get("code_challenge_method") === "S256", "the authorize URL does not use PKCE S256 (RFC 7636 §4.3)");
  check(/^[A-Za-z0-9_-]{43}$/.test(q.get("code_challenge") ?? ""), "the authorize URL has no S256 code_challenge");
  check(q.get("aud") === demo.fhir_base, `aud is ${q.get("aud")}, not the FHIR base`);

  // 2. The user in the browser: sign in, approve.
  const signIn = await new Browser().signIn(authorizeUrl.href, { redirectUri, user, patient: expectedPatient });
  const callback = new URL(signIn.callbackUrl);
  check(callback.searchParams.get("code"), `the callback has no code: ${callback.search}`);
  check(callback.searchParams.get("iss") === demo.issuer, "the callback's iss is not the issuer (RFC 9207 §2)");

  // 3. The redirect_uri page: ready() checks state and exchanges the code
  //    (with the code_verifier) at the token endpoint.
  const exchangeStarted = performance.now();
  const client = await smart(appRequest(redirectUri, callback.pathname + callback.search), new CapturedResponse(), storage).ready();
  const exchangeMs = Math.round(performance.now() - exchangeStarted);
  const first = { ...client.state.tokenResponse };
  check(client.state.codeVerifier, "fhirclient kept no code_verifier: PKCE was not used");
  check(first.access_token, "no access token");
  check(String(first.token_type).toLowerCase() === "bearer", `token_type is ${first.token_type}`);
  check(first.refresh_token, "no refresh token was issued for offline_access");
  check(/\boffline_access\b/.test(first.scope ?? ""), `the granted scope lacks offline_access: ${first.scope}`);
  check(client.patient.id === expectedPatient, `the launch patient is ${client.patient.id}, not ${user.username}'s`);

  // 4. Read the patient in context.
  const patient = await client.request(`Patient/${client.patient.id}`);
  check(patient?.resourceType === "Patient" && patient.id === expectedPatient, `Patient read returned ${patient?.resourceType}/${patient?.id}`);

  // 5. Refresh (RFC 6749 §6) and read again with the new access token.
  await client.refresh();
  const second = client.state.tokenResponse;
  check(second.access_token && second.access_token !== first.access_token, "refresh() did not yield a new access token");
  const again = await client.request(`Patient/${client.patient.id}`);
  check(again?.id === expectedPatient, `Patient read after refresh returned ${again?.resourceType}/${again?.id}`);

  return {
    user: user.username,
    client_id: app.client_id,
    patient: client.patient.id,
    fhir_user: client.user.fhirUser,
    pkce: "S256",
    pages: signIn.pages,
    granted_scope: first.scope,
    expires_in: first.expires_in,
    refresh_token_rotated: Boolean(second.refresh_token) && second.refresh_token !== first.refresh_token,
    timings_ms: { authorize_to_callback: signIn.milliseconds, code_exchange: exchangeMs },
  };
});
