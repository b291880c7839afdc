// SMART Backend Services (SMART App Launch 2.2, backend-services.html) with
// oauth4webapi 3.8: a system client with no user gets an access token with
// the client_credentials grant, authenticating with a JWT signed by its own
// ES384 key (private_key_jwt, RFC 7523 §2.2), then searches Patient.
//
//   SMART discovery → import the PKCS#8 key → client_credentials with
//   PrivateKeyJwt (aud = issuer, the library's default) → GET Patient?_count=1
//   → again with aud = the token URL (what the SMART spec asks)
//   → a resource type outside the granted scope answers 403
//
// Usage: NODE_EXTRA_CA_CERTS=DIR/pki/ca.pem node oauth4webapi-backend.mjs DIR/demo.json

import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";

import * as oauth from "oauth4webapi";

import { check, clientOfType, fhirUrl, loadDemo, run } from "./demo.mjs";

const SCOPE = "system/Patient.rs";

await run("oauth4webapi-backend", async () => {
  const demo = await loadDemo();
  const backend = clientOfType(demo, "backend");
  check(backend.private_key_file && backend.key_id, "the backend client in demo.json has no private_key_file or key_id");

  // 1. Discovery as SMART Backend Services asks: {fhir base}/.well-known/smart-configuration.
  const issuer = new URL(demo.issuer);
  const as = await oauth.processDiscoveryResponse(issuer, await fetch(fhirUrl(demo, ".well-known/smart-configuration"), { redirect: "manual" }));
  check(as.token_endpoint_auth_methods_supported?.includes("private_key_jwt"), "discovery does not offer private_key_jwt");
  check(as.token_endpoint_auth_signing_alg_values_supported?.includes("ES384"), "discovery does not offer ES384 client assertions");

  // 2. The client's key: PKCS#8 PEM → WebCrypto CryptoKey (ECDSA P-384, sign only).
  const keyObject = createPrivateKey(await readFile(backend.private_key_file, "utf8"));
  check(keyObject.asymmetricKeyDetails?.namedCurve === "secp384r1", "the backend key is not a P-384 key (ES384)");
  const key = await crypto.subtle.importKey(
    "pkcs8",
    keyObject.export({ format: "der", type: "pkcs8" }),
    { name: "ECDSA", namedCurve: "P-384" },
    false,
    ["sign"],
  );
  const client = { client_id: backend.client_id };

  // 3. client_credentials (RFC 6749 §4.4) with the library's assertion:
  //    iss = sub = client_id, aud = issuer, exp in 60 s, a fresh jti.
  const first = await systemToken(as, client, oauth.PrivateKeyJwt({ key, kid: backend.key_id }));
  const bundle = await searchPatients(demo, first.access_token);

  // 4. The same with aud = the token endpoint URL, as SMART's
  //    client-confidential-asymmetric profile words it.
  const smartAud = oauth.PrivateKeyJwt(
    { key, kid: backend.key_id },
    { [oauth.modifyAssertion]: (_header, payload) => void (payload.aud = as.token_endpoint) },
  );
  const second = await systemToken(as, client, smartAud);
  await searchPatients(demo, second.access_token);

  // 5. The token grants Patient only: another type is forbidden (403).
  const other = await oauth.protectedResourceRequest(second.access_token, "GET", fhirUrl(demo, "Observation?_count=1")).catch((err) => err);
  check(other.status === 403, `GET Observation with ${SCOPE} answered ${other.status}, not 403`);

  return {
    client_id: backend.client_id,
    key: { alg: "ES384", kid: backend.key_id },
    granted_scope: first.scope,
    expires_in: first.expires_in,
    assertion_audiences: ["issuer", "token_endpoint"],
    patient_search: { status: 200, entries: bundle.entry?.length ?? 0, total: bundle.total },
    out_of_scope_status: 403,
  };
});

/** Gets and checks a backend token (SMART backend-services.html#issue-access-token). */
async function systemToken(as, client, clientAuth) {
  const tokens = await oauth.processClientCredentialsResponse(
    as,
    client,
    await oauth.clientCredentialsGrantRequest(as, client, clientAuth, { scope: SCOPE }),
  );
  check(tokens.token_type === "bearer", `token_type is ${tokens.token_type}`);
  check(typeof tokens.expires_in === "number" && tokens.expires_in > 0 && tokens.expires_in <= 300, `expires_in is ${tokens.expires_in}, not in (0, 300]`);
  check((tokens.scope ?? "").split(" ").includes(SCOPE), `the granted scope is "${tokens.scope}", not ${SCOPE}`);
  check(tokens.refresh_token === undefined, "a backend token came with a refresh token");
  return tokens;
}

/** GET Patient?_count=1 with the token: 200 and a searchset Bundle. */
async function searchPatients(demo, accessToken) {
  const url = fhirUrl(demo, "Patient?_count=1");
  const response = await oauth.protectedResourceRequest(accessToken, "GET", url, new Headers({ accept: "application/fhir+json" }));
  check(response.status === 200, `GET Patient?_count=1 answered ${response.status}`);
  const bundle = await response.json();
  check(bundle.resourceType === "Bundle" && bundle.type === "searchset", `GET Patient?_count=1 returned ${bundle.resourceType} ${bundle.type ?? ""}`);
  check(bundle.entry?.length === 1 && bundle.entry[0].resource?.resourceType === "Patient", "the search returned no Patient entry");
  return bundle;
}
