// Accounts and their API tokens (administrators): the list with role, dates and status; a new
// account's token, and a rotated one, shown once in a box to copy; revoke after a warning.

import { h, replace } from "../dom.js";
import { call } from "../api.js";
import { formatTime, t, word } from "../i18n.js";
import { button, confirmAction, dataTable, field, messageLine, select } from "../ui.js";

export const route = "users";
export const roles = ["admin"];
export const nav = "nav.users";

const ROLES = ["police", "operator", "auditor", "admin"];

/** Copy text: the clipboard API where the page may use it (https, localhost), else the selection. */
async function copyText(input) {
  input.focus();
  input.select();
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(input.value);
      return true;
    }
  } catch (e) { /* fall back to the selection */ }
  try {
    return document.execCommand("copy");
  } catch (e) {
    return false;
  }
}

/** The box a new token appears in, once: copy it, then close the box (the token is gone then). */
function tokenBox(result, kindKey, onClose) {
  const value = h("textarea", { rows: 2, readonly: "", value: result.token, spellcheck: "false", autocomplete: "off",
    class: "token-value", "aria-describedby": "token-warning", "data-testid": "token-value" });
  const copied = messageLine("token-copied");
  const box = h("section", { class: "card-box token-box", "data-testid": "token-box", "data-user": result.name,
    "aria-labelledby": "token-box-h" },
  h("h3", { id: "token-box-h", tabindex: "-1" }, t(kindKey, { name: result.name, role: word("role", result.role) })),
  h("p", { class: "msg error", id: "token-warning", "data-testid": "token-warning" }, t("users.tokenOnce")),
  field("users.token", value),
  h("div", { class: "actions" },
    button("users.copy", async () => {
      if (await copyText(value)) copied.ok("users.copied");
      else copied.info("users.copyByHand");
    }, { "data-testid": "token-copy" }),
    button("users.tokenDone", onClose, { class: "secondary", "data-testid": "token-done" })),
  copied.node);
  return { box, focus: () => {
    value.focus();
    value.select();
  } };
}

export function render(root, ctx) {
  const msg = messageLine("users-msg");
  const tokenSlot = h("div", { "data-testid": "token-slot" });
  const list = h("div", { class: "results", "aria-live": "polite" });
  const name = h("input", { maxlength: 64, required: true, pattern: "[A-Za-z0-9_.\\-]+", spellcheck: "false",
    autocomplete: "off", "data-testid": "user-name" });
  const role = select(ROLES.map((r) => [r, word("role", r)]), "police", { "data-testid": "user-role" });

  function showToken(result, kindKey) {
    const { box, focus } = tokenBox(result, kindKey, () => {
      replace(tokenSlot);
      name.focus();
    });
    replace(tokenSlot, box);
    focus();
  }

  async function load() {
    try {
      const users = await call("GET", "/users");
      replace(list, table(users));
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  async function revoke(u) {
    const ok = await confirmAction({ title: t("users.revokeTitle", { name: u.name }),
      message: t("users.revokeMessage", { name: u.name, role: word("role", u.role) }), confirmKey: "users.revoke",
      danger: true });
    if (!ok) return;
    try {
      await call("DELETE", `/users/${encodeURIComponent(u.name)}`);
      replace(tokenSlot);
      msg.ok("users.revoked", { name: u.name });
      await load();
      name.focus(); // the row's buttons are gone
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  async function rotate(u) {
    const ok = await confirmAction({ title: t("users.rotateTitle", { name: u.name }),
      message: t("users.rotateMessage", { name: u.name }), confirmKey: "users.rotate" });
    if (!ok) return;
    try {
      const result = await call("POST", `/users/${encodeURIComponent(u.name)}/rotate`);
      msg.ok("users.rotated", { name: u.name });
      showToken(result, "users.rotatedToken");
      await load();
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  function statusCell(u) {
    if (u.revoked_at) {
      return h("span", { class: "badge bad", "data-testid": "user-status", "data-status": "revoked" },
        t("users.status.revoked", { time: formatTime(u.revoked_at) }));
    }
    return h("span", { class: "badge good", "data-testid": "user-status", "data-status": "active" },
      t("users.status.active"));
  }

  function actionsCell(u) {
    if (u.revoked_at) return "";
    if (u.name === ctx.me.name) return h("span", { class: "muted" }, t("users.you"));
    return h("span", { class: "actions tight" },
      button("users.rotate", () => rotate(u), { class: "secondary", "data-testid": "user-rotate" }),
      button("users.revoke", () => revoke(u), { class: "danger", "data-testid": "user-revoke" }));
  }

  function table(users) {
    const columns = [
      { key: "name", label: t("users.col.name"), cell: (u) => h("span", { "data-testid": "user-name-cell" }, u.name) },
      { key: "role", label: t("users.col.role"), cell: (u) => word("role", u.role) },
      { key: "created", label: t("users.col.created"), cell: (u) => formatTime(u.created_at), cls: "nowrap" },
      { key: "rotated", label: t("users.col.rotated"), cell: (u) => (u.rotated_at ? formatTime(u.rotated_at)
        : h("span", { class: "muted" }, t("users.never"))), cls: "nowrap" },
      { key: "status", label: t("users.col.status"), cell: statusCell },
      { key: "actions", label: t("users.col.actions"), cell: actionsCell },
    ];
    return dataTable({ columns, rows: users, testid: "users-table", rowTestid: "user-row", empty: "users.none",
      rowAttrs: (u) => ({ "data-user": u.name, "data-role": u.role,
        "data-status": u.revoked_at ? "revoked" : "active" }) });
  }

  const form = h("form", { class: "card-box", "data-testid": "user-form", onsubmit: async (e) => {
    e.preventDefault();
    const wanted = name.value.trim();
    if (!wanted || !name.checkValidity()) {
      msg.error("users.nameInvalid");
      name.focus();
      return;
    }
    try {
      const result = await call("POST", "/users", { json: { name: wanted, role: role.value } });
      name.value = "";
      msg.ok("users.created", { name: result.name, role: word("role", result.role) });
      showToken(result, "users.newToken");
      await load();
    } catch (err) {
      if (err.handled) return;
      msg.error(err.status === 409 ? "users.exists" : err, { name: wanted });
      name.focus();
    }
  } },
  h("h3", {}, t("users.createHeading")),
  h("div", { class: "grid" }, field("users.name", name, { hint: "users.nameHint" }), field("users.role", role)),
  h("div", { class: "actions" }, h("button", { type: "submit", "data-testid": "user-create" }, t("users.create"))));

  replace(root, h("h2", {}, t("users.heading")), form, msg.node, tokenSlot, list);
  load();
}
