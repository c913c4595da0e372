// Placeholder until this screen is written (issue 11).
import { h, replace } from "../dom.js";
import { t } from "../i18n.js";

export const route = "alerts";
export const roles = ["police","admin","operator"];
export const nav = "nav.alerts";

export function render(root) {
  replace(root, h("h2", {}, t("nav.alerts")));
}
