// SMART App Launch 2.2 standalone launch of a confidential app with
// oauth4webapi 3.8, a strict OAuth 2 / OpenID Connect client: HTTPS only,
// no redirects from the server's endpoints, the issuer of the discovery
// document and the RFC 9207 `iss` of the authorization response compared
// exactly, the ID token's alg (RS256), iss, aud and nonce checked.
//
//   discovery → PKCE → authorize URL (built here, with SMART's `aud`)
//   → sign-in → validateAuthResponse → code grant (client_secret_basic)
//   → read Patient → refresh → read again → revoke → read answers 401
//
// Usage: NODE_EXTRA_CA_CERTS=DIR/pki/ca.pem node oauth4webapi-standalone.mjs DIR/demo.json [USERNAME]
// (USERNAME defaults to patient2, so that this script and the fhirclient one
// do not sign the same user in twice within one TOTP time step.)

import { createPublicKey, verify } from "node:crypto";

import * as oauth from "oauth4webapi";

import { Browser } from "./browser.mjs";
import { check, clientOfType, fhirUrl, loadDemo, run, smartAuthorizeUrl, userNamed } from "./demo.mjs";

const SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs";

await run("oauth4webapi-standalone", async () => {
  const demo = await loadDemo();
  const app = clientOfType(demo, "confidential");
  const defaultUser = demo.users.some((u) => u.username === "patient2") ? "patient2" : "patient1";
  const { user, patient: expectedPatient } = userNamed(demo, process.argv[3] || defaultUser);
  check(expectedPatient, `${user.username} is not a patient user`);
  const redirectUri = app.redirect_uris[0];

  // 1. OpenID Connect Discovery 1.0 §4: {issuer}/.well-known/openid-configuration,
  //    whose issuer must equal the one asked for.
  const issuer = new URL(demo.issuer);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: "oidc" }));
  check(as.code_challenge_methods_supported?.includes("S256"), "discovery does not offer PKCE S256");
  check(!as.code_challenge_methods_supported?.includes("plain"), "discovery offers PKCE plain");

  /** @type {oauth.Client} */
  const client = { client_id: app.client_id, id_token_signed_response_alg: "RS256" };
  const clientAuth = oauth.ClientSecretBasic(app.client_secret);

  // 2. The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, SMART's aud).
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const authorizeUrl = smartAuthorizeUrl(as.authorization_endpoint, {
    clientId: app.client_id,
    redirectUri,
    scope: SCOPE,
    state,
    nonce,
    aud: demo.fhir_base,
    codeChallenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
  });

  // 3. The user in the browser: sign in, approve.
  const signIn = await new Browser().signIn(authorizeUrl.href, { redirectUri, user, patient: expectedPatient });

  // 4. The callback: state and iss (RFC 9207 §2.4) checked by the library.
  const callbackParams = oauth.validateAuthResponse(as, client, new URL(signIn.callbackUrl), state);

  // 5. The code grant (RFC 6749 §4.1.3) with the verifier and HTTP Basic.
  const exchangeStarted = performance.now();
  const tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(as, client, clientAuth, callbackParams, redirectUri, codeVerifier),
    { expectedNonce: nonce, requireIdToken: true },
  );
  const exchangeMs = Math.round(performance.now() - exchangeStarted);
  check(tokens.token_type === "bearer", `token_type is ${tokens.token_type}`);
  check(tokens.refresh_token, "no refresh token was issued for offline_access");
  check(tokens.patient === expectedPatient, `the launch patient is ${tokens.patient}, not ${user.username}'s`);
  const idToken = oauth.getValidatedIdTokenClaims(tokens);
  check(
    [user.fhir_user, fhirUrl(demo, user.fhir_user).href].includes(idToken.fhirUser),
    `the ID token's fhirUser is ${idToken.fhirUser}, not ${user.fhir_user}`,
  );
  // oauth4webapi trusts an ID token from the token endpoint on the strength
  // of TLS (OpenID Connect Core §3.1.3.7 item 6) and checks only its alg;
  // check the RS256 signature against the server's JWKS as well.
  const idTokenKid = await verifyRS256(as.jwks_uri, tokens.id_token);

  // 6. Read the patient in context (RFC 6750 §2.1).
  const patientUrl = fhirUrl(demo, `Patient/${tokens.patient}`);
  await readPatient(tokens.access_token, patientUrl, expectedPatient);

  // 7. Refresh (RFC 6749 §6) and read with the new access token.
  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token),
  );
  check(refreshed.access_token !== tokens.access_token, "the refresh did not yield a new access token");
  await readPatient(refreshed.access_token, patientUrl, expectedPatient);

  // 8. Revoke the access token (RFC 7009 §2) and see the API refuse it.
  check(as.revocation_endpoint, "discovery lists no revocation_endpoint");
  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, clientAuth, refreshed.access_token, { additionalParameters: { token_type_hint: "access_token" } }),
  );
  let afterRevoke;
  try {
    afterRevoke = await oauth.protectedResourceRequest(refreshed.access_token, "GET", patientUrl);
  } catch (err) {
    check(err instanceof oauth.WWWAuthenticateChallengeError, `reading with a revoked token: ${err.message}`);
    check(err.status === 401, `a revoked token answers ${err.status}, not 401`);
    const bearer = err.cause.find((c) => c.scheme === "bearer");
    check(bearer?.parameters.error === "invalid_token", `the 401 challenge is not Bearer error="invalid_token" (RFC 6750 §3.1)`);
  }
  check(afterRevoke === undefined, `a revoked token answers ${afterRevoke?.status} without a WWW-Authenticate challenge`);

  return {
    user: user.username,
    client_id: app.client_id,
    patient: tokens.patient,
    id_token: { alg: "RS256", kid: idTokenKid, fhirUser: idToken.fhirUser, nonce_checked: true },
    pages: signIn.pages,
    granted_scope: tokens.scope,
    expires_in: tokens.expires_in,
    refresh_token_rotated: Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token,
    revoked_token_status: 401,
    timings_ms: { authorize_to_callback: signIn.milliseconds, code_exchange: exchangeMs },
  };
});

/** GETs a Patient with a bearer token and checks it is 200 and the expected id. */
async function readPatient(accessToken, url, expectedId) {
  const response = await oauth.protectedResourceRequest(accessToken, "GET", url, new Headers({ accept: "application/fhir+json" }));
  check(response.status === 200, `GET ${url.pathname} answered ${response.status}`);
  const resource = await response.json();
  check(resource.resourceType === "Patient" && resource.id === expectedId, `GET ${url.pathname} returned ${resource.resourceType}/${resource.id}`);
}

/**
 * Verifies a compact JWS signed RS256 (RFC 7515 §5.2, RFC 7518 §3.3)
 * against the key of its kid in the JWK Set at jwksUri; returns the kid.
 */
async function verifyRS256(jwksUri, jws) {
  const [header64, payload64, signature64] = jws.split(".");
  const header = JSON.parse(Buffer.from(header64, "base64url").toString());
  check(header.alg === "RS256", `the ID token is signed ${header.alg}, not RS256`);
  const response = await fetch(jwksUri, { redirect: "manual" });
  check(response.status === 200, `GET ${jwksUri} answered ${response.status}`);
  const { keys = [] } = await response.json();
  const jwk = keys.find((k) => k.kid === header.kid && k.kty === "RSA");
  check(jwk, `the JWKS has no RSA key with the ID token's kid ${header.kid}`);
  const ok = verify(
    "sha256",
    Buffer.from(`${header64}.${payload64}`),
    createPublicKey({ key: jwk, format: "jwk" }),
    Buffer.from(signature64, "base64url"),
  );
  check(ok, "the ID token's RS256 signature does not verify with the server's JWKS");
  return header.kid;
}
