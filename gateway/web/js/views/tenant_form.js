// Pieces the tenants list, the enrolment form and a person's page share: the tenant's fields with
// the page's own checks (each problem named by its field, aria-invalid on the input), a problem
// summary, the validity note ("expires in N days"), and suspend / revoke / activate behind a
// confirmation with a reason.

import { h, replace } from "../dom.js";
import { call } from "../api.js";
import { daysUntil, t } from "../i18n.js";
import { confirmAction, field } from "../ui.js";

export const MAX_CARD = 4294967295;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

const FIELDS = [
  { key: "id", max: 64, required: true, hint: "tenants.field.idHint" },
  { key: "name", max: 200, required: true },
  { key: "permit_number", max: 64, required: true },
  { key: "room", max: 64, hint: "tenants.field.roomHint" },
  { key: "valid_from", date: true, hint: "tenants.field.validFromHint" },
  { key: "valid_to", date: true, required: true },
];

export function fieldName(key) {
  return t("tenants.field." + key);
}

export function enc(id) {
  return encodeURIComponent(id);
}

// ---- problems on inputs -------------------------------------------------------------------------
/** Marks an input invalid with its own message under it (read with the input by screen readers). */
export function markInvalid(input, text) {
  let note = input.parentNode && input.parentNode.querySelector(`[data-problem-for="${input.id}"]`);
  if (!note) {
    note = h("small", { class: "msg error", id: input.id + "-problem", "data-problem-for": input.id,
      "data-testid": "field-problem" });
    input.after(note);
  }
  note.textContent = text;
  note.hidden = false;
  input.setAttribute("aria-invalid", "true");
  const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(note.id)) input.setAttribute("aria-describedby", [...described, note.id].join(" "));
}

export function clearInvalid(scope) {
  for (const input of scope.querySelectorAll("[aria-invalid=true]")) input.removeAttribute("aria-invalid");
  for (const note of scope.querySelectorAll("[data-problem-for]")) {
    const input = scope.querySelector("#" + CSS.escape(note.dataset.problemFor));
    if (input) {
      const rest = (input.getAttribute("aria-describedby") || "").split(" ").filter((d) => d && d !== note.id);
      if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
      else input.removeAttribute("aria-describedby");
    }
    note.remove();
  }
}

/**
 * A box listing every problem; each names its field and, when it has an input (marked invalid) or
 * another target, is a link that takes the focus there. show(headingKey, [{text, input, target,
 * field}]) focuses the box.
 */
export function problemSummary(testid) {
  const node = h("div", { class: "msg error", role: "alert", tabindex: "-1", hidden: true, "data-testid": testid });
  return {
    node,
    show(headingKey, problems) {
      replace(node, h("p", {}, t(headingKey)),
        h("ul", {}, problems.map((p) => h("li", { "data-testid": testid + "-item", "data-field": p.field || "" },
          p.input || p.target ? h("a", { href: "#", onclick: (e) => {
            e.preventDefault();
            (p.input || p.target).focus();
          } }, p.text) : p.text))));
      node.hidden = false;
      for (const p of problems) if (p.input) markInvalid(p.input, p.text);
      node.focus();
    },
    clear() {
      node.hidden = true;
      replace(node);
    },
  };
}

// ---- the tenant's fields ------------------------------------------------------------------------
/**
 * tenantFields({withId, testid}) → {node, inputs, read(), set(tenant)}; read() → {data, problems}
 * where data holds the typed values (empty optional ones as null) and problems name their fields.
 */
export function tenantFields({ withId = true, testid = "tenant" } = {}) {
  const inputs = {};
  const nodes = [];
  for (const f of FIELDS) {
    if (f.key === "id" && !withId) continue;
    const input = h("input", {
      type: f.date ? "date" : "text", maxlength: f.date ? null : f.max, required: f.required,
      autocomplete: "off", spellcheck: "false", "data-testid": `${testid}-${f.key.replace("_", "-")}`,
      min: f.date ? "1900-01-01" : null, max: f.date ? "2200-12-31" : null,
    });
    inputs[f.key] = input;
    nodes.push(field("tenants.field." + f.key, input, { hint: f.hint }));
  }
  return {
    node: h("div", { class: "grid" }, nodes),
    inputs,
    read() {
      const data = {};
      const problems = [];
      const problem = (key, k, args = {}) => problems.push({ field: key, input: inputs[key],
        text: t("tenants.problem." + k, { field: fieldName(key), ...args }) });
      for (const f of FIELDS) {
        const input = inputs[f.key];
        if (!input) continue;
        const value = input.value.trim();
        data[f.key] = value === "" ? null : value;
        if (f.date && input.validity && input.validity.badInput) problem(f.key, "date");
        else if (!value) {
          if (f.required) problem(f.key, "required");
        } else if (f.max && value.length > f.max) problem(f.key, "tooLong", { n: f.max });
        else if (f.key === "id" && !ID_PATTERN.test(value)) problem(f.key, "idFormat");
        else if (f.date && !DATE_PATTERN.test(value)) problem(f.key, "date");
      }
      const from = data.valid_from;
      const to = data.valid_to;
      if (from && to && DATE_PATTERN.test(from) && DATE_PATTERN.test(to) && from > to) problem("valid_to", "dateOrder");
      return { data, problems };
    },
    set(tenant) {
      for (const [key, input] of Object.entries(inputs)) input.value = tenant[key] ?? "";
    },
  };
}

/** A card number typed by hand: {number} or {problem: key} (digits only, 0..4294967295). */
export function parseCard(text) {
  const value = text.trim();
  if (!/^\d+$/.test(value)) return { problem: "cardDigits" };
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number > MAX_CARD) return { problem: "cardRange" };
  return { number };
}

/** The tenant id quoted in a conflict message ("… for tenant 't-1'"), or null. */
export function ownerIn(message) {
  const m = /tenant '([^']+)'/.exec(message || "");
  return m ? m[1] : null;
}

// ---- validity and status ------------------------------------------------------------------------
/** "2026-01-01 至 2027-01-01" and a note: expires in N days / expired N days ago / valid in N days. */
export function validity(tenant) {
  const range = tenant.valid_from ? t("tenants.validRange", { from: tenant.valid_from, to: tenant.valid_to })
    : t("tenants.validTo", { to: tenant.valid_to });
  return h("span", { class: "validity" }, h("span", {}, range), " ", validityNote(tenant));
}

export function validityNote(tenant) {
  const starts = tenant.valid_from ? daysUntil(tenant.valid_from) : 0;
  const left = daysUntil(tenant.valid_to);
  let key;
  let kind;
  if (left < 0) [key, kind] = ["tenants.expiredAgo", "bad"];
  else if (starts > 0) [key, kind] = ["tenants.startsIn", "warn"];
  else if (left === 0) [key, kind] = ["tenants.expiresToday", "warn"];
  else [key, kind] = ["tenants.expiresIn", left <= 30 ? "warn" : ""];
  const n = left < 0 ? -left : starts > 0 ? starts : left;
  return h("span", { class: kind ? `badge ${kind}` : "muted", "data-testid": "validity-note", "data-days": left },
    t(key, { n }));
}

export const STATUS_OF = { suspend: "suspended", revoke: "revoked", activate: "active" };

/** The status changes that make sense from here: an active tenant can be suspended or revoked, … */
export function statusActions(status) {
  return Object.keys(STATUS_OF).filter((a) => STATUS_OF[a] !== status);
}

/**
 * Ask (with a reason), then suspend / revoke / activate. → the tenant as stored now, or null when
 * cancelled (the focus goes back where it was). Errors are thrown (ApiFailure).
 */
export async function changeStatus(tenant, action) {
  const answer = await ask({ title: t(`tenants.confirm.${action}.title`),
    message: t(`tenants.confirm.${action}`, { name: tenant.name, id: tenant.id }),
    confirmKey: `tenants.action.${action}`, reason: true, danger: action !== "activate" });
  if (!answer) return null;
  return call("POST", `/tenants/${enc(tenant.id)}/${action}`, { json: { reason: answer.reason } });
}

/** confirmAction, giving the focus back to what had it when the dialog is cancelled. */
export async function ask(opts) {
  const back = document.activeElement;
  const answer = await confirmAction(opts);
  if (!answer && back && back.isConnected) back.focus();
  return answer;
}

/** A message line that can take the focus (after an action removed the button that had it). */
export function focusable(msg) {
  msg.node.tabIndex = -1;
  return msg;
}
