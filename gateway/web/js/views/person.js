// One tenant (#/person/<id>), for administrators and police: details with the validity note,
// cards, face templates, watch-list state, and the person's entries with a pager and snapshots.
// Police put the person on or off the watch list (with a reason). Administrators edit every
// field, add and remove cards, replace or delete the face, suspend / revoke / activate (with a
// reason) and delete the tenant.

import { append, h, replace } from "../dom.js";
import { call } from "../api.js";
import { formatTime, t } from "../i18n.js";
import { entryTable } from "../entry_list.js";
import { badge, field, messageLine, pager } from "../ui.js";
import { photoPicker } from "./photos.js";
import {
  ask, changeStatus, clearInvalid, enc, fieldName, focusable, markInvalid, ownerIn, parseCard, problemSummary,
  statusActions, tenantFields, validityNote,
} from "./tenant_form.js";

export const route = "person";
export const roles = ["admin", "police"];
export const nav = null;

const ENTRY_LIMIT = 20;
const EDITABLE = ["name", "permit_number", "room", "valid_from", "valid_to"];

/**
 * The town's page passes `opts`: facts(tenant) → more [key, label, value] rows after the id (the
 * building), entryTable: options of the person's entries table (a building column, no snapshots).
 */
export function render(root, ctx, opts = {}) {
  const id = ctx.params[0] || "";
  const admin = ctx.me.role === "admin";
  const police = ctx.me.role === "police";
  const heading = h("h2", { "data-testid": "person-name" }, t("person.heading"));
  const msg = focusable(messageLine("person-msg"));
  const state = { tenant: null, gone: false, picker: null };
  replace(root, heading, msg.node);
  msg.info("person.loading");

  call("GET", `/tenants/${enc(id)}`).then((tenant) => {
    if (state.gone) return;
    msg.clear();
    state.tenant = tenant;
    build(root, ctx, state, { heading, msg, admin, police, opts });
    if (ctx.query.get("new")) msg.ok("person.new", { name: tenant.name });
  }).catch((err) => {
    if (state.gone || err.handled) return;
    if (err.status === 404) {
      msg.clear();
      root.append(h("p", { class: "msg error", role: "alert", "data-testid": "person-missing" },
        t("person.notFound", { id })),
      h("p", {}, h("a", { href: "#/tenants", "data-testid": "person-back" }, t("person.backToList"))));
    } else {
      msg.error(err);
    }
  });

  return () => {
    state.gone = true;
    if (state.picker) state.picker.dispose();
  };
}

function build(root, ctx, state, { heading, msg, admin, police, opts }) {
  const id = state.tenant.id;
  const path = `/tenants/${enc(id)}`;
  const statusLine = h("p", { class: "person-badges", "data-testid": "person-badges" });
  const facts = h("dl", { class: "facts", "data-testid": "person-facts" });
  const statusBox = h("div", { class: "actions", role: "group", "aria-label": t("person.statusActions"),
    "data-testid": "person-status-actions" });
  const watchButton = police ? h("button", { type: "button", class: "secondary", "data-testid": "person-watch",
    onclick: () => toggleWatch() }) : null;
  const cardsList = h("ul", { class: "card-list", "data-testid": "person-cards" });
  const faceCount = h("p", { "data-testid": "person-face-count" });

  // ---- showing the tenant as stored ------------------------------------------------------------
  function show(tenant) {
    state.tenant = tenant;
    heading.textContent = tenant.name;
    replace(statusLine, badge("status", tenant.status), tenant.watchlist
      ? [" ", h("span", { class: "badge bad", "data-testid": "person-watch-badge" }, t("tenants.watchBadge"))] : null);
    const row = (key, label, ...value) => [h("dt", {}, label), h("dd", { "data-testid": "person-" + key }, ...value)];
    replace(facts,
      row("id", fieldName("id"), tenant.id),
      (opts.facts ? opts.facts(tenant) : []).map(([key, label, value]) => row(key, label, value)),
      row("name-value", fieldName("name"), tenant.name),
      row("permit", fieldName("permit_number"), tenant.permit_number),
      row("room", fieldName("room"), tenant.room || h("span", { class: "muted" }, "—")),
      row("status", t("tenants.col.status"), badge("status", tenant.status)),
      row("valid-from", fieldName("valid_from"), tenant.valid_from || h("span", { class: "muted" }, "—")),
      row("valid-to", fieldName("valid_to"), tenant.valid_to, " ", validityNote(tenant)),
      row("watchlist", t("person.watchlist"), tenant.watchlist ? t("person.watchOn") : t("person.watchOff")),
      row("created", t("person.createdAt"), formatTime(tenant.created_at)),
      row("updated", t("person.updatedAt"), formatTime(tenant.updated_at)));
    if (admin) {
      replace(statusBox, statusActions(tenant.status).map((a) => h("button", { type: "button",
        class: a === "revoke" ? "danger" : "secondary", "data-testid": "person-" + a,
        onclick: () => setStatus(a) }, t("tenants.action." + a))));
    }
    if (watchButton) {
      watchButton.textContent = t(tenant.watchlist ? "person.watchClear" : "person.watchSet");
      watchButton.dataset.on = tenant.watchlist ? "true" : "false";
    }
    replace(cardsList, tenant.cards.length ? tenant.cards.map((card) => h("li", { "data-card": card,
      "data-testid": "person-card" }, h("span", { class: "card-number" }, String(card)),
    admin ? [" ", h("button", { type: "button", class: "secondary", "data-testid": "card-remove",
      "aria-label": t("person.removeCardLabel", { card }), onclick: () => removeCard(card) },
    t("person.removeCard"))] : null)) : h("li", { class: "muted", "data-testid": "person-no-cards" },
      t("person.noCards")));
    faceCount.textContent = t("person.faceCount", { n: tenant.face_templates });
    faceCount.dataset.n = tenant.face_templates;
    if (edit) edit.fields.set(tenant);
  }

  async function refresh() {
    const tenant = await call("GET", path);
    if (!state.gone) show(tenant);
    return tenant;
  }

  /** Run an action; its errors go to that section's message line, which takes the focus. */
  async function guarded(line, fn) {
    try {
      await fn();
    } catch (err) {
      if (err.handled || state.gone) return;
      line.error(err);
      line.node.focus();
    }
  }

  // ---- status and watch list ---------------------------------------------------------------------
  function setStatus(action) {
    return guarded(msg, async () => {
      const changed = await changeStatus(state.tenant, action);
      if (!changed) return;
      show(changed);
      msg.ok("tenants.done." + action, { name: changed.name });
      msg.node.focus();
    });
  }

  function toggleWatch() {
    const on = !state.tenant.watchlist;
    const which = on ? "watchSet" : "watchClear";
    return guarded(msg, async () => {
      const answer = await ask({ title: t("person." + which), reason: true, confirmKey: "person." + which,
        message: t("person.confirm." + which, { name: state.tenant.name, id }) });
      if (!answer) return;
      const changed = await call(on ? "PUT" : "DELETE", path + "/watchlist", { json: { reason: answer.reason } });
      show(changed);
      msg.ok("person.done." + which, { name: changed.name });
      watchButton.focus();
    });
  }

  // ---- editing (administrators) ------------------------------------------------------------------
  let edit = null;
  if (admin) {
    const fields = tenantFields({ withId: false, testid: "edit" });
    const line = focusable(messageLine("edit-msg"));
    const summary = problemSummary("edit-problems");
    const form = h("form", { novalidate: true, "data-testid": "edit-form", onsubmit: (e) => {
      e.preventDefault();
      save();
    } }, fields.node, h("div", { class: "actions" },
      h("button", { type: "submit", "data-testid": "edit-save" }, t("person.editSave"))));
    edit = { fields, line, summary, form };

    const save = () => guarded(line, async () => {
      summary.clear();
      clearInvalid(form);
      line.clear();
      const { data, problems } = fields.read();
      if (problems.length) {
        summary.show("enrol.checkFirst", problems);
        return;
      }
      const patch = {};
      for (const key of EDITABLE) if ((state.tenant[key] ?? null) !== data[key]) patch[key] = data[key];
      if (!Object.keys(patch).length) {
        line.info("person.editNoChange");
        return;
      }
      try {
        show(await call("PATCH", path, { json: patch }));
      } catch (err) {
        if (err.code === "conflict" && "permit_number" in patch) {
          summary.show("enrol.checkFirst", [{ field: "permit_number", input: fields.inputs.permit_number,
            text: t("tenants.problem.permitTaken", { field: fieldName("permit_number") }) }]);
          return;
        }
        throw err;
      }
      line.ok("person.editSaved");
      line.node.focus();
    });
  }

  // ---- cards -------------------------------------------------------------------------------------
  const cardsLine = focusable(messageLine("cards-msg"));
  const cardInput = h("input", { type: "text", inputmode: "numeric", maxlength: 10, autocomplete: "off",
    "data-testid": "card-add-input" });
  const addCard = () => guarded(cardsLine, async () => {
    clearInvalid(cardsForm);
    cardsLine.clear();
    const card = parseCard(cardInput.value);
    if (card.problem) {
      markInvalid(cardInput, t("tenants.problem." + card.problem, { field: t("person.cardNumber") }));
      cardInput.focus();
      return;
    }
    try {
      show(await call("POST", path + "/cards", { json: { number: card.number } }));
    } catch (err) {
      if (err.code !== "conflict") throw err;
      const owner = ownerIn(err.message);
      markInvalid(cardInput, owner ? t("person.cardTaken", { card: card.number, owner })
        : t("person.cardTakenAnon", { card: card.number }));
      cardInput.focus();
      return;
    }
    cardInput.value = "";
    cardsLine.ok("person.cardAdded", { card: card.number });
    cardInput.focus();
  });
  const cardsForm = admin ? h("form", { novalidate: true, "data-testid": "card-add-form", onsubmit: (e) => {
    e.preventDefault();
    addCard();
  } }, h("div", { class: "grid" }, field("person.cardNumber", cardInput, { hint: "enrol.cardsHint", wide: true })),
  h("div", { class: "actions" }, h("button", { type: "submit", "data-testid": "card-add" }, t("person.addCard"))))
    : null;

  function removeCard(card) {
    return guarded(cardsLine, async () => {
      const answer = await ask({ title: t("person.confirm.removeCard.title"), danger: true,
        message: t("person.confirm.removeCard", { card }), confirmKey: "person.removeCard" });
      if (!answer) return;
      await call("DELETE", `/cards/${card}`);
      await refresh();
      cardsLine.ok("person.cardRemoved", { card });
      cardsLine.node.focus();
    });
  }

  // ---- faces -------------------------------------------------------------------------------------
  const facesLine = focusable(messageLine("faces-msg"));
  let facesTools = null;
  if (admin) {
    const picker = photoPicker({ testid: "faces-photos" });
    state.picker = picker;
    const replaceFaces = () => guarded(facesLine, async () => {
      facesLine.clear();
      picker.markUnchecked();
      const photos = picker.files();
      if (!photos.length) {
        facesLine.error("person.noPhotos");
        picker.chooser.focus();
        return;
      }
      const form = new FormData();
      for (const photo of photos) form.append("photos", photo, photo.name);
      facesLine.info("person.replacing");
      let result;
      try {
        result = await call("POST", path + "/faces", { query: { replace: "true" }, form });
      } catch (err) {
        const verdicts = err.body && err.body.error && err.body.error.verdicts;
        if (err.code !== "photo_rejected" || !Array.isArray(verdicts)) throw err;
        picker.setVerdicts(verdicts);
        facesLine.error("person.photosRejected");
        facesLine.node.focus();
        return;
      }
      picker.setVerdicts(result.verdicts);
      const now = await refresh();
      facesLine.ok("person.facesReplaced", { n: now.face_templates });
      facesLine.node.focus();
    });
    const deleteFaces = () => guarded(facesLine, async () => {
      const answer = await ask({ title: t("person.confirm.deleteFaces.title"), danger: true,
        message: t("person.confirm.deleteFaces", { name: state.tenant.name }), confirmKey: "person.deleteFaces" });
      if (!answer) return;
      await call("DELETE", path + "/faces");
      await refresh();
      facesLine.ok("person.facesDeleted");
      facesLine.node.focus();
    });
    facesTools = [
      h("p", { class: "muted" }, t("person.replaceHint")),
      picker.node,
      h("div", { class: "actions" },
        h("button", { type: "button", "data-testid": "faces-replace", onclick: replaceFaces }, t("person.replaceFaces")),
        h("button", { type: "button", class: "danger", "data-testid": "faces-delete", onclick: deleteFaces },
          t("person.deleteFaces"))),
    ];
  }

  // ---- deleting (administrators) ----------------------------------------------------------------
  async function deleteTenant() {
    return guarded(msg, async () => {
      const answer = await ask({ title: t("person.confirm.delete.title"), danger: true,
        message: t("person.confirm.delete", { name: state.tenant.name, id }), confirmKey: "person.deleteTenant" });
      if (!answer) return;
      await call("DELETE", path);
      location.hash = `#/tenants?deleted=${enc(id)}`;
    });
  }

  // ---- entries -----------------------------------------------------------------------------------
  const entriesLine = messageLine("person-entries-msg");
  const entriesBox = h("div", { class: "results", "data-testid": "person-entries" });
  let loadingEntries = false;
  async function loadEntries(offset) {
    if (loadingEntries) return;
    loadingEntries = true;
    entriesLine.info("common.loading");
    try {
      const page = await call("GET", "/entries", { query: { tenant_id: id, with_total: true, limit: ENTRY_LIMIT,
        offset } });
      if (state.gone) return;
      entriesLine.clear();
      replace(entriesBox,
        pager({ total: page.total ?? page.items.length, capped: page.total_capped, offset, limit: ENTRY_LIMIT,
          onGo: loadEntries, testid: "person-entries-pager" }),
        entryTable(page.items, { person: false, ...(opts.entryTable || {}) }));
    } catch (err) {
      if (!err.handled && !state.gone) entriesLine.error(err);
    } finally {
      loadingEntries = false;
    }
  }

  // ---- the page ------------------------------------------------------------------------------------
  append(root, [
    statusLine,
    h("section", { class: "card-box", "aria-labelledby": "person-details-h", "data-testid": "person-details" },
      h("h3", { id: "person-details-h" }, t("person.details")), facts,
      admin ? statusBox : null,
      watchButton ? h("div", { class: "actions" }, watchButton) : null),
    admin ? h("section", { class: "card-box", "aria-labelledby": "person-edit-h", "data-testid": "person-edit" },
      h("h3", { id: "person-edit-h" }, t("person.edit")), edit.summary.node, edit.form, edit.line.node) : null,
    h("section", { class: "card-box", "aria-labelledby": "person-cards-h", "data-testid": "person-cards-box" },
      h("h3", { id: "person-cards-h" }, t("person.cards")), cardsList, cardsForm, cardsLine.node),
    h("section", { class: "card-box", "aria-labelledby": "person-faces-h", "data-testid": "person-faces" },
      h("h3", { id: "person-faces-h" }, t("person.faces")), faceCount, facesTools, facesLine.node),
    h("section", { class: "card-box", "aria-labelledby": "person-entries-h" },
      h("h3", { id: "person-entries-h" }, t("person.entries")), entriesLine.node, entriesBox),
    admin ? h("section", { class: "card-box", "aria-labelledby": "person-danger-h", "data-testid": "person-danger" },
      h("h3", { id: "person-danger-h" }, t("person.danger")), h("p", { class: "muted" }, t("person.deleteHint")),
      h("div", { class: "actions" }, h("button", { type: "button", class: "danger", "data-testid": "person-delete",
        onclick: deleteTenant }, t("person.deleteTenant")))) : null]);
  show(state.tenant);
  loadEntries(0);
}
