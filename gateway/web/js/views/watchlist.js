// Placeholder until this screen is written (issue 11).
import { h, replace } from "../dom.js";
import { t } from "../i18n.js";

export const route = "watchlist";
export const roles = ["police"];
export const nav = "nav.watchlist";

export function render(root) {
  replace(root, h("h2", {}, t("nav.watchlist")));
}
