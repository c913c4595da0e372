// A person of the register: the gateway's person page (details, edit, cards, faces, status, entries),
// with their building, and their entries at every building with a building column.

import { h } from "/js/dom.js";
import { t } from "/js/i18n.js";
import * as gatewayPerson from "/js/views/person.js";
import { buildingColumn } from "../buildings.js";

export const route = "person";
export const roles = ["admin", "police"];
export const nav = null;

export function render(root, ctx) {
  return gatewayPerson.render(root, ctx, {
    facts: (tenant) => [
      ["building", t("tenants.field.gateway_id"), tenant.gateway_id],
      ["whereabouts", t("town.people.heading"), h("a", { href: "#/people/" + encodeURIComponent(tenant.permit_number),
        "data-testid": "person-whereabouts" }, t("town.people.link"))],
    ],
    entryTable: { extraColumns: [buildingColumn()], snapshot: false },
  });
}
