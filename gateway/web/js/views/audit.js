// Placeholder until this screen is written (issue 11).
import { h, replace } from "../dom.js";
import { t } from "../i18n.js";

export const route = "audit";
export const roles = ["auditor"];
export const nav = "nav.audit";

export function render(root) {
  replace(root, h("h2", {}, t("nav.audit")));
}
