// Enrolment at the town: the gateway's one-step enrolment (fields, cards, photos: all or nothing) with
// the tenant's building first. The register pushes the tenant to that building's gateway.

import { t } from "/js/i18n.js";
import * as gatewayEnrol from "/js/views/enrol.js";
import { buildingField, forgetBuildings } from "../buildings.js";

export const route = "enrol";
export const roles = ["admin"];
export const nav = "nav.enrol";

export function render(root, ctx) {
  const building = buildingField({ testid: "enrol-building", any: false, labelKey: "tenants.field.gateway_id",
    value: ctx.query.get("gateway_id") || "", hint: "town.enrolBuildingHint" });
  const extra = {
    node: building.node,
    inputs: { gateway_id: building.select },
    read() {
      const value = building.value();
      if (value) return { data: { gateway_id: value }, problems: [] };
      return { data: {}, problems: [{ field: "gateway_id", input: building.select,
        text: t("tenants.problem.required", { field: t("tenants.field.gateway_id") }) }] };
    },
  };
  const cleanup = gatewayEnrol.render(root, ctx, { extra });
  return () => {
    forgetBuildings();
    if (cleanup) cleanup();
  };
}
