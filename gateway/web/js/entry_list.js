// Entry rows as police and administrators read them: local time, door, the person by name and
// room (a link to their page), method, decision and reason in words, card, snapshot.
// Used by the entries screen and a person's page (and the town's search, with a building column).

import { h, replace } from "./dom.js";
import { apiUrl } from "./api.js";
import { formatTime, t, word, zoneLabel } from "./i18n.js";
import { badge, button, dataTable } from "./ui.js";

/** A card as read: a 26-bit read carries 24 bits of the number, so it is shown as such. */
export function cardText(e) {
  if (e.card_number === null || e.card_number === undefined) return "";
  if (e.matched_card !== undefined && e.matched_card !== null && e.matched_card !== e.card_number) {
    return t("entries.cardMatched", { card: e.matched_card, read: e.card_number, bits: e.card_bits });
  }
  return e.card_bits === 26 ? t("entries.card26", { read: e.card_number }) : String(e.card_number);
}

export function personCell(e) {
  if (!e.tenant_id) return h("span", { class: "muted" }, t("entries.nobody"));
  const label = e.tenant_name ? `${e.tenant_name}` : e.tenant_id;
  return h("span", { class: "person" },
    h("a", { href: "#/person/" + encodeURIComponent(e.tenant_id), "data-testid": "entry-person" }, label),
    e.room ? h("span", { class: "muted" }, " · " + t("entries.room", { room: e.room })) : null,
    e.tenant_name ? null : h("span", { class: "muted" }, " " + t("entries.unknownPerson")));
}

export function snapshotButton(kind, item, describe) {
  if (!item.snapshot) return h("span", { class: "muted" }, t("snapshot.none"));
  const src = apiUrl(`/${kind}/${encodeURIComponent(item.id)}/snapshot`);
  return h("button", { type: "button", class: "thumb", "data-testid": "snapshot-open",
    "aria-label": t("snapshot.open"), onclick: () => showSnapshot(src, describe(item)) },
  h("img", { src, alt: t("snapshot.alt"), loading: "lazy", width: 64, height: 48 }));
}

/** A dialog with the picture and what it shows (time, door, decision, person). */
export function showSnapshot(src, lines) {
  const dialog = h("dialog", { class: "snapshot", "data-testid": "snapshot-dialog", "aria-label": t("snapshot.heading") });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  replace(dialog,
    h("h2", {}, t("snapshot.heading")),
    h("img", { src, alt: t("snapshot.alt") }),
    h("dl", { class: "facts", "data-testid": "snapshot-facts" }, lines.map(([k, v]) => [h("dt", {}, t(k)), h("dd", {}, v)])),
    h("div", { class: "actions" }, button("common.close", close, { "data-testid": "snapshot-close" })));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

export function entryFacts(e) {
  return [
    ["entries.col.time", `${formatTime(e.ts)} (${zoneLabel()})`],
    ["entries.col.door", e.door],
    ["entries.col.person", e.tenant_name ? `${e.tenant_name} (${e.tenant_id})` : e.tenant_id || t("entries.nobody")],
    ["entries.col.decision", `${word("decision", e.decision)} · ${word("reason", e.reason)}`],
    ["entries.col.method", word("method", e.method)],
  ];
}

/** The entries table; `person: false` leaves the person column out (on that person's own page);
 * `extraColumns` go after the time (the town's building); `snapshot: false` where none is kept (the town). */
export function entryTable(items, { person = true, extraColumns = [], snapshot = true } = {}) {
  const columns = [
    { key: "ts", label: t("entries.col.time"), cell: (e) => formatTime(e.ts), cls: "nowrap" },
    ...extraColumns,
    { key: "door", label: t("entries.col.door") },
    person ? { key: "person", label: t("entries.col.person"), cell: personCell } : null,
    { key: "method", label: t("entries.col.method"), cell: (e) => word("method", e.method) },
    { key: "decision", label: t("entries.col.decision"), cell: (e) => badge("decision", e.decision) },
    { key: "reason", label: t("entries.col.reason"), cell: (e) => word("reason", e.reason) },
    { key: "card", label: t("entries.col.card"), cell: cardText },
    snapshot ? { key: "snapshot", label: t("entries.col.snapshot"),
      cell: (e) => snapshotButton("entries", e, entryFacts) } : null,
  ].filter(Boolean);
  return dataTable({ columns, rows: items, testid: "entries-table", rowTestid: "entry-row", empty: "entries.none",
    rowAttrs: (e) => ({ "data-id": e.id, "data-tenant": e.tenant_id || "", "data-decision": e.decision,
      "data-reason": e.reason }) });
}
