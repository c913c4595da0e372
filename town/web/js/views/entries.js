// Entries of every building: the gateway's entries screen with a building filter, an exact permit
// number, and a building column; no snapshots at the town (they stay on the buildings' gateways).

import { h } from "/js/dom.js";
import { field } from "/js/ui.js";
import * as gatewayEntries from "/js/views/entries.js";
import { buildingColumn, buildingField } from "../buildings.js";

export const route = "entries";
export const roles = ["police", "admin"];
export const nav = "nav.entries";

export function render(root, ctx) {
  const building = buildingField({ value: ctx.query.get("gateway_id") || "" });
  const permit = h("input", { type: "search", maxlength: 64, "data-testid": "filter-permit", autocomplete: "off",
    spellcheck: "false", value: ctx.query.get("permit") || "" });
  return gatewayEntries.render(root, ctx, {
    extraFields: [building.node, field("town.permit", permit, { hint: "town.permitHint" })],
    extraQuery: () => ({ gateway_id: building.value(), permit: permit.value.trim() }),
    table: { extraColumns: [buildingColumn()], snapshot: false },
    perHour: false,
  });
}
