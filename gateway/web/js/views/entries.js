// Police home (and the administrator's): the entry log, searched by person (name, permit or id),
// door, method, decision, reason and time (presets), with totals, page numbers, snapshots,
// the day's entries per hour, and exports a clerk can open.

import { h, replace } from "../dom.js";
import { call } from "../api.js";
import { codes, currentLang, t, today, word } from "../i18n.js";
import { entryTable } from "../entry_list.js";
import { compact, field, pagedSearch, select, timeRange } from "../ui.js";

export const route = "entries";
export const roles = ["police", "admin"];
export const nav = "nav.entries";

/**
 * The screen; the town's page passes `opts`: extraFields (field nodes before the others), extraQuery()
 * (their query values), table: {extraColumns, snapshot} for entryTable, perHour: false (no chart).
 */
export function render(root, ctx, opts = {}) {
  const { extraFields = [], extraQuery = () => ({}), table = {}, perHour: chart = true } = opts;
  const personInput = h("input", { type: "search", maxlength: 64, "data-testid": "filter-person",
    value: ctx.query.get("person") || "" });
  const doorInput = h("input", { maxlength: 64, "data-testid": "filter-door" });
  const method = select([["", t("common.any")], ...codes("method").map((m) => [m, word("method", m)])], "",
    { "data-testid": "filter-method" });
  const decision = select([["", t("common.any")], ["granted", word("decision", "granted")],
    ["denied", word("decision", "denied")]], "", { "data-testid": "filter-decision" });
  const reason = select([["", t("common.any")], ...codes("reason").map((r) => [r, word("reason", r)])], "",
    { "data-testid": "filter-reason" });
  const range = timeRange({ onPreset: () => screen.search(0), testid: "entries-range" });
  const screen = pagedSearch({
    path: "/entries", testid: "entries", exportPath: "/entries", table: (items) => entryTable(items, table),
    filters: () => compact({ ...extraQuery(), person: personInput.value.trim(), door: doorInput.value.trim(),
      method: method.value, decision: decision.value, reason: reason.value, ...range.query() }),
    onPage: (page, f, msg) => {
      if (page.hint === "no_person") msg.error("entries.noPerson", { text: f.person || f.permit }); // the town's permit
      else if (page.hint) msg.info("hint." + page.hint); // e.g. many_people: only the first ones searched
    },
  });
  const form = screen.form([...extraFields,
    field("entries.person", personInput, { hint: "entries.personHint", wide: true }),
    field("entries.col.door", doorInput), field("entries.col.method", method),
    field("entries.col.decision", decision), field("entries.col.reason", reason)], range);
  replace(root, h("h2", {}, t("entries.heading")), form, screen.exports, screen.msg.node, screen.results,
    chart ? perHour() : null);
  screen.search(0);
}

/** Today's entries per hour in the gateway's zone, as bars (no canvas: readable at any width). */
function perHour() {
  const box = h("section", { class: "card-box per-hour", "data-testid": "per-hour" },
    h("h3", {}, t("entries.perHour", { day: today() })));
  call("GET", "/entries/per-hour", { query: { day: today() } }).then((r) => {
    const top = Math.max(1, ...r.counts);
    box.append(h("ol", { class: "bars", "aria-label": t("entries.perHour", { day: r.day }) },
      r.counts.map((n, hour) => h("li", { title: t("entries.perHourBar", { hour, n }) },
        h("span", { class: "bar", style: null, "data-n": n, "data-h": Math.round((n / top) * 100) }),
        h("span", { class: "hour" }, String(hour))))));
    for (const bar of box.querySelectorAll(".bar")) bar.style.height = bar.dataset.h + "%";
  }).catch(() => box.append(h("p", { class: "muted" }, t("entries.perHourFailed"))));
  box.lang = currentLang();
  return box;
}
