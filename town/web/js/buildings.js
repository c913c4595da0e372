// The town's buildings (its gateways, GET /gateways) as a select and a table column, for the views
// that filter or show by building.

import { h } from "/js/dom.js";
import { call } from "/js/api.js";
import { t } from "/js/i18n.js";
import { field } from "/js/ui.js";

let known = null;

/** The gateway ids the town knows, asked once per page load. */
export function buildings() {
  if (!known) known = call("GET", "/gateways").then((list) => list.map((g) => g.gateway_id)).catch(() => []);
  return known;
}

/** Forget the list (after enrolling at a building the town did not know yet). */
export function forgetBuildings() {
  known = null;
}

/**
 * A building select: {node (a labelled field), select, value()}; `any`: first option "any building";
 * `onChange`: called when the choice changes; `value`: the building chosen at first.
 */
export function buildingField({ testid = "filter-building", any = true, value = "", onChange = null,
  labelKey = "town.building", hint = null } = {}) {
  const select = h("select", { "data-testid": testid, required: !any });
  const fill = (ids) => {
    select.replaceChildren(
      any ? h("option", { value: "" }, t("town.anyBuilding")) : h("option", { value: "" }, t("town.chooseBuilding")),
      ...ids.map((id) => h("option", { value: id, selected: id === value }, id)));
    select.dataset.loaded = "true";
  };
  fill(value ? [value] : []);
  select.dataset.loaded = "false";
  buildings().then((ids) => fill(value && !ids.includes(value) ? [value, ...ids] : ids));
  if (onChange) select.addEventListener("change", onChange);
  return { node: field(labelKey, select, { hint }), select, value: () => select.value };
}

/** The building column of a table (after the time, or the name). */
export function buildingColumn() {
  return { key: "gateway_id", label: t("town.col.building"), cls: "nowrap",
    cell: (row) => h("span", { "data-testid": "building" }, row.gateway_id) };
}
