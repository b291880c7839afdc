// A headless stand-in for the user's browser during a SMART authorization:
// it opens the authorization URL an app built, keeps a cookie jar, follows
// redirects by hand, and fills in Warden's plain HTML forms (login with a
// one-time code, patient picker, approval) the way a person would, until
// the server sends the browser back to the app's redirect_uri. That last
// redirect is not followed: its URL is handed back for the app to handle.
//
// It reads each form's action and hidden fields from the page; the only
// names it relies on are the stable field names Warden documents:
// username, password, otp, patient, scope, decision (allow/deny).
// It never executes JavaScript (the pages have none).

import { STEP_SECONDS, stepAt, totp } from "./totp.mjs";

/** The most pages one sign-in may take before it counts as a loop. */
const MAX_PAGES = 12;

/**
 * @typedef {object} SignInOptions
 * @property {string} redirectUri  the app's registered redirect_uri
 * @property {{username: string, password: string, totp_secret?: string}} user
 * @property {string} [patient]    the patient to choose if a picker appears
 * @property {"allow"|"deny"} [decision]  the button pressed on the approval page
 */

/**
 * @typedef {object} SignInResult
 * @property {string} callbackUrl  the redirect to the app, with code, state and iss
 * @property {string[]} pages      the kinds of page seen, in order (login, picker, approve)
 * @property {number} milliseconds wall time from the authorization request to the callback
 */

export class Browser {
  /** @type {Map<string, {value: string, host: string, path: string, secure: boolean, expires: number}>} */
  #cookies = new Map();

  /**
   * Drives one authorization request to its end (RFC 6749 §4.1.1 to §4.1.2).
   * @param {string} authorizeUrl  the URL the app sent the user to
   * @param {SignInOptions} options
   * @returns {Promise<SignInResult>}
   */
  async signIn(authorizeUrl, options) {
    const started = performance.now();
    const redirect = new URL(options.redirectUri);
    const pages = [];
    let otpTries = 0;
    let url = new URL(authorizeUrl);
    let response = await this.#request("GET", url);
    for (let n = 0; n < MAX_PAGES; n++) {
      if (isRedirect(response.status)) {
        const location = response.headers.get("location");
        if (!location) throw new Error(`${response.status} from ${url.pathname} without a Location header`);
        const next = new URL(location, url);
        if (next.origin === redirect.origin && next.pathname === redirect.pathname) {
          return { callbackUrl: next.href, pages, milliseconds: Math.round(performance.now() - started) };
        }
        url = next;
        response = await this.#request("GET", url);
        continue;
      }
      const html = await response.text();
      if (response.status !== 200) {
        throw new Error(`${response.status} from ${url.pathname}: ${pageText(html)}`);
      }
      const forms = parseForms(html);
      const login = forms.find((f) => f.fields.some((x) => x.name === "username"));
      const picker = forms.find((f) => f.fields.some((x) => x.name === "patient"));
      const approve = forms.find((f) => f.fields.some((x) => x.name === "decision"));
      let submission;
      if (login) {
        pages.push("login");
        if (otpTries > 0) {
          // A code is accepted once per time step (RFC 6238 §5.2): if this
          // user already signed in during the current step (an earlier run),
          // the first code is refused. Wait for the next step, once.
          if (otpTries > 1 || !options.user.totp_secret) {
            throw new Error(`sign-in as ${options.user.username} refused: ${alertText(html) || pageText(html)}`);
          }
          await waitForNextStep();
        }
        const values = { username: options.user.username, password: options.user.password };
        if (options.user.totp_secret && login.fields.some((x) => x.name === "otp")) {
          values.otp = totp(options.user.totp_secret, stepAt(Date.now()));
          otpTries++;
        }
        submission = formEntries(login, { values });
      } else if (picker) {
        pages.push("picker");
        const offered = picker.fields.filter((x) => x.name === "patient").map((x) => x.value);
        const choice = options.patient ?? offered[0];
        if (!offered.includes(choice)) {
          throw new Error(`the patient picker does not offer ${choice} (offers ${offered.length})`);
        }
        submission = formEntries(picker, { radios: { patient: choice } });
      } else if (approve) {
        pages.push("approve");
        // The user leaves every requested scope ticked, as shown.
        submission = formEntries(approve, { submitter: { name: "decision", value: options.decision ?? "allow" } });
      } else {
        throw new Error(`unexpected page at ${url.pathname}: ${pageText(html)}`);
      }
      const form = submission.form;
      const action = new URL(form.action || url.href, url);
      if (form.method !== "post") throw new Error(`the ${pages.at(-1)} form does not POST`);
      response = await this.#request("POST", action, submission.body, url);
      url = action;
    }
    throw new Error(`no redirect to ${options.redirectUri} after ${MAX_PAGES} pages (${pages.join(", ")})`);
  }

  /**
   * One HTTP exchange with the cookie jar and the headers a browser sends
   * on a navigation or a same-origin form post. Redirects are not followed.
   * @param {"GET"|"POST"} method
   * @param {URL} url
   * @param {URLSearchParams} [body]
   * @param {URL} [from] the page holding the form
   */
  async #request(method, url, body, from) {
    const headers = { accept: "text/html" };
    const cookie = this.#cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    if (method === "POST") {
      headers["content-type"] = "application/x-www-form-urlencoded";
      headers.origin = from.origin;
      headers.referer = from.href;
      headers["sec-fetch-site"] = from.origin === url.origin ? "same-origin" : "cross-site";
    }
    const response = await fetch(url, { method, headers, body, redirect: "manual" });
    this.#storeCookies(url, response.headers.getSetCookie());
    return response;
  }

  /** RFC 6265 §5.4: the cookies to send to url. */
  #cookieHeader(url) {
    const now = Date.now();
    const pairs = [];
    for (const [name, c] of this.#cookies) {
      if (c.expires <= now) continue;
      if (c.host !== url.host) continue;
      if (c.secure && url.protocol !== "https:") continue;
      if (!url.pathname.startsWith(c.path)) continue;
      pairs.push(`${name}=${c.value}`);
    }
    return pairs.join("; ");
  }

  /** RFC 6265 §5.2, for host-only cookies (the only kind __Host- allows). */
  #storeCookies(url, setCookies) {
    for (const line of setCookies) {
      const [pair, ...attributes] = line.split(";");
      const eq = pair.indexOf("=");
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const cookie = { value: pair.slice(eq + 1).trim(), host: url.host, path: "/", secure: false, expires: Infinity };
      for (const attribute of attributes) {
        const [key, value = ""] = attribute.split("=").map((s) => s.trim());
        switch (key.toLowerCase()) {
          case "max-age":
            cookie.expires = Date.now() + Number(value) * 1000;
            break;
          case "expires":
            if (cookie.expires === Infinity) cookie.expires = Date.parse(value);
            break;
          case "path":
            cookie.path = value || "/";
            break;
          case "secure":
            cookie.secure = true;
            break;
        }
      }
      if (name.startsWith("__Host-") && (!cookie.secure || cookie.path !== "/" || url.protocol !== "https:")) {
        continue; // RFC 6265bis §4.1.3.2: a browser ignores such a cookie
      }
      if (cookie.expires <= Date.now()) this.#cookies.delete(name);
      else this.#cookies.set(name, cookie);
    }
  }
}

function isRedirect(status) {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** Sleeps until one second into the next TOTP time step. */
async function waitForNextStep() {
  const next = (stepAt(Date.now()) + 1) * STEP_SECONDS * 1000 + 1000;
  await new Promise((resolve) => setTimeout(resolve, next - Date.now()));
}

/**
 * @typedef {object} Field
 * @property {string} tag      input or button
 * @property {string} type     lower-case type attribute (text if absent)
 * @property {string} name
 * @property {string} value
 * @property {boolean} checked
 * @property {boolean} disabled
 */

/**
 * The forms of a page, with their fields in document order. Enough HTML
 * for Warden's own pages: form, input and button elements with quoted or
 * bare attributes.
 * @param {string} html
 * @returns {{action: string, method: string, fields: Field[]}[]}
 */
export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi)) {
    const attrs = parseAttributes(m[1]);
    const fields = [];
    for (const t of m[2].matchAll(/<(input|button)\b([^>]*)>/gi)) {
      const a = parseAttributes(t[2]);
      const tag = t[1].toLowerCase();
      fields.push({
        tag,
        type: (a.type ?? (tag === "button" ? "submit" : "text")).toLowerCase(),
        name: a.name ?? "",
        value: a.value ?? (tag === "input" && ["checkbox", "radio"].includes((a.type ?? "").toLowerCase()) ? "on" : ""),
        checked: "checked" in a,
        disabled: "disabled" in a,
      });
    }
    forms.push({ action: attrs.action ?? "", method: (attrs.method ?? "get").toLowerCase(), fields });
  }
  return forms;
}

/**
 * The form data set a browser submits (HTML "constructing the entry list"):
 * named, enabled fields in order; checkboxes and radios only when checked;
 * only the button that was pressed.
 * @param {{action: string, method: string, fields: Field[]}} form
 * @param {{values?: Record<string,string>, radios?: Record<string,string>, submitter?: {name: string, value: string}}} input
 */
export function formEntries(form, { values = {}, radios = {}, submitter } = {}) {
  const body = new URLSearchParams();
  let pressed = false;
  for (const field of form.fields) {
    if (!field.name || field.disabled) continue;
    if (field.tag === "button" || field.type === "submit") {
      if (submitter && field.name === submitter.name && field.value === submitter.value && !pressed) {
        body.append(field.name, field.value);
        pressed = true;
      }
      continue;
    }
    if (field.type === "radio") {
      const chosen = field.name in radios ? radios[field.name] === field.value : field.checked;
      if (chosen) body.append(field.name, field.value);
      continue;
    }
    if (field.type === "checkbox") {
      if (field.checked) body.append(field.name, field.value);
      continue;
    }
    body.append(field.name, field.name in values ? values[field.name] : field.value);
  }
  if (submitter && !pressed) {
    throw new Error(`the form has no ${submitter.name}=${submitter.value} button`);
  }
  return { form, body };
}

function parseAttributes(text) {
  const attrs = {};
  for (const m of text.matchAll(/([^\s"'=<>\/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? "");
  }
  return attrs;
}

const NAMED_ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref) => {
    if (ref[0] === "#") {
      const code = ref[1] === "x" || ref[1] === "X" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return NAMED_ENTITIES[ref.toLowerCase()] ?? whole;
  });
}

/** The text of a page's role="alert" element, if any. */
function alertText(html) {
  const m = html.match(/<[^>]+role="alert"[^>]*>([\s\S]*?)<\//i);
  return m ? decodeEntities(m[1]).trim() : "";
}

/** The visible text of a page's body, shortened, for error messages. */
function pageText(html) {
  const body = html.match(/<body\b[^>]*>([\s\S]*)<\/body>/i)?.[1] ?? html;
  const text = decodeEntities(body.replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, " ").replace(/<[^>]+>/g, " "))
    .replace(/\s+/g, " ")
    .trim();
  return text.length > 300 ? text.slice(0, 300) + "…" : text;
}
