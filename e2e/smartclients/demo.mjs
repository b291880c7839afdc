// What every script shares: reading the demo.json that `warden demo`
// writes, picking a client and a user from it, checking a condition with a
// clear message, and running a script so that it prints a JSON summary on
// success and exits 1 with the reason on failure.

import { readFile } from "node:fs/promises";

/**
 * @typedef {object} DemoClient
 * @property {string} client_id
 * @property {string} name
 * @property {"public"|"confidential"|"backend"} type
 * @property {string[]} [redirect_uris]
 * @property {string} scopes
 * @property {string} [client_secret]
 * @property {string} [private_key_file]
 * @property {string} [key_id]
 *
 * @typedef {object} DemoUser
 * @property {string} username
 * @property {string} password
 * @property {string} totp_secret
 * @property {string} fhir_user
 *
 * @typedef {object} Demo
 * @property {string} fhir_base
 * @property {string} issuer
 * @property {string} ca_file
 * @property {string[]} patients
 * @property {DemoClient[]} clients
 * @property {DemoUser[]} users
 */

/** Throws an Error with message unless condition holds. */
export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * Reads demo.json: the path is the first argument, else $WARDEN_DEMO_JSON.
 * Node must already trust the demo's CA, which it learns only at start-up:
 * run the script with NODE_EXTRA_CA_CERTS=<ca_file of demo.json>.
 * @returns {Promise<Demo>}
 */
export async function loadDemo(argv = process.argv.slice(2), env = process.env) {
  const path = argv[0] || env.WARDEN_DEMO_JSON;
  check(path, "usage: node SCRIPT.mjs DIR/demo.json [USERNAME] (or set WARDEN_DEMO_JSON)");
  let demo;
  try {
    demo = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new Error(`reading ${path}: ${err.message}`);
  }
  for (const key of ["fhir_base", "issuer", "ca_file", "clients", "users"]) {
    check(demo[key], `${path} has no ${key}`);
  }
  return demo;
}

/**
 * The first client of a type (public, confidential or backend).
 * @param {Demo} demo
 * @returns {DemoClient}
 */
export function clientOfType(demo, type) {
  const client = demo.clients.find((c) => c.type === type);
  check(client, `demo.json lists no ${type} client`);
  return client;
}

/**
 * A user by name, and the patient id of a patient user's fhir_user.
 * @param {Demo} demo
 * @returns {{user: DemoUser, patient: string | undefined}}
 */
export function userNamed(demo, username) {
  const user = demo.users.find((u) => u.username === username);
  check(user, `demo.json lists no user ${username}`);
  const [type, id] = user.fhir_user.split("/");
  return { user, patient: type === "Patient" ? id : undefined };
}

/** Joins a relative FHIR path to the base URL. */
export function fhirUrl(demo, path) {
  return new URL(demo.fhir_base.replace(/\/*$/, "/") + path);
}

/**
 * Runs a script: prints its result as JSON on stdout and exits 0, or
 * prints "NAME: FAIL: reason" on stderr and exits 1.
 * @param {string} name
 * @param {() => Promise<object>} script
 */
export async function run(name, script) {
  try {
    const summary = await script();
    process.stdout.write(JSON.stringify({ script: name, ok: true, ...summary }, null, 2) + "\n");
  } catch (err) {
    let message = describe(err);
    if (/CERT|UNABLE_TO_VERIFY|SELF_SIGNED/.test(message)) {
      message += " (does Node trust the demo's CA? run with NODE_EXTRA_CA_CERTS=DIR/pki/ca.pem, the ca_file of demo.json)";
    }
    process.stderr.write(`${name}: FAIL: ${message}\n`);
    process.exitCode = 1;
  }
}

/** An error with what the libraries attach to it: OAuth error, status, cause. */
function describe(err) {
  if (!(err instanceof Error)) return String(err);
  const parts = [err.message];
  if (err.code) parts.push(`code=${err.code}`);
  if (err.status) parts.push(`status=${err.status}`);
  if (err.error) parts.push(`error=${err.error}`);
  if (err.error_description) parts.push(`error_description=${err.error_description}`);
  const cause = err.cause;
  if (cause instanceof Response) {
    parts.push(`response=${cause.status} ${cause.url}`);
  } else if (cause instanceof Error) {
    parts.push(`cause: ${describe(cause)}`);
  } else if (cause !== undefined) {
    parts.push(`cause=${truncate(JSON.stringify(redact(cause)))}`);
  }
  return parts.join("; ");
}

/** Drops token and secret values from what an error carries. */
function redact(value) {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, /token|secret|assertion|code_verifier|^code$/i.test(k) ? "[redacted]" : redact(v)]),
    );
  }
  return value;
}

function truncate(text = "") {
  return text.length > 600 ? text.slice(0, 600) + "…" : text;
}

/**
 * The SMART authorization request URL (RFC 6749 §4.1.1 with PKCE S256,
 * RFC 7636 §4.3, and SMART's `aud`); `nonce` only when given.
 * @param {string} endpoint the authorization endpoint
 * @param {{clientId: string, redirectUri: string, scope: string, state: string, aud: string, codeChallenge: string, nonce?: string}} p
 */
export function smartAuthorizeUrl(endpoint, p) {
  const url = new URL(endpoint);
  const params = {
    response_type: "code",
    client_id: p.clientId,
    redirect_uri: p.redirectUri,
    scope: p.scope,
    state: p.state,
    aud: p.aud,
    code_challenge: p.codeChallenge,
    code_challenge_method: "S256",
  };
  if (p.nonce) params.nonce = p.nonce;
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url;
}
