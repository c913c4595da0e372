// The page's shell, shared by the gateway's page (js/app.js) and the town's (town/web/js/app.js):
// sign-in, the header, each role's navigation and home, and the hash router that shows one view at a
// time (#/entries, #/person/t-1 …). A page calls startShell({views, homes, titleKey}); each view is a
// module: {route, roles, nav, render(root, ctx) → optional cleanup}.

import { h, replace } from "./dom.js";
import { currentUser, signIn, signOut, whenExpired } from "./api.js";
import { currentLang, initialLang, setLang, setZone, t, word, zoneLabel } from "./i18n.js";
import { messageLine } from "./ui.js";

let VIEWS = [];
let HOME = {};
let TITLE = "app.title";

const state = { me: null, cleanup: null, expiredNotice: false };

function viewFor(route, role) {
  return VIEWS.find((v) => v.route === route && v.roles.includes(role));
}

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [route, ...params] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { route, params, query: new URLSearchParams(query) };
}

export function navigate(route, ...params) {
  location.hash = "#/" + [route, ...params].map(encodeURIComponent).join("/");
}

function header() {
  const me = state.me;
  const other = currentLang() === "zh-CN" ? "en" : "zh-CN";
  return h("header", { class: "topbar" },
    h("h1", {}, t(TITLE)),
    h("div", { class: "topbar-right" },
      me ? h("span", { class: "whoami", "data-testid": "whoami", "data-role": me.role },
        t("app.whoami", { name: me.name, role: word("role", me.role) })) : null,
      me ? h("span", { class: "zone", "data-testid": "zone" }, zoneLabel()) : null,
      h("button", { type: "button", class: "secondary", "data-testid": "lang-toggle", lang: other,
        "aria-label": t("app.switchLabel"), onclick: () => changeLang(other) }, t("app.switch")),
      me ? h("button", { type: "button", class: "secondary", "data-testid": "sign-out", onclick: leave },
        t("app.signOut")) : null));
}

function nav(current) {
  const items = VIEWS.filter((v) => v.nav && v.roles.includes(state.me.role));
  return h("nav", { class: "main-nav", "aria-label": t("app.nav") },
    h("ul", {}, items.map((v) => h("li", {},
      h("a", { href: "#/" + v.route, "data-testid": "nav-" + v.route,
        "aria-current": v.route === current ? "page" : null }, t(v.nav))))));
}

function showSignIn(noticeKey, kind = "error") {
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  const input = h("input", { id: "token-input", type: "password", required: true, spellcheck: "false",
    autocomplete: "off", "data-testid": "token-input" });
  const msg = messageLine("signin-msg");
  if (noticeKey) msg[kind](noticeKey);
  const form = h("form", { class: "card-box signin", "data-testid": "signin-form", autocomplete: "off",
    onsubmit: async (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) return msg.error("signin.empty");
      msg.info("signin.checking");
      try {
        const me = await signIn(token);
        input.value = "";
        await enter(me);
      } catch (err) {
        msg.error(err.status === 401 ? "signin.rejected" : err.status === 429 ? "signin.tooMany" : err);
        input.focus();
      }
    } },
  h("h2", { id: "signin-h" }, t("signin.heading")),
  h("p", {}, t("signin.help")),
  h("label", { for: "token-input" }, t("signin.token")), input,
  h("button", { type: "submit", "data-testid": "sign-in-btn" }, t("signin.submit")),
  msg.node);
  replace(document.body, header(), h("main", { id: "main" }, form));
  document.body.dataset.ready = "true";
  document.body.dataset.view = "signin";
  input.focus();
}

async function enter(me) {
  state.me = me;
  setZone(me.timezone);
  if (!location.hash || location.hash === "#" || location.hash === "#/") navigate(HOME[me.role] || "entries");
  else render();
}

function render() {
  if (!state.me) return;
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  const { route, params, query } = parseHash();
  const view = viewFor(route, state.me.role);
  if (!view) {
    navigate(HOME[state.me.role] || "entries");
    return;
  }
  const root = h("main", { id: "main", "data-testid": "view-" + view.route });
  replace(document.body, header(), nav(view.route), root);
  document.body.dataset.view = view.route;
  document.body.dataset.ready = "true";
  const ctx = { me: state.me, params, query, navigate, rerender: render };
  const cleanup = view.render(root, ctx);
  state.cleanup = typeof cleanup === "function" ? cleanup : null;
  const heading = root.querySelector("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true }); // screen readers hear the new screen's title
  }
}

async function changeLang(l) {
  await setLang(l);
  document.title = t(TITLE);
  if (state.me) render();
  else showSignIn();
}

async function leave() {
  await signOut();
  state.me = null;
  history.replaceState(null, "", location.pathname);
  showSignIn("signin.signedOut", "ok");
}

/** Start the page: `views` (modules), `homes` (role → route), `titleKey` (the page's name in the catalogue). */
export async function startShell({ views, homes, titleKey = "app.title" }) {
  VIEWS = views;
  HOME = homes;
  TITLE = titleKey;
  await setLang(initialLang());
  document.title = t(TITLE);
  whenExpired(() => {
    state.me = null;
    showSignIn("signin.expired");
  });
  window.addEventListener("hashchange", render);
  let me = null;
  try {
    me = await currentUser(); // a session cookie from earlier in this browser
  } catch (e) { /* the sign-in form says what is wrong when it is used */ }
  if (me) await enter(me);
  else showSignIn();
}
