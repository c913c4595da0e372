// Placeholder until this screen is written (issue 11).
import { h, replace } from "../dom.js";
import { t } from "../i18n.js";

export const route = "users";
export const roles = ["admin"];
export const nav = "nav.users";

export function render(root) {
  replace(root, h("h2", {}, t("nav.users")));
}
