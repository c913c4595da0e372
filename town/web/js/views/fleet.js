// The fleet (administrators, police, operators): every building's gateway — availability, when it was
// last heard, the roster version it holds against the newest of its log, its outbox depth, open alerts
// and missing event numbers — refreshed every few seconds (#/fleet?every=N: every N seconds, a wall screen).

import { h, replace } from "/js/dom.js";
import { call } from "/js/api.js";
import { currentLang, formatTime, t } from "/js/i18n.js";
import { compact, dataTable, field, messageLine, select } from "/js/ui.js";

export const route = "fleet";
export const roles = ["admin", "police", "operator"];
export const nav = "town.nav.fleet";

export const REFRESH_MS = 10_000;
const MIN_REFRESH_MS = 2_000;
const AVAILABILITY_CLASS = { online: "good", offline: "bad", unknown: "" };

function ago(iso) {
  if (!iso) return h("span", { class: "muted" }, t("town.fleet.never"));
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  const text = seconds < 90 ? t("town.fleet.secondsAgo", { n: seconds })
    : seconds < 5400 ? t("town.fleet.minutesAgo", { n: Math.round(seconds / 60) })
      : seconds < 172800 ? t("town.fleet.hoursAgo", { n: Math.round(seconds / 3600) })
        : t("town.fleet.daysAgo", { n: Math.round(seconds / 86400) });
  return h("span", { title: formatTime(iso) }, h("span", { class: "nowrap" }, formatTime(iso)), " ",
    h("span", { class: "muted" }, text));
}

function roster(g) {
  const behind = g.target_version - g.roster_version;
  return h("span", { "data-testid": "fleet-roster", "data-behind": behind },
    t("town.fleet.versions", { held: g.roster_version, target: g.target_version }), " ",
    behind > 0 ? h("span", { class: "badge warn" }, t("town.fleet.behind", { n: behind }))
      : h("span", { class: "badge good" }, t("town.fleet.current")));
}

export function render(root, ctx) {
  const every = Math.max(MIN_REFRESH_MS, Number(ctx.query.get("every")) * 1000 || REFRESH_MS);
  const canSeeAlerts = ["admin", "police", "operator"].includes(ctx.me.role);
  const availability = select([["", t("common.any")], ...["online", "offline", "unknown"]
    .map((a) => [a, t("town.availability." + a)])], "", { "data-testid": "fleet-availability" });
  const msg = messageLine("fleet-msg");
  const summary = h("p", { class: "fleet-summary", "data-testid": "fleet-summary", "aria-live": "polite" });
  const results = h("div", { class: "results", "data-testid": "fleet-results" });
  const updated = h("p", { class: "muted", "data-testid": "fleet-updated" });
  let gone = false;
  let timer = null;
  let loads = 0;

  function table(items) {
    const columns = [
      { key: "gateway_id", label: t("town.col.building"), cell: (g) => h("strong", {}, g.gateway_id) },
      { key: "availability", label: t("town.fleet.availability"), cell: (g) => h("span", {
        class: "badge " + (AVAILABILITY_CLASS[g.availability] ?? ""), "data-testid": "fleet-availability-badge",
        "data-code": g.availability }, t("town.availability." + g.availability)) },
      { key: "last_seen", label: t("town.fleet.lastSeen"), cell: (g) => ago(g.last_seen) },
      { key: "roster", label: t("town.fleet.roster"), cell: roster },
      { key: "outbox", label: t("town.fleet.outbox"), cell: (g) => (g.outbox_depth === null
        ? h("span", { class: "muted" }, "—") : h("span", { class: g.outbox_depth > 100 ? "badge warn" : "" },
          g.outbox_depth.toLocaleString(currentLang()))) },
      { key: "alerts", label: t("town.fleet.openAlerts"), cell: (g) => {
        const n = h("span", { class: g.open_alerts ? "badge bad" : "muted", "data-testid": "fleet-open-alerts" },
          String(g.open_alerts));
        return g.open_alerts && canSeeAlerts ? h("a", { href: "#/alerts?gateway_id=" + encodeURIComponent(g.gateway_id),
          "aria-label": t("town.fleet.alertsOf", { n: g.open_alerts, id: g.gateway_id }) }, n) : n;
      } },
      { key: "missing", label: t("town.fleet.missing"), cell: (g) => h("span", {
        class: g.missing_seqs ? "badge warn" : "muted", "data-testid": "fleet-missing" }, String(g.missing_seqs)) },
      { key: "software", label: t("town.fleet.software"), cell: (g) => g.software || h("span", { class: "muted" }, "—") },
    ];
    return dataTable({ columns, rows: items, testid: "fleet-table", rowTestid: "fleet-row", empty: "town.fleet.none",
      rowAttrs: (g) => ({ "data-id": g.gateway_id, "data-availability": g.availability }) });
  }

  async function load() {
    try {
      const items = await call("GET", "/gateways", { query: compact({ availability: availability.value }) });
      if (gone) return;
      msg.clear();
      const count = (a) => items.filter((g) => g.availability === a).length;
      replace(summary,
        t("town.fleet.summary", { n: items.length, online: count("online"), offline: count("offline"),
          unknown: count("unknown") }),
        " · ", t("town.fleet.summaryBehind", { n: items.filter((g) => g.target_version > g.roster_version).length }));
      replace(results, table(items));
      updated.textContent = t("town.fleet.updated", { time: formatTime(new Date()), s: every / 1000 });
      loads += 1;
      updated.dataset.loads = String(loads);
    } catch (err) {
      if (!err.handled && !gone) msg.error(err);
    } finally {
      if (!gone) timer = setTimeout(load, every);
    }
  }

  availability.addEventListener("change", () => {
    clearTimeout(timer);
    load();
  });
  replace(root, h("h2", {}, t("town.fleet.heading")), h("p", { class: "muted" }, t("town.fleet.help")),
    h("form", { class: "filters card-box", "data-testid": "fleet-form", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "grid" }, field("town.fleet.availability", availability))),
    msg.node, summary, results, updated);
  load();
  return () => {
    gone = true;
    clearTimeout(timer);
  };
}
