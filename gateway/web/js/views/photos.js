// Choosing face photos: a button in the page's language opening the file chooser, a thumbnail of
// each chosen photo (a blob: URL, which the page's CSP allows for images), a remove button each,
// and each photo's verdict from the API shown beside its thumbnail in words (word("verdict", …)).

import { h, replace, uid } from "../dom.js";
import { t, word } from "../i18n.js";

export const MAX_PHOTOS = 5; // the API's limit (gateway.enrolment.MAX_PHOTOS)

/**
 * photoPicker({testid, labelKey, hintKey}) → {node, input, chooser, files(), setVerdicts(verdicts),
 * markUnchecked(), verdictNode(i), reset(), dispose()}.
 */
export function photoPicker({ testid = "photos", labelKey = "tenants.photos.choose", hintKey = null,
  hintArgs = {}, max = MAX_PHOTOS } = {}) {
  // The browser's own file input speaks the browser's language ("Choose Files"): it stays hidden and
  // a button in the page's language opens it.
  const input = h("input", { type: "file", accept: "image/jpeg,image/png,image/webp,image/bmp,image/*",
    multiple: true, hidden: true, tabindex: "-1", "data-testid": testid + "-input" });
  const hint = hintKey ? h("small", { id: uid("hint") }, t(hintKey, hintArgs)) : null;
  const chooser = h("button", { type: "button", class: "secondary", "data-testid": testid + "-choose",
    "aria-describedby": hint ? hint.id : null, onclick: () => input.click() }, t(labelKey));
  const count = h("p", { class: "muted", "data-testid": testid + "-count", "aria-live": "polite" });
  const note = h("p", { class: "msg info", role: "status", hidden: true, "data-testid": testid + "-note" });
  const list = h("div", { class: "grid photo-list", role: "list", "data-testid": testid + "-list" });
  let items = [];

  function say(text) {
    note.textContent = text;
    note.hidden = !text;
  }

  function drawCount() {
    count.textContent = t("tenants.photos.count", { n: items.length, max });
    chooser.disabled = items.length >= max;
  }

  function add(file) {
    const url = URL.createObjectURL(file);
    const verdict = h("span", { class: "muted", "data-testid": testid + "-verdict", "data-state": "unchecked" },
      t("tenants.photos.unchecked"));
    const img = h("img", { src: url, alt: t("tenants.photos.alt", { name: file.name }), width: 160,
      "data-testid": testid + "-thumb" });
    const picture = h("div", { class: "photo-picture" }, img);
    img.addEventListener("error", () => replace(picture,
      h("span", { class: "badge", "data-testid": testid + "-nopreview" }, t("tenants.photos.noPreview"))));
    const item = { file, url, verdict };
    const remove = h("button", { type: "button", class: "secondary", "data-testid": testid + "-remove",
      "aria-label": t("tenants.photos.removeLabel", { name: file.name }), onclick: () => {
        const at = items.indexOf(item);
        URL.revokeObjectURL(url);
        items = items.filter((i) => i !== item);
        item.node.remove();
        renumber();
        drawCount();
        say(t("tenants.photos.removed", { name: file.name }));
        const next = list.querySelectorAll(`[data-testid=${testid}-remove]`)[Math.min(at, items.length - 1)];
        (next && !chooser.disabled ? next : chooser).focus();
      } }, t("tenants.photos.remove"));
    item.node = h("div", { class: "card-box photo", role: "listitem", "data-testid": testid + "-item",
      "data-name": file.name },
    picture,
    h("p", { class: "photo-name" }, h("strong", { class: "photo-index" }, ""), " ", file.name),
    h("p", { class: "photo-verdict" }, verdict),
    remove);
    items.push(item);
    list.append(item.node);
  }

  function renumber() {
    items.forEach((item, i) => {
      item.node.querySelector(".photo-index").textContent = `${i + 1}.`;
    });
  }

  input.addEventListener("change", () => {
    const chosen = [...input.files];
    const room = max - items.length;
    for (const file of chosen.slice(0, Math.max(0, room))) add(file);
    say(chosen.length > room ? t("tenants.photos.tooMany", { max, n: chosen.length - room }) : "");
    input.value = "";
    renumber();
    drawCount();
  });

  const fieldNode = h("div", { class: "field" }, h("div", {}, chooser), input, hint);
  drawCount();

  return {
    node: h("div", { class: "photo-picker", "data-testid": testid }, fieldNode, count, note, list),
    input,
    chooser,
    files: () => items.map((i) => i.file),
    /** verdicts in the order of the photos: [{ok, reason}] — each shown beside its thumbnail. */
    setVerdicts(verdicts) {
      items.forEach((item, i) => {
        const v = verdicts[i];
        if (!v) return setUnchecked(item);
        item.verdict.className = "badge " + (v.ok ? "good" : "bad");
        item.verdict.dataset.state = v.ok ? "ok" : "rejected";
        item.verdict.dataset.reason = v.reason;
        item.verdict.textContent = word("verdict", v.reason);
        item.node.dataset.ok = v.ok ? "true" : "false";
      });
    },
    markUnchecked() {
      items.forEach(setUnchecked);
    },
    verdictNode: (i) => (items[i] ? items[i].verdict : null),
    removeButton: (i) => (items[i] ? items[i].node.querySelector("button") : null),
    reset() {
      for (const item of items) URL.revokeObjectURL(item.url);
      items = [];
      replace(list);
      say("");
      drawCount();
    },
    dispose() {
      for (const item of items) URL.revokeObjectURL(item.url);
    },
  };
}

function setUnchecked(item) {
  item.verdict.className = "muted";
  item.verdict.dataset.state = "unchecked";
  delete item.verdict.dataset.reason;
  item.verdict.textContent = t("tenants.photos.unchecked");
  delete item.node.dataset.ok;
}
