// The page's shared pieces: messages, labelled fields, tables that turn into cards on a phone,
// a pager with totals and page numbers, a confirm dialog with a reason, time presets, exports.
// Views build screens from these; the town page reuses them.

import { h, replace, uid } from "./dom.js";
import { apiUrl, call } from "./api.js";
import { currentLang, failureText, localInputValue, t, wallToRfc3339, word, zoneLabel } from "./i18n.js";

// ---- messages ---------------------------------------------------------------------------------
/** A live message line: msg.ok("key"), msg.error(err | "key"), msg.info("key"), msg.clear(). */
export function messageLine(testid) {
  const node = h("p", { class: "msg", role: "status", "aria-live": "polite", "data-testid": testid, hidden: true });
  const set = (kind, text) => {
    node.className = "msg " + kind;
    node.textContent = text;
    node.hidden = !text;
    node.dataset.kind = kind;
  };
  return {
    node,
    ok: (key, args) => set("ok", t(key, args)),
    info: (key, args) => set("info", t(key, args)),
    error: (e, args) => set("error", typeof e === "string" ? t(e, args) : failureText(e)),
    clear: () => set("", ""),
  };
}

// ---- forms ------------------------------------------------------------------------------------
/** A labelled field: field("tenants.name", h("input", {...}), {hint: "key"}). */
export function field(labelKey, input, opts = {}) {
  if (!input.id) input.id = uid("f");
  const hint = opts.hint ? h("small", { id: input.id + "-hint" }, t(opts.hint)) : null;
  if (hint) input.setAttribute("aria-describedby", hint.id);
  return h("div", { class: "field" + (opts.wide ? " wide" : "") },
    h("label", { for: input.id }, t(labelKey)), input, hint);
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export function button(labelKey, onclick, attrs = {}) {
  return h("button", { type: "button", onclick, ...attrs }, t(labelKey));
}

// ---- tables that become cards ------------------------------------------------------------------
/**
 * columns: [{key, label, cell(row) -> node|string, cls}]; each cell carries its column label,
 * which the stylesheet shows in front of the value when the table turns into cards (narrow screens).
 */
export function dataTable({ columns, rows, testid, rowTestid, rowAttrs, empty }) {
  if (!rows.length) return h("p", { class: "empty", "data-testid": testid + "-empty" }, t(empty || "common.none"));
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.cls }, c.label)));
  const body = rows.map((row) => h("tr", { "data-testid": rowTestid, ...(rowAttrs ? rowAttrs(row) : {}) },
    columns.map((c) => {
      const value = c.cell ? c.cell(row) : row[c.key];
      return h("td", { "data-label": c.label, class: c.cls }, value === null || value === undefined ? "" : value);
    })));
  return h("div", { class: "table-wrap" },
    h("table", { class: "data cards-narrow", "data-testid": testid }, h("thead", {}, head), h("tbody", {}, body)));
}

// ---- paging --------------------------------------------------------------------------------------
/** "共 123 条 · 第 2/3 页" with previous / numbers / next; onGo(offset). */
export function pager({ total, capped, offset, limit, onGo, testid = "pager" }) {
  const pages = Math.max(1, Math.ceil(total / limit));
  const current = Math.floor(offset / limit) + 1;
  const go = (p) => () => onGo((p - 1) * limit);
  const numbers = [];
  for (const p of pageNumbers(current, pages)) {
    numbers.push(p === null ? h("span", { class: "gap" }, "…")
      : h("button", { type: "button", class: p === current ? "page current" : "page", onclick: go(p),
        "aria-current": p === current ? "page" : null, "data-testid": `${testid}-page-${p}` }, String(p)));
  }
  return h("nav", { class: "pager", "aria-label": t("common.pages"), "data-testid": testid },
    h("span", { class: "total", "data-testid": testid + "-total" },
      t(capped ? "common.totalCapped" : "common.total", { n: total.toLocaleString(currentLang()) }),
      " · ", t("common.pageOf", { page: current, pages })),
    h("button", { type: "button", disabled: current <= 1, onclick: go(current - 1), "data-testid": testid + "-prev" },
      t("common.prev")),
    numbers,
    h("button", { type: "button", disabled: current >= pages, onclick: go(current + 1),
      "data-testid": testid + "-next" }, t("common.next")));
}

function pageNumbers(current, pages) {
  const want = new Set([1, pages, current - 1, current, current + 1]);
  const out = [];
  let last = 0;
  for (let p = 1; p <= pages; p += 1) {
    if (!want.has(p)) continue;
    if (p - last > 1) out.push(null);
    out.push(p);
    last = p;
  }
  return out;
}

// ---- a filtered, paged search screen -------------------------------------------------------------
/**
 * The engine of a search screen (entries, alerts, the audit log; the town's too):
 *   const s = pagedSearch({path: "/audit", testid: "audit", filters: () => ({...}), table: (items) => node,
 *                          exportPath: "/audit", onPage: (page, filters, msg) => {...}});
 *   replace(root, heading, s.form([fields…], range), s.exports, s.msg.node, s.results); s.search(0);
 * Each page asks for its total, shows a pager with page numbers, and refreshes the export links
 * with the filters it was found with. s.offset is the page shown (to reload it after a change).
 */
export function pagedSearch({ path, testid, filters, table, exportPath, limit = 50, onPage }) {
  const msg = messageLine(testid + "-msg");
  const results = h("div", { class: "results", "aria-live": "polite" });
  const exports = h("div", { class: "export-row" });
  let busy = false;
  const screen = {
    msg, results, exports, offset: 0,
    async search(offset = 0) {
      if (busy) return;
      busy = true;
      screen.offset = offset;
      msg.info("common.loading");
      const f = filters();
      try {
        const page = await call("GET", path, { query: { ...f, limit, offset, with_total: true } });
        msg.clear();
        if (onPage) onPage(page, f, msg);
        replace(results,
          pager({ total: page.total ?? page.items.length, capped: page.total_capped, offset, limit,
            onGo: screen.search, testid: testid + "-pager" }),
          table(page.items));
        if (exportPath) replace(exports, exportLinks(exportPath, f, testid + "-export"));
      } catch (err) {
        if (!err.handled) msg.error(err);
      } finally {
        busy = false;
      }
    },
    form(fields, range) {
      const submit = (e) => {
        e.preventDefault();
        screen.search(0);
      };
      const reset = () => {
        if (range) range.clear();
        setTimeout(() => screen.search(0)); // after the browser has emptied the fields
      };
      return h("form", { class: "filters card-box", "data-testid": testid + "-form", onsubmit: submit },
        h("div", { class: "grid" }, fields),
        range ? range.node : null,
        h("div", { class: "actions" },
          h("button", { type: "submit", "data-testid": testid + "-search" }, t("common.search")),
          h("button", { type: "reset", class: "secondary", onclick: reset }, t("common.reset"))));
    },
  };
  return screen;
}

// ---- confirm, with a reason -------------------------------------------------------------------
/**
 * await confirmAction({title, message, confirmKey, reason: true, danger: true}) →
 * {reason} when confirmed, null when cancelled. The reason is required when asked for.
 */
export function confirmAction({ title, message, confirmKey = "common.confirm", reason = false, danger = false }) {
  return new Promise((resolve) => {
    const reasonInput = reason ? h("textarea", { maxlength: 200, rows: 2, required: true,
      "data-testid": "confirm-reason" }) : null;
    const problem = h("p", { class: "msg error", hidden: true, role: "alert" });
    const dialog = h("dialog", { class: "confirm", "data-testid": "confirm-dialog", "aria-label": title });
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    const ok = () => {
      const text = reasonInput ? reasonInput.value.trim() : "";
      if (reasonInput && !text) {
        problem.textContent = t("common.reasonNeeded");
        problem.hidden = false;
        reasonInput.focus();
        return;
      }
      finish({ reason: text || null });
    };
    replace(dialog,
      h("h2", {}, title),
      h("p", {}, message),
      reasonInput ? field("common.reason", reasonInput) : null,
      problem,
      h("div", { class: "actions" },
        button("common.cancel", () => finish(null), { class: "secondary", "data-testid": "confirm-cancel" }),
        button(confirmKey, ok, { class: danger ? "danger" : "", "data-testid": "confirm-ok" })));
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      finish(null);
    });
    document.body.append(dialog);
    dialog.showModal();
    (reasonInput || dialog.querySelector("[data-testid=confirm-cancel]")).focus();
  });
}

// ---- time range with presets -----------------------------------------------------------------
/** Since/until inputs in the gateway's zone with presets; .query() gives {since, until} as RFC 3339. */
export function timeRange({ onPreset, testid = "range" } = {}) {
  const since = h("input", { type: "datetime-local", "data-testid": testid + "-since" });
  const until = h("input", { type: "datetime-local", "data-testid": testid + "-until" });
  const preset = (hours, fromMidnight) => () => {
    const now = new Date();
    const start = fromMidnight ? null : new Date(now.getTime() - hours * 3600000);
    since.value = start ? localInputValue(start) : localInputValue(now).slice(0, 10) + "T00:00";
    if (fromMidnight && hours > 24) {
      since.value = localInputValue(new Date(now.getTime() - (hours - 24) * 3600000)).slice(0, 10) + "T00:00";
    }
    until.value = "";
    if (onPreset) onPreset();
  };
  const node = h("fieldset", { class: "range" },
    h("legend", {}, t("range.legend", { zone: zoneLabel() })),
    h("div", { class: "presets" },
      button("range.lastHour", preset(1, false), { class: "chip", "data-testid": testid + "-hour" }),
      button("range.today", preset(24, true), { class: "chip", "data-testid": testid + "-today" }),
      button("range.week", preset(7 * 24, true), { class: "chip", "data-testid": testid + "-week" })),
    h("div", { class: "grid" }, field("range.since", since), field("range.until", until)));
  return {
    node,
    query() {
      const out = {};
      if (since.value) out.since = wallToRfc3339(since.value);
      if (until.value) out.until = wallToRfc3339(until.value);
      return out;
    },
    clear() {
      since.value = "";
      until.value = "";
    },
  };
}

// ---- exports -----------------------------------------------------------------------------------
/** CSV and XLSX links for an export route ("/entries"), with the filters and the page's language. */
export function exportLinks(path, query, testid = "export") {
  const q = { ...query, lang: currentLang() };
  return h("span", { class: "exports" },
    h("a", { class: "button secondary", href: apiUrl(path + ".csv", q), download: "", "data-testid": testid + "-csv" },
      t("common.exportCsv")),
    h("a", { class: "button secondary", href: apiUrl(path + ".xlsx", q), download: "",
      "data-testid": testid + "-xlsx" }, t("common.exportXlsx")));
}

/** A badge for a code word: badge("status", "active"). */
export function badge(family, code, extra = "") {
  return h("span", { class: `badge ${family}-${code} ${extra}`.trim(), "data-code": code }, word(family, code));
}

/** Query values without the empty ones. */
export function compact(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (v !== "" && v !== null && v !== undefined) out[k] = v;
  return out;
}
