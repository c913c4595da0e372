// The auditor's home: the audit log, newest first, filtered by account, action and time (presets),
// with totals and page numbers; each row with its local time, account, action in words, route,
// rows returned, and its details read out (filters in words, reason, door, person, account),
// and CSV / Excel exports of the same rows.

import { h, replace } from "../dom.js";
import { formatTime, has, t, word } from "../i18n.js";
import { compact, dataTable, field, pagedSearch, select, timeRange } from "../ui.js";

export const route = "audit";
export const roles = ["auditor"];
export const nav = "nav.audit";


// The actions the gateway audits, in the catalogue's order (codes("audit") cannot list them:
// each action has a dot in it).
export const ACTIONS = [
  "tenant.create", "tenant.enrol", "tenant.update", "tenant.suspend", "tenant.revoke", "tenant.activate",
  "tenant.delete", "tenants.search", "tenants.read", "card.bind", "card.unbind", "face.enrol", "face.replace",
  "face.delete", "watchlist.set", "watchlist.clear", "entries.search", "entries.export", "entries.per_hour",
  "entries.snapshot", "alerts.search", "alerts.snapshot", "alert.ack", "door.open", "user.create", "user.revoke",
  "user.rotate", "audit.export", "retention.prune",
];

// Paging details say nothing about what was looked at: left out of the summary.
const QUIET = new Set(["cursor", "limit", "offset", "with_total"]);
const TIMES = new Set(["since", "until", "entries_before"]);

/** A filter value in words: times in the gateway's zone, codes as words. */
function filterValue(key, value) {
  if (TIMES.has(key)) return formatTime(value);
  if (typeof value === "boolean") return t(value ? "common.yes" : "common.no");
  const family = { method: "method", decision: "decision", reason: "reason", kind: "alert", state: "alert.state",
    status: "status", role: "role", action: "audit" }[key];
  if (family) return word(family, value);
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function label(key) {
  return has("auditlog.key." + key) ? t("auditlog.key." + key) : key;
}

/** An audit row's details as short readable lines ("条件：人员 = 李娜；门 = main", "原因：…"). */
export function detailLines(details) {
  if (!details || typeof details !== "object") return [];
  const lines = [];
  for (const [key, value] of Object.entries(details)) {
    if (value === null || value === undefined || value === "") continue;
    if (key === "filters" && typeof value === "object") {
      const parts = Object.entries(value).filter(([k, v]) => !QUIET.has(k) && v !== null && v !== "")
        .map(([k, v]) => `${label(k)} = ${filterValue(k, v)}`);
      const list = parts.length ? parts.join(t("auditlog.sep")) : t("auditlog.noFilters");
      lines.push(t("auditlog.filters", { list }));
    } else if (key === "reason") {
      lines.push(t("auditlog.reason", { reason: value }));
    } else if (key === "state" && typeof value === "string" && has("auditlog.state." + value)) {
      lines.push(t("auditlog.state." + value));
    } else if (key === "completed" || key === "address") {
      continue; // said by "state"; the address is in the export and in the raw row
    } else if (key === "format") {
      lines.push(t("auditlog.format", { format: String(value).toUpperCase() }));
    } else {
      lines.push(t("auditlog.pair", { key: label(key), value: filterValue(key, value) }));
    }
  }
  return lines;
}

function detailsCell(a) {
  const lines = detailLines(a.details);
  if (!lines.length) return "";
  return h("div", { class: "details", "data-testid": "audit-details", title: JSON.stringify(a.details) },
    lines.map((line) => h("div", {}, line)));
}

export function render(root, ctx) {
  const actor = h("input", { maxlength: 64, spellcheck: "false", autocomplete: "off", "data-testid": "filter-actor",
    value: ctx.query.get("actor") || "" });
  const action = select([["", t("common.any")], ...ACTIONS.map((a) => [a, word("audit", a)])], "",
    { "data-testid": "filter-action" });
  const range = timeRange({ onPreset: () => screen.search(0), testid: "audit-range" });

  function table(items) {
    const columns = [
      { key: "ts", label: t("auditlog.col.time"), cell: (a) => formatTime(a.ts), cls: "nowrap" },
      { key: "actor", label: t("auditlog.col.actor"),
        cell: (a) => h("span", { "data-testid": "audit-actor" }, a.actor), cls: "nowrap" },
      { key: "action", label: t("auditlog.col.action"), cell: (a) => h("span", { "data-testid": "audit-action",
        "data-code": a.action }, word("audit", a.action)) },
      { key: "route", label: t("auditlog.col.route"),
        cell: (a) => (a.route ? h("code", {}, a.route) : "") },
      { key: "rows", label: t("auditlog.col.rows"), cell: (a) => (a.rows === null || a.rows === undefined ? ""
        : String(a.rows)) },
      { key: "details", label: t("auditlog.col.details"), cell: detailsCell },
    ];
    return dataTable({ columns, rows: items, testid: "audit-table", rowTestid: "audit-row", empty: "auditlog.none",
      rowAttrs: (a) => ({ "data-id": a.id, "data-action": a.action, "data-actor": a.actor }) });
  }

  const screen = pagedSearch({
    path: "/audit", testid: "audit", exportPath: "/audit", table,
    filters: () => compact({ actor: actor.value.trim(), action: action.value, ...range.query() }),
  });
  const form = screen.form([field("auditlog.col.actor", actor, { hint: "auditlog.actorHint" }),
    field("auditlog.col.action", action)], range);
  replace(root, h("h2", {}, t("auditlog.heading")), form, screen.exports, screen.msg.node, screen.results);
  screen.search(0);
}
