// The register: the gateway's tenants screen with each tenant's building, and a building filter.

import * as gatewayTenants from "/js/views/tenants.js";
import { buildingColumn, buildingField } from "../buildings.js";

export const route = "tenants";
export const roles = ["admin", "police"];
export const nav = "nav.tenants";

export function render(root, ctx) {
  const building = buildingField({ value: ctx.query.get("gateway_id") || "",
    onChange: (e) => e.target.form && e.target.form.requestSubmit() });
  return gatewayTenants.render(root, ctx, {
    extraFields: [building.node],
    extraQuery: () => ({ gateway_id: building.value() }),
    extraColumns: [buildingColumn()],
  });
}
