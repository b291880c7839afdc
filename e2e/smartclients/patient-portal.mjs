// The patient pages in a real browser (issue 6): headless Chromium from
// Debian's packages, driven by Playwright (playwright-core, no bundled
// browser). A patient connects the demo's public app to their record in
// the browser (sign-in with a one-time code, approval), the app reads the
// record; then the patient opens Warden's patient pages, finds the app,
// presses "Revoke access" — and the app's very next request is refused,
// and its refresh token is dead.
//
// Usage: NODE_EXTRA_CA_CERTS=DIR/pki/ca.pem node patient-portal.mjs DIR/demo.json [USERNAME]
// (CHROMIUM=/path/to/chromium overrides /usr/bin/chromium)

import { createHash, randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

import { check, clientOfType, fhirUrl, loadDemo, run, userNamed } from "./demo.mjs";
import { STEP_SECONDS, stepAt, totp } from "./totp.mjs";

const SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs";

const b64url = (buf) => buf.toString("base64url");

/** Waits until the next TOTP time step (each code is accepted once). */
async function nextStep() {
  const next = (stepAt(Date.now()) + 1) * STEP_SECONDS * 1000 + 500;
  await new Promise((resolve) => setTimeout(resolve, next - Date.now()));
}

/** Fills Warden's sign-in form; a code already used waits for the next step. */
async function signIn(page, user) {
  await page.fill("#username", user.username);
  await page.fill("#password", user.password);
  await page.fill("#otp", totp(user.totp_secret, stepAt(Date.now())));
  await page.click("button[type=submit]");
  await page.waitForLoadState();
  if (await page.locator("#password").count()) {
    // The code of this step was used already (by the app sign-in): retry once.
    await nextStep();
    await page.fill("#password", user.password);
    await page.fill("#otp", totp(user.totp_secret, stepAt(Date.now())));
    await page.click("button[type=submit]");
    await page.waitForLoadState();
  }
}

await run("patient-portal", async () => {
  const demo = await loadDemo();
  const app = clientOfType(demo, "public");
  const { user, patient } = userNamed(demo, process.argv[3] || "patient4");
  check(patient, `${user.username} is not a patient user`);
  const origin = new URL(demo.issuer).origin;
  const redirectUri = app.redirect_uris[0];

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true });
  try {
    // The demo's development CA is not in Chromium's store.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    let page = await context.newPage();

    // 1. The app sends the browser to Warden (PKCE, state, SMART aud).
    const verifier = b64url(randomBytes(32));
    const state = b64url(randomBytes(16));
    const authorize = new URL(origin + "/auth/authorize");
    authorize.search = new URLSearchParams({
      response_type: "code", client_id: app.client_id, redirect_uri: redirectUri, scope: SCOPE, state,
      aud: demo.fhir_base, code_challenge: b64url(createHash("sha256").update(verifier).digest()), code_challenge_method: "S256",
    }).toString();
    // The redirect back to the app is seen as a request (nothing listens
    // at the app's address; Playwright's routes do not see redirects).
    let callback;
    page.on("request", (request) => {
      if (request.url().startsWith(redirectUri)) callback = new URL(request.url());
    });
    await page.goto(authorize.href);
    await signIn(page, user);
    check(await page.locator("button[value=allow]").count(), `no approval page after sign-in: ${await page.title()}`);
    await page.click("button[value=allow]").catch(() => {}); // the app's address does not answer
    for (let i = 0; i < 50 && !callback; i++) await new Promise((r) => setTimeout(r, 100));
    check(callback, "the browser did not come back to the app");
    check(callback.searchParams.get("state") === state, "state changed on the way");
    const code = callback.searchParams.get("code");
    check(code, `no code in the callback: ${callback.search}`);

    // 2. The app exchanges the code and reads the record.
    const tokenResponse = await fetch(origin + "/auth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: redirectUri, client_id: app.client_id, code_verifier: verifier }),
    });
    const tok = await tokenResponse.json();
    check(tokenResponse.ok && tok.access_token && tok.refresh_token, `token exchange: ${tokenResponse.status} ${JSON.stringify(tok.error)}`);
    check(tok.patient === patient, `launch patient ${tok.patient}, want ${patient}`);
    const read = () => fetch(fhirUrl(demo, `Patient/${patient}`), { headers: { authorization: `Bearer ${tok.access_token}` } });
    const before = await read();
    check(before.status === 200, `the app's read before revocation: ${before.status}`);

    // 3. The patient opens the patient pages and signs in, in a new tab of
    // the same browser: the first tab may still be failing its navigation
    // to the app's address, which would interrupt a new one there.
    await page.close();
    page = await context.newPage();
    await page.goto(origin + "/auth/portal");
    await signIn(page, user);
    // The app connected just now: its section has a Revoke button (a
    // rerun against the same demo also lists the grants it revoked).
    const active = page.locator("section.app[data-grant]", { hasText: app.name }).filter({ has: page.locator("button.danger") });
    check(await active.count() >= 1, `the patient pages list no connected ${app.name}: ${(await page.textContent("main"))?.slice(0, 300)}`);
    const grant = await active.first().getAttribute("data-grant");
    const section = page.locator(`section.app[data-grant="${grant}"]`);
    const may = await section.locator("ul.may li").allTextContents();
    check(may.length > 0, "the page does not say what the app may do");

    // 4. Revoke, then the app's next request.
    await section.locator("button.danger").click();
    await page.waitForLoadState();
    const notice = await page.locator("p.notice").textContent();
    check(/revoked/i.test(notice ?? ""), `no confirmation after Revoke: ${notice}`);
    const revokedAt = Date.now();
    const after = await read();
    check(after.status === 401, `the app's first read after revocation answered ${after.status}, want 401`);
    check(/invalid_token/.test(after.headers.get("www-authenticate") ?? ""), "no invalid_token challenge");
    const refresh = await fetch(origin + "/auth/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: tok.refresh_token, client_id: app.client_id }),
    });
    check(!refresh.ok, `the refresh token still works after revocation (${refresh.status})`);
    check((await section.textContent())?.includes("Access revoked"), "the page does not show the app as revoked");

    return {
      patient,
      app: app.name,
      may,
      read_before: before.status,
      read_after: after.status,
      refresh_after: refresh.status,
      ms_from_click_to_refusal: Date.now() - revokedAt,
    };
  } finally {
    await browser.close();
  }
});
