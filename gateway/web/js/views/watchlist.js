// The police watch list: the tenants on it (each a link to their page), taken off after a
// confirmation; others found by name, permit number, room or id and put on it. Every change is
// audited by the gateway and never shown to the tenant.

import { h, replace } from "../dom.js";
import { call } from "../api.js";
import { t } from "../i18n.js";
import { badge, button, confirmAction, dataTable, field, messageLine, pager } from "../ui.js";

export const route = "watchlist";
export const roles = ["police"];
export const nav = "nav.watchlist";

const LIMIT = 50;
const FOUND_LIMIT = 20;

function personLink(p) {
  return h("a", { href: "#/person/" + encodeURIComponent(p.id), "data-testid": "watch-person" }, p.name);
}

export function render(root) {
  const msg = messageLine("watch-msg");
  const list = h("div", { class: "results", "aria-live": "polite", "data-testid": "watch-list" });
  const found = h("div", { class: "results", "aria-live": "polite", "data-testid": "watch-found" });
  const q = h("input", { type: "search", maxlength: 100, "data-testid": "watch-query", autocomplete: "off" });
  let offset = 0;
  let lastQuery = "";

  async function load(at = offset) {
    offset = at;
    try {
      const page = await call("GET", "/tenants", { query: { watchlist: true, limit: LIMIT, offset } });
      replace(list,
        pager({ total: page.total, offset, limit: LIMIT, onGo: load, testid: "watch-pager" }),
        dataTable({ columns: columns(true), rows: page.items, testid: "watch-table", rowTestid: "watch-row",
          empty: "watch.empty", rowAttrs: (p) => ({ "data-id": p.id }) }));
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  async function find() {
    const text = q.value.trim();
    if (!text) {
      msg.error("watch.queryEmpty");
      q.focus();
      return;
    }
    lastQuery = text;
    try {
      const page = await call("GET", "/tenants", { query: { q: text, limit: FOUND_LIMIT } });
      replace(found,
        page.total > page.items.length ? h("p", { class: "muted" },
          t("watch.foundMore", { n: page.items.length, total: page.total })) : null,
        dataTable({ columns: columns(false), rows: page.items, testid: "watch-found-table",
          rowTestid: "watch-found-row", empty: "watch.noneFound", rowAttrs: (p) => ({ "data-id": p.id }) }));
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  async function change(p, on) {
    const answer = await confirmAction({
      title: t(on ? "watch.addTitle" : "watch.removeTitle", { name: p.name }),
      message: t(on ? "watch.addMessage" : "watch.removeMessage", { name: p.name, id: p.id }),
      confirmKey: on ? "watch.add" : "watch.remove", reason: true, danger: !on,
    });
    if (!answer) return;
    q.focus(); // the row and its button are rebuilt: focus goes to the search
    try {
      await call(on ? "PUT" : "DELETE", `/tenants/${encodeURIComponent(p.id)}/watchlist`,
        { json: { reason: answer.reason } }); // the reason goes into the audit log
      msg.ok(on ? "watch.added" : "watch.removed", { name: p.name });
      await load(on ? offset : 0);
      if (lastQuery) await find();
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  function columns(onList) {
    return [
      { key: "name", label: t("watch.col.name"), cell: personLink },
      { key: "id", label: t("watch.col.id"), cell: (p) => h("code", {}, p.id) },
      { key: "permit", label: t("watch.col.permit"), cell: (p) => p.permit_number },
      { key: "room", label: t("watch.col.room"), cell: (p) => p.room || "" },
      { key: "status", label: t("watch.col.status"), cell: (p) => badge("status", p.status) },
      { key: "action", label: t("watch.col.action"), cell: (p) => {
        if (onList) {
          return button("watch.remove", () => change(p, false), { class: "danger", "data-testid": "watch-remove" });
        }
        if (p.watchlist) return h("span", { class: "badge warn", "data-testid": "watch-already" }, t("watch.already"));
        return button("watch.add", () => change(p, true), { "data-testid": "watch-add" });
      } },
    ];
  }

  const form = h("form", { class: "card-box", role: "search", "data-testid": "watch-form", onsubmit: (e) => {
    e.preventDefault();
    find();
  } },
  h("h3", {}, t("watch.addHeading")),
  h("div", { class: "grid" }, field("watch.query", q, { hint: "watch.queryHint", wide: true })),
  h("div", { class: "actions" }, h("button", { type: "submit", "data-testid": "watch-search" }, t("common.search"))),
  found);

  replace(root, h("h2", {}, t("watch.heading")), h("p", { class: "muted" }, t("watch.help")), msg.node,
    h("section", { class: "card-box" }, h("h3", {}, t("watch.listHeading")), list), form);
  load(0);
}
