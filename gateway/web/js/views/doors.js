// Placeholder until this screen is written (issue 11).
import { h, replace } from "../dom.js";
import { t } from "../i18n.js";

export const route = "doors";
export const roles = ["operator","admin","police"];
export const nav = "nav.doors";

export function render(root) {
  replace(root, h("h2", {}, t("nav.doors")));
}
