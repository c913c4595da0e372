// Placeholder until this screen is written (issue 11).
import { h, replace } from "../dom.js";
import { t } from "../i18n.js";

export const route = "enrol";
export const roles = ["admin"];
export const nav = "nav.enrol";

export function render(root) {
  replace(root, h("h2", {}, t("nav.enrol")));
}
