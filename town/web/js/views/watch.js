// The town's watch list (police): persons of interest, tenants or not, each with face templates, pushed
// to every building's gateway. Listed with a search and pages; a person is added with 1 to 5 photos, or
// as a tenant of the register (their enrolled faces), with a reason; taken off after a confirmation with
// a reason. Every look and every change is audited by the town.

import { h, replace } from "/js/dom.js";
import { call } from "/js/api.js";
import { formatTime, t, word } from "/js/i18n.js";
import { button, confirmAction, dataTable, field, messageLine, pager } from "/js/ui.js";
import { MAX_PHOTOS, photoPicker } from "/js/views/photos.js";

export const route = "watch";
export const roles = ["police"];
export const nav = "town.nav.watch";

const LIMIT = 20;

export function render(root) {
  const msg = messageLine("watch-msg");
  const list = h("div", { class: "results", "aria-live": "polite", "data-testid": "watch-list" });
  const q = h("input", { type: "search", maxlength: 100, "data-testid": "watch-q", autocomplete: "off" });
  let offset = 0;
  let gone = false;

  async function load(at = offset) {
    offset = at;
    try {
      const page = await call("GET", "/watch", { query: { q: q.value.trim(), limit: LIMIT, offset } });
      if (gone) return;
      replace(list,
        pager({ total: page.total, offset, limit: LIMIT, onGo: load, testid: "watch-pager" }),
        dataTable({ columns: columns(), rows: page.items, testid: "watch-table", rowTestid: "watch-row",
          empty: "town.watch.empty", rowAttrs: (w) => ({ "data-id": w.id, "data-name": w.name }) }));
    } catch (err) {
      if (!err.handled && !gone) msg.error(err);
    }
  }

  async function remove(w) {
    const answer = await confirmAction({ title: t("town.watch.removeTitle", { name: w.name }),
      message: t("town.watch.removeMessage", { name: w.name }), confirmKey: "town.watch.remove", reason: true,
      danger: true });
    if (!answer) return;
    q.focus(); // the row and its button go
    try {
      await call("DELETE", `/watch/${encodeURIComponent(w.id)}`, { json: { reason: answer.reason } });
      msg.ok("town.watch.removed", { name: w.name });
      await load(0);
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  function columns() {
    return [
      { key: "name", label: t("town.watch.col.name"), cell: (w) => h("strong", {}, w.name) },
      { key: "note", label: t("town.watch.col.note"), cell: (w) => w.note || h("span", { class: "muted" }, "—") },
      { key: "tenant", label: t("town.watch.col.tenant"), cell: (w) => (w.tenant_id
        ? h("a", { href: "#/person/" + encodeURIComponent(w.tenant_id), "data-testid": "watch-tenant" }, w.tenant_id)
        : h("span", { class: "muted" }, t("town.watch.notTenant"))) },
      { key: "templates", label: t("town.watch.col.faces"), cell: (w) => t("tenants.faceCount", { n: w.templates }) },
      { key: "by", label: t("town.watch.col.by"), cell: (w) => `${w.created_by} · ${formatTime(w.created_at)}` },
      { key: "action", label: t("town.watch.col.action"), cell: (w) => button("town.watch.remove", () => remove(w),
        { class: "danger", "data-testid": "watch-remove", "aria-label": t("town.watch.removeLabel", { name: w.name }) }) },
    ];
  }

  // ---- adding --------------------------------------------------------------------------------------
  const addMsg = messageLine("watch-add-msg");
  const name = h("input", { maxlength: 200, required: true, autocomplete: "off", "data-testid": "watch-name" });
  const note = h("textarea", { maxlength: 1000, rows: 2, "data-testid": "watch-note" });
  const reason = h("textarea", { maxlength: 200, rows: 2, required: true, "data-testid": "watch-reason" });
  const tenant = h("input", { maxlength: 64, autocomplete: "off", spellcheck: "false", "data-testid": "watch-tenant-id" });
  const picker = photoPicker({ testid: "watch-photos", hintKey: "town.watch.photosHint", hintArgs: { max: MAX_PHOTOS } });
  const submit = h("button", { type: "submit", "data-testid": "watch-submit" }, t("town.watch.add"));

  async function add(e) {
    e.preventDefault();
    picker.markUnchecked();
    const photos = picker.files();
    if (!name.value.trim()) return (addMsg.error("town.watch.nameNeeded"), name.focus());
    if (!reason.value.trim()) return (addMsg.error("common.reasonNeeded"), reason.focus());
    if (!photos.length && !tenant.value.trim()) return (addMsg.error("town.watch.faceNeeded"), picker.chooser.focus());
    const body = new FormData();
    body.append("name", name.value.trim());
    if (note.value.trim()) body.append("note", note.value.trim());
    body.append("reason", reason.value.trim());
    if (tenant.value.trim()) body.append("tenant_id", tenant.value.trim());
    for (const photo of photos) body.append("photos", photo, photo.name);
    submit.disabled = true;
    addMsg.info(photos.length ? "town.watch.checking" : "common.loading");
    try {
      const added = await call("POST", "/watch", { form: body });
      if (gone) return;
      addMsg.ok("town.watch.added", { name: added.name, n: added.templates });
      for (const input of [name, note, reason, tenant]) input.value = "";
      picker.reset();
      await load(0);
    } catch (err) {
      if (gone || err.handled) return;
      const detail = (err.body && err.body.error) || {};
      if (Array.isArray(detail.verdicts) && detail.verdicts.length) {
        picker.setVerdicts(detail.verdicts);
        addMsg.error("town.watch.photosRejected", { list: detail.verdicts.filter((v) => !v.ok)
          .map((v) => `${v.name}: ${word("verdict", v.reason)}`).join("; ") });
      } else {
        addMsg.error(err);
      }
    } finally {
      submit.disabled = false;
    }
  }

  const addForm = h("form", { class: "card-box", novalidate: true, "data-testid": "watch-add-form", onsubmit: add },
    h("h3", {}, t("town.watch.addHeading")),
    h("div", { class: "grid" }, field("town.watch.col.name", name), field("town.watch.tenantId", tenant,
      { hint: "town.watch.tenantHint" })),
    h("div", { class: "grid" }, field("town.watch.col.note", note, { wide: true }),
      field("common.reason", reason, { wide: true })),
    h("fieldset", {}, h("legend", {}, t("enrol.photos")), picker.node),
    h("div", { class: "actions" }, submit), addMsg.node);

  const search = h("form", { class: "filters", role: "search", "data-testid": "watch-search-form", onsubmit: (e) => {
    e.preventDefault();
    load(0);
  } },
  h("div", { class: "grid" }, field("town.watch.search", q, { wide: true })),
  h("div", { class: "actions" }, h("button", { type: "submit", "data-testid": "watch-search" }, t("common.search"))));

  replace(root, h("h2", {}, t("town.watch.heading")), h("p", { class: "muted" }, t("town.watch.help")), msg.node,
    h("section", { class: "card-box" }, h("h3", {}, t("town.watch.listHeading")), search, list), addForm);
  load(0);
  return () => {
    gone = true;
    picker.dispose();
  };
}
