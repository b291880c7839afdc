// A public SMART app (a phone or browser app: no secret) whose tokens are
// bound to a DPoP key (RFC 9449), with oauth4webapi 3.8: the library signs
// a proof for every request and retries once when the server asks for its
// nonce (use_dpop_nonce, RFC 9449 §8), as Warden does by default.
//
//   discovery → PKCE → authorize → sign-in → code grant with a DPoP proof
//   (token_type DPoP) → read Patient with Authorization: DPoP → the same
//   token as a plain Bearer token answers 401 → refresh with the same key
//
// Usage: NODE_EXTRA_CA_CERTS=DIR/pki/ca.pem node oauth4webapi-dpop.mjs DIR/demo.json [USERNAME]
// (USERNAME defaults to patient3: the other scripts sign in patient1 and
// patient2, and a one-time code is never accepted twice.)

import * as oauth from "oauth4webapi";

import { Browser } from "./browser.mjs";
import { check, clientOfType, fhirUrl, loadDemo, run, smartAuthorizeUrl, userNamed } from "./demo.mjs";

const SCOPE = "launch/patient offline_access patient/*.rs";

await run("oauth4webapi-dpop", async () => {
  const demo = await loadDemo();
  const app = clientOfType(demo, "public");
  const defaultUser = demo.users.some((u) => u.username === "patient3") ? "patient3" : "patient1";
  const { user, patient: expectedPatient } = userNamed(demo, process.argv[3] || defaultUser);
  const redirectUri = app.redirect_uris[0];

  const issuer = new URL(demo.issuer);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: "oidc" }));
  check(as.dpop_signing_alg_values_supported?.includes("ES256"), "discovery does not offer DPoP with ES256");

  /** @type {oauth.Client} */
  const client = { client_id: app.client_id };
  const keyPair = await oauth.generateKeyPair("ES256");
  const DPoP = oauth.DPoP(client, keyPair);

  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const authorizeUrl = smartAuthorizeUrl(as.authorization_endpoint, {
    clientId: app.client_id,
    redirectUri,
    scope: SCOPE,
    state,
    aud: demo.fhir_base,
    codeChallenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
  });
  const signIn = await new Browser().signIn(authorizeUrl.href, { redirectUri, user, patient: expectedPatient });
  const callbackParams = oauth.validateAuthResponse(as, client, new URL(signIn.callbackUrl), state);

  // The code grant with a proof; the first try gets use_dpop_nonce.
  let nonceRetries = 0;
  const withNonceRetry = async (fn) => {
    try {
      return await fn();
    } catch (err) {
      if (!oauth.isDPoPNonceError(err)) throw err;
      nonceRetries++;
      return await fn();
    }
  };
  const tokens = await withNonceRetry(async () =>
    oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), callbackParams, redirectUri, codeVerifier, { DPoP }),
    ),
  );
  check(tokens.token_type === "dpop", `token_type is ${tokens.token_type}, not DPoP`);
  check(tokens.patient === expectedPatient, `the launch patient is ${tokens.patient}`);

  // The FHIR API with Authorization: DPoP and a proof per request.
  const patientUrl = fhirUrl(demo, `Patient/${tokens.patient}`);
  const response = await withNonceRetry(async () =>
    oauth.protectedResourceRequest(tokens.access_token, "GET", patientUrl, new Headers({ accept: "application/fhir+json" }), null, { DPoP }),
  );
  check(response.status === 200, `GET Patient with DPoP answered ${response.status}`);
  const resource = await response.json();
  check(resource.resourceType === "Patient" && resource.id === expectedPatient, `GET returned ${resource.resourceType}/${resource.id}`);

  // Stolen: the same token as a plain Bearer token, without the key.
  const stolen = await fetch(patientUrl, { headers: { authorization: `Bearer ${tokens.access_token}` }, redirect: "manual" });
  check(stolen.status === 401, `the DPoP-bound token as Bearer answered ${stolen.status}, not 401`);

  // The refresh token is bound to the key too: refresh with it.
  const refreshed = await withNonceRetry(async () =>
    oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, { DPoP })),
  );
  check(refreshed.token_type === "dpop", `refreshed token_type is ${refreshed.token_type}`);

  return {
    user: user.username,
    client_id: app.client_id,
    patient: tokens.patient,
    token_type: tokens.token_type,
    nonce_retries: nonceRetries,
    bearer_use_status: stolen.status,
    refreshed: true,
  };
});
