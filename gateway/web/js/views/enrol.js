// Enrolment (administrators): the tenant's fields, their cards and face photos in one form, sent as
// ONE POST /enrolments so that everything is stored or nothing is. The page checks what it can
// first (required fields, date order, card digits); then every problem the API lists is shown by
// field, each photo's verdict beside its thumbnail. On success: the person's page.

import { h, replace, uid } from "../dom.js";
import { call } from "../api.js";
import { t, today, word } from "../i18n.js";
import { messageLine } from "../ui.js";
import { MAX_PHOTOS, photoPicker } from "./photos.js";
import {
  clearInvalid, enc, fieldName, ownerIn, parseCard, problemSummary, tenantFields,
} from "./tenant_form.js";

export const route = "enrol";
export const roles = ["admin"];
export const nav = "nav.enrol";

const MAX_CARDS = 8; // the API's limit (routes_enrolment.MAX_CARDS)

/**
 * The town's page passes `opts.extra`: more of the tenant's fields (its building), {node, inputs: {key:
 * input}, read() → {data, problems}}; their values join the tenant's, the API's problems find their inputs.
 */
export function render(root, ctx, opts = {}) {
  const extra = opts.extra || { node: null, inputs: {}, read: () => ({ data: {}, problems: [] }) };
  const fields = tenantFields({ testid: "enrol" });
  fields.inputs.valid_from.value = today();
  const summary = problemSummary("enrol-problems");
  const msg = messageLine("enrol-msg");
  const picker = photoPicker({ testid: "enrol-photos", hintKey: "enrol.photosHint", hintArgs: { max: MAX_PHOTOS } });
  const cardRows = h("div", { class: "card-rows", "data-testid": "enrol-cards" });
  const addCard = h("button", { type: "button", class: "secondary", "data-testid": "enrol-add-card",
    onclick: () => cardRow(true) }, t("enrol.addCard"));
  const submit = h("button", { type: "submit", "data-testid": "enrol-submit" }, t("enrol.submit"));
  let gone = false;

  function cardInputs() {
    return [...cardRows.querySelectorAll("input")];
  }

  function relabel() {
    const rows = [...cardRows.children];
    rows.forEach((row, i) => {
      row.querySelector("label").textContent = t("enrol.card", { n: i + 1 });
      const remove = row.querySelector("button");
      remove.textContent = t("tenants.photos.remove");
      remove.setAttribute("aria-label", t("enrol.removeCard", { n: i + 1 }));
      remove.hidden = rows.length < 2;
    });
    addCard.disabled = rows.length >= MAX_CARDS;
  }

  function cardRow(focus) {
    if (cardRows.children.length >= MAX_CARDS) return;
    const input = h("input", { id: uid("card"), type: "text", inputmode: "numeric", maxlength: 10,
      autocomplete: "off", spellcheck: "false", "data-testid": "enrol-card" });
    const row = h("div", { class: "grid card-row" },
      h("div", { class: "field" }, h("label", { for: input.id }, ""), input),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", "data-testid": "enrol-remove-card", onclick: () => {
          const at = [...cardRows.children].indexOf(row);
          row.remove();
          relabel();
          const inputs = cardInputs();
          (inputs[Math.max(0, at - 1)] || addCard).focus();
        } }, "")));
    cardRows.append(row);
    relabel();
    if (focus) input.focus();
  }

  /** The typed cards: numbers in order, the input each came from, and the problems found. */
  function readCards() {
    const numbers = [];
    const used = [];
    const problems = [];
    cardInputs().forEach((input, i) => {
      const value = input.value.trim();
      if (!value) return;
      const label = t("enrol.card.label", { n: i + 1 });
      const card = parseCard(value);
      if (card.problem) {
        problems.push({ field: `cards`, input, text: t("tenants.problem." + card.problem, { field: label }) });
      } else if (numbers.includes(card.number)) {
        problems.push({ field: `cards`, input, text: t("tenants.problem.cardTwice", { field: label }) });
      } else {
        numbers.push(card.number);
        used.push({ input, label });
      }
    });
    return { numbers, used, problems };
  }

  /** A problem the API listed → {text, input|target}: the field named in words, the code as a word. */
  function fromServer(p, used, photos) {
    const name = p.field || "";
    let m = /^tenant\.(\w+)$/.exec(name);
    if (m) {
      const key = m[1];
      const input = fields.inputs[key] || extra.inputs[key];
      const label = input ? fieldName(key) : t("enrol.person");
      let text;
      if (p.code === "conflict" && key === "id") text = t("tenants.problem.idTaken", { field: label });
      else if (p.code === "conflict" && key === "permit_number") text = t("tenants.problem.permitTaken", { field: label });
      else text = codeText(label, p.code);
      return { field: name, input, text };
    }
    m = /^cards\[(\d+)\]$/.exec(name);
    if (m && used[+m[1]]) {
      const { input, label } = used[+m[1]];
      const card = input.value.trim();
      const owner = ownerIn(p.message);
      const text = p.code !== "conflict" ? codeText(label, p.code)
        : owner ? t("tenants.problem.cardTaken", { field: label, card, owner })
          : t("tenants.problem.cardTakenAnon", { field: label, card });
      return { field: name, input, text };
    }
    m = /^photos\[(\d+)\]$/.exec(name);
    if (m) {
      const i = +m[1];
      const label = t("enrol.photo.label", { n: i + 1, name: photos[i] ? photos[i].name : "" });
      return { field: name, target: picker.removeButton(i),
        text: t("tenants.problem.photo", { field: label, verdict: word("verdict", p.code) }) };
    }
    if (name.startsWith("cards")) return { field: name, target: cardInputs()[0], text: codeText(t("enrol.cards"), p.code) };
    if (name.startsWith("photos")) return { field: name, target: picker.chooser, text: codeText(t("enrol.photos"), p.code) };
    return { field: name, text: codeText(t("enrol.person"), p.code) };
  }

  function codeText(label, code) {
    return code === "invalid" ? t("tenants.problem.invalid", { field: label })
      : t("tenants.problem.other", { field: label, word: word("error", code) });
  }

  async function send(e) {
    e.preventDefault();
    summary.clear();
    clearInvalid(form);
    msg.clear();
    picker.markUnchecked();
    const more = extra.read();
    const { data, problems } = fields.read();
    problems.unshift(...more.problems);
    const cards = readCards();
    problems.push(...cards.problems);
    const photos = picker.files();
    if (photos.length > MAX_PHOTOS) {
      problems.push({ field: "photos", target: picker.chooser, text: t("tenants.problem.tooManyPhotos", { n: MAX_PHOTOS }) });
    }
    if (problems.length) {
      summary.show("enrol.checkFirst", problems);
      return;
    }
    const tenant = { ...more.data, id: data.id, name: data.name, permit_number: data.permit_number,
      valid_to: data.valid_to };
    if (data.valid_from) tenant.valid_from = data.valid_from;
    if (data.room) tenant.room = data.room;
    const body = new FormData();
    body.append("tenant", JSON.stringify(tenant));
    body.append("cards", JSON.stringify(cards.numbers));
    for (const photo of photos) body.append("photos", photo, photo.name);
    submit.disabled = true;
    msg.info("enrol.saving");
    try {
      const created = await call("POST", "/enrolments", { form: body });
      if (gone) return;
      location.hash = `#/person/${enc(created.id)}?new=1`;
    } catch (err) {
      if (gone || err.handled) return;
      msg.clear();
      const detail = (err.body && err.body.error) || {};
      if (!Array.isArray(detail.problems)) {
        msg.error(err);
        return;
      }
      const verdicts = Array.isArray(detail.verdicts) ? detail.verdicts : [];
      if (verdicts.length) picker.setVerdicts(verdicts);
      const order = (p) => (/^tenant/.test(p.field) ? 0 : /^cards/.test(p.field) ? 1 : 2);
      const listed = [...detail.problems].sort((a, b) => order(a) - order(b))
        .map((p) => fromServer(p, cards.used, photos));
      if (photos.length && !verdicts.length) listed.push({ field: "photos", text: t("tenants.problem.photosUnchecked") });
      summary.show("enrol.notStored", listed);
    } finally {
      submit.disabled = false;
    }
  }

  const form = h("form", { class: "card-box enrol-form", novalidate: true, "data-testid": "enrol-form",
    onsubmit: send },
  h("fieldset", {}, h("legend", {}, t("enrol.person")), extra.node, fields.node),
  h("fieldset", { "data-testid": "enrol-cards-set" }, h("legend", {}, t("enrol.cards")),
    h("p", { class: "muted" }, t("enrol.cardsHint")), cardRows, h("div", { class: "actions" }, addCard)),
  h("fieldset", {}, h("legend", {}, t("enrol.photos")), picker.node),
  h("div", { class: "actions" }, submit),
  msg.node);
  cardRow(false);

  replace(root, h("h2", {}, t("enrol.heading")), h("p", { class: "muted" }, t("enrol.intro")), summary.node, form);
  return () => {
    gone = true;
    picker.dispose();
  };
}
