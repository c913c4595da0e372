// The roster (administrators and police): search by name, id, permit number or room, filter by
// status, totals and page numbers; each tenant's validity ("expires in N days"), status, cards and
// face templates. Administrators also suspend / revoke / activate here (each with a reason) and
// start an enrolment; police only read.

import { h, replace } from "../dom.js";
import { call } from "../api.js";
import { codes, t, word } from "../i18n.js";
import { badge, compact, dataTable, field, messageLine, pager, select } from "../ui.js";
import { changeStatus, focusable, statusActions, validity } from "./tenant_form.js";

export const route = "tenants";
export const roles = ["admin", "police"];
export const nav = "nav.tenants";

const LIMIT = 20;

/** The town's page passes `opts`: extraFields / extraQuery() (its building filter), extraColumns (after the
 * name: the building). */
export function render(root, ctx, opts = {}) {
  const { extraFields = [], extraQuery = () => ({}), extraColumns = [] } = opts;
  const admin = ctx.me.role === "admin";
  const q = h("input", { type: "search", maxlength: 100, "data-testid": "tenants-q", value: ctx.query.get("q") || "" });
  const status = select([["", t("common.any")], ...codes("status").map((s) => [s, word("status", s)])],
    ctx.query.get("status") || "", { "data-testid": "tenants-status" });
  const msg = focusable(messageLine("tenants-msg"));
  const results = h("div", { class: "results", "data-testid": "tenants-results" });
  let offset = 0;
  let busy = false;
  let gone = false;

  async function load(at, after) {
    if (busy) return;
    busy = true;
    offset = at;
    if (!after) msg.info("common.loading");
    try {
      const page = await call("GET", "/tenants", { query: compact({ ...extraQuery(), q: q.value.trim(),
        status: status.value, limit: LIMIT, offset: at }) });
      if (gone) return;
      if (!after) msg.clear();
      replace(results,
        pager({ total: page.total, offset: at, limit: LIMIT, onGo: (o) => load(o), testid: "tenants-pager" }),
        table(page.items));
      if (after) after();
    } catch (err) {
      if (!err.handled && !gone) msg.error(err);
    } finally {
      busy = false;
    }
  }

  async function act(tenant, action) {
    try {
      const changed = await changeStatus(tenant, action);
      if (!changed) return;
      await load(offset, () => {
        msg.ok("tenants.done." + action, { name: changed.name });
        msg.node.focus();
      });
    } catch (err) {
      if (!err.handled) {
        msg.error(err);
        msg.node.focus();
      }
    }
  }

  function table(items) {
    const columns = [
      { key: "name", label: t("tenants.col.name"), cell: (p) => h("span", {},
        h("a", { href: "#/person/" + encodeURIComponent(p.id), "data-testid": "tenant-link" }, p.name),
        p.watchlist ? [" ", h("span", { class: "badge bad", "data-testid": "tenant-watch" }, t("tenants.watchBadge"))]
          : null) },
      ...extraColumns,
      { key: "id", label: t("tenants.col.id") },
      { key: "room", label: t("tenants.col.room") },
      { key: "permit_number", label: t("tenants.col.permit") },
      { key: "valid", label: t("tenants.col.validity"), cell: validity },
      { key: "status", label: t("tenants.col.status"), cell: (p) => badge("status", p.status) },
      { key: "cards", label: t("tenants.col.cards"), cell: (p) => t("tenants.cardCount", { n: p.cards.length }) },
      { key: "faces", label: t("tenants.col.faces"), cell: (p) => t("tenants.faceCount", { n: p.face_templates }) },
      admin ? { key: "actions", label: t("tenants.col.actions"), cell: (p) => h("div", { class: "row-actions",
        role: "group", "aria-label": t("tenants.actionsFor", { name: p.name }) },
      statusActions(p.status).map((a, i) => [i ? " " : null, h("button", { type: "button",
        class: a === "revoke" ? "danger" : "secondary",
        "data-testid": "tenant-" + a, onclick: () => act(p, a) }, t("tenants.action." + a))])) } : null,
    ].filter(Boolean);
    return dataTable({ columns, rows: items, testid: "tenants-table", rowTestid: "tenant-row", empty: "tenants.none",
      rowAttrs: (p) => ({ "data-id": p.id, "data-status": p.status }) });
  }

  const form = h("form", { class: "filters card-box", role: "search", "data-testid": "tenants-form",
    onsubmit: (e) => {
      e.preventDefault();
      load(0);
    } },
  h("div", { class: "grid" }, ...extraFields,
    field("tenants.search", q, { hint: "tenants.searchHint", wide: true }),
    field("tenants.status", status)),
  h("div", { class: "actions" },
    h("button", { type: "submit", "data-testid": "tenants-search" }, t("common.search")),
    admin ? h("a", { class: "button secondary", href: "#/enrol", "data-testid": "tenants-enrol" },
      t("tenants.enrolNew")) : null));
  status.addEventListener("change", () => load(0));

  replace(root, h("h2", {}, t("tenants.heading")), form, msg.node, results);
  const deleted = ctx.query.get("deleted");
  load(0, deleted ? () => msg.ok("tenants.deleted", { id: deleted }) : null);
  return () => {
    gone = true;
  };
}
