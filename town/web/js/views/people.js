// Where does this permit holder live, and where were they seen (police, administrators): one question,
// GET /people/{permit}: their building and room, and their entries at every building in the last days,
// newest first (entries naming them and reads of their cards). The town audits each look-up.

import { h, replace } from "/js/dom.js";
import { call } from "/js/api.js";
import { formatTime, t, zoneLabel } from "/js/i18n.js";
import { entryTable } from "/js/entry_list.js";
import { badge, field, messageLine, select } from "/js/ui.js";
import { validity } from "/js/views/tenant_form.js";
import { buildingColumn } from "../buildings.js";

export const route = "people";
export const roles = ["police", "admin"];
export const nav = "town.nav.people";

const DAYS = [7, 30, 90, 366];

export function render(root, ctx) {
  const permit = h("input", { type: "search", maxlength: 64, required: true, autocomplete: "off", spellcheck: "false",
    "data-testid": "people-permit", value: ctx.params[0] || "" });
  const chosen = String(ctx.query.get("days") || 30);
  const days = select(DAYS.map((d) => [String(d), t("town.people.lastDays", { n: d })]), chosen,
    { "data-testid": "people-days" });
  const msg = messageLine("people-msg");
  const result = h("div", { class: "results", "aria-live": "polite", "data-testid": "people-result" });
  let gone = false;

  async function look() {
    const value = permit.value.trim();
    if (!value) {
      msg.error("town.people.empty");
      permit.focus();
      return;
    }
    msg.info("common.loading");
    replace(result);
    try {
      const found = await call("GET", `/people/${encodeURIComponent(value)}`, { query: { days: days.value } });
      if (gone) return;
      msg.clear();
      show(found);
    } catch (err) {
      if (gone || err.handled) return;
      if (err.status === 404) msg.error("town.people.nobody", { permit: value });
      else msg.error(err);
    }
  }

  function show(found) {
    const p = found.tenant;
    const row = (key, label, ...value) => [h("dt", {}, label), h("dd", { "data-testid": "people-" + key }, ...value)];
    const seen = new Map();
    for (const e of found.entries) seen.set(e.gateway_id, (seen.get(e.gateway_id) || 0) + 1);
    replace(result,
      h("section", { class: "card-box", "data-testid": "people-home", "aria-labelledby": "people-home-h" },
        h("h3", { id: "people-home-h" }, t("town.people.home")),
        h("dl", { class: "facts" },
          row("name", t("tenants.field.name"), h("a", { href: "#/person/" + encodeURIComponent(p.id),
            "data-testid": "people-person" }, p.name)),
          row("building", t("tenants.field.gateway_id"), h("strong", {}, p.gateway_id)),
          row("room", t("tenants.field.room"), p.room || h("span", { class: "muted" }, "—")),
          row("permit", t("tenants.field.permit_number"), p.permit_number),
          row("status", t("tenants.col.status"), badge("status", p.status)),
          row("valid", t("tenants.col.validity"), validity(p)),
          row("cards", t("person.cards"), p.cards.length ? p.cards.join(", ") : h("span", { class: "muted" }, "—")))),
      h("section", { class: "card-box", "data-testid": "people-seen", "aria-labelledby": "people-seen-h" },
        h("h3", { id: "people-seen-h" }, t("town.people.seen", { n: days.value })),
        h("p", { class: "muted" }, t("town.people.range", { since: formatTime(found.since), zone: zoneLabel() })),
        seen.size ? h("p", { "data-testid": "people-buildings" }, t("town.people.buildings"), " ",
          [...seen].map(([gw, n], i) => [i ? " · " : null, h("span", { class: "badge", "data-building": gw },
            t("town.people.buildingCount", { id: gw, n }))])) : null,
        found.truncated ? h("p", { class: "msg info" }, t("town.people.truncated", { n: found.entries.length })) : null,
        entryTable(found.entries, { person: false, extraColumns: [buildingColumn()], snapshot: false })));
  }

  const form = h("form", { class: "filters card-box", role: "search", "data-testid": "people-form", onsubmit: (e) => {
    e.preventDefault();
    // The permit goes into the address (a look-up can be bookmarked or reloaded); the same one again: look now.
    const target = `#/people/${encodeURIComponent(permit.value.trim())}?days=${days.value}`;
    if (location.hash === target || !permit.value.trim()) look();
    else location.hash = target;
  } },
  h("div", { class: "grid" }, field("town.permit", permit, { hint: "town.people.hint", wide: true }),
    field("town.people.days", days)),
  h("div", { class: "actions" }, h("button", { type: "submit", "data-testid": "people-search" }, t("common.search"))));
  days.addEventListener("change", () => look());

  replace(root, h("h2", {}, t("town.people.heading")), h("p", { class: "muted" }, t("town.people.help")), form,
    msg.node, result);
  if (permit.value) look();
  return () => {
    gone = true;
  };
}
