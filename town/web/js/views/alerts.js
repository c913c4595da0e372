// Alerts of every building: the gateway's alerts screen with a building filter and column.

import * as gatewayAlerts from "/js/views/alerts.js";
import { buildingColumn, buildingField } from "../buildings.js";

export const route = "alerts";
export const roles = ["police", "admin", "operator"];
export const nav = "nav.alerts";

export function render(root, ctx) {
  const building = buildingField({ value: ctx.query.get("gateway_id") || "" });
  return gatewayAlerts.render(root, ctx, {
    extraFields: [building.node],
    extraQuery: () => ({ gateway_id: building.value() }),
    extraColumns: [buildingColumn()],
    snapshot: false,
  });
}
