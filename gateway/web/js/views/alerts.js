// Alerts as police, administrators and operators read them: newest first, filtered by kind, state,
// door, acknowledged and time (presets), with totals and page numbers; kind, state and severity
// in words, snapshots, and an acknowledge button that says who acknowledged and when.

import { h, replace } from "../dom.js";
import { call } from "../api.js";
import { codes, formatTime, has, t, word, zoneLabel } from "../i18n.js";
import { snapshotButton } from "../entry_list.js";
import { button, compact, dataTable, field, pagedSearch, select, timeRange } from "../ui.js";

export const route = "alerts";
export const roles = ["police", "admin", "operator"];
export const nav = "nav.alerts";

const SEVERITY_CLASS = { critical: "bad", warning: "warn", info: "" };

function alertFacts(a) {
  return [
    ["alerts.col.time", `${formatTime(a.ts)} (${zoneLabel()})`],
    ["alerts.col.kind", word("alert", a.kind)],
    ["alerts.col.severity", word("severity", a.severity)],
    ["alerts.col.state", word("alert.state", a.state)],
    ["alerts.col.where", where(a)],
  ];
}

function where(a) {
  return [a.door ? t("alerts.door", { door: a.door }) : null,
    a.camera ? t("alerts.camera", { camera: a.camera }) : null].filter(Boolean).join(" · ");
}

/** The alert's details (an object from the door or camera) as "key: value" text. */
function detailsText(details) {
  if (!details || typeof details !== "object") return "";
  return Object.entries(details).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => t("alerts.detailPair", { key: has("alerts.detail." + k) ? t("alerts.detail." + k) : k,
      value: typeof v === "object" ? JSON.stringify(v) : v })).join(t("alerts.detailSep"));
}

/** The town's page passes `opts`: extraFields / extraQuery() (its building filter), extraColumns (after the
 * time), snapshot: false (it keeps no pictures). */
export function render(root, ctx, opts = {}) {
  const { extraFields = [], extraQuery = () => ({}), extraColumns = [], snapshot = true } = opts;
  const canAck = ["admin", "police", "operator"].includes(ctx.me.role);
  const kind = select([["", t("common.any")], ...codes("alert").map((k) => [k, word("alert", k)])], "",
    { "data-testid": "filter-kind" });
  const state = select([["", t("common.any")], ["raised", word("alert.state", "raised")],
    ["cleared", word("alert.state", "cleared")]], "", { "data-testid": "filter-state" });
  const acked = select([["", t("common.any")], ["false", t("alerts.unacked")], ["true", t("alerts.acked")]], "",
    { "data-testid": "filter-acked" });
  const door = h("input", { maxlength: 64, "data-testid": "filter-door", value: ctx.query.get("door") || "" });
  const range = timeRange({ onPreset: () => screen.search(0), testid: "alerts-range" });

  async function acknowledge(a, cell) {
    try {
      const r = await call("POST", `/alerts/${encodeURIComponent(a.id)}/ack`);
      const done = ackedText(r);
      replace(cell, done);
      done.tabIndex = -1;
      done.focus(); // the button is gone: focus stays on the row it acknowledged
      screen.msg.ok("alerts.ackDone", { kind: word("alert", a.kind), who: r.acknowledged_by });
    } catch (err) {
      if (!err.handled) screen.msg.error(err);
    }
  }

  function ackedText(a) {
    return h("span", { "data-testid": "alert-acked" },
      t("alerts.ackedBy", { who: a.acknowledged_by, time: formatTime(a.acknowledged_at) }));
  }

  function ackCell(a) {
    if (a.acknowledged_at) return ackedText(a);
    if (!canAck) return h("span", { class: "muted" }, t("alerts.unacked"));
    const cell = h("span", {});
    replace(cell, button("alerts.ack", () => acknowledge(a, cell), { "data-testid": "alert-ack" }));
    return cell;
  }

  function table(items) {
    const columns = [
      { key: "ts", label: t("alerts.col.time"), cell: (a) => formatTime(a.ts), cls: "nowrap" },
      ...extraColumns,
      { key: "kind", label: t("alerts.col.kind"), cell: (a) => h("span", { "data-testid": "alert-kind" },
        word("alert", a.kind)) },
      { key: "severity", label: t("alerts.col.severity"), cell: (a) => h("span", {
        class: "badge " + (SEVERITY_CLASS[a.severity] ?? ""), "data-testid": "alert-severity" },
      word("severity", a.severity)) },
      { key: "state", label: t("alerts.col.state"), cell: (a) => h("span", {
        class: "badge " + (a.state === "raised" ? "warn" : "good"), "data-testid": "alert-state" },
      word("alert.state", a.state)) },
      { key: "where", label: t("alerts.col.where"), cell: where },
      { key: "person", label: t("alerts.col.person"), cell: (a) => (a.tenant_id && ctx.me.role !== "operator"
        ? h("a", { href: "#/person/" + encodeURIComponent(a.tenant_id), "data-testid": "alert-person" }, a.tenant_id)
        : a.tenant_id || "") },
      { key: "details", label: t("alerts.col.details"), cell: (a) => detailsText(a.details) },
      snapshot ? { key: "snapshot", label: t("alerts.col.snapshot"),
        cell: (a) => snapshotButton("alerts", a, alertFacts) } : null,
      { key: "ack", label: t("alerts.col.ack"), cell: ackCell },
    ].filter(Boolean);
    return dataTable({ columns, rows: items, testid: "alerts-table", rowTestid: "alert-row", empty: "alerts.none",
      rowAttrs: (a) => ({ "data-id": a.id, "data-kind": a.kind, "data-state": a.state,
        "data-acked": String(Boolean(a.acknowledged_at)) }) });
  }

  const screen = pagedSearch({
    path: "/alerts", testid: "alerts", table,
    filters: () => compact({ ...extraQuery(), kind: kind.value, state: state.value, acknowledged: acked.value,
      door: door.value.trim(), ...range.query() }),
  });
  const form = screen.form([...extraFields, field("alerts.col.kind", kind), field("alerts.col.state", state),
    field("alerts.ackFilter", acked), field("alerts.doorFilter", door)], range);
  replace(root, h("h2", {}, t("alerts.heading")), form, screen.msg.node, screen.results);
  screen.search(0);
}
