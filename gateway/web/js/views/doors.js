// The operator's home (administrators and police see it without the button): every door as a card
// with its live state — mode, lock, door contact, fire alarm — refreshed every 2 seconds while the
// screen is shown, the health of the readers, I/O modules and cameras (GET /ready), and for the
// operator a remote open that asks for a reason (kept in the audit log).

import { h, replace } from "../dom.js";
import { call } from "../api.js";
import { formatTime, t, word } from "../i18n.js";
import { button, confirmAction, messageLine } from "../ui.js";

export const route = "doors";
export const roles = ["operator", "admin", "police"];
export const nav = "nav.doors";

const POLL_MS = 2000;

function stateBadge(cls, key, code) {
  return h("span", { class: "badge " + cls, "data-state": code }, t(key));
}

/** The state of one door as words: lock, contact, fire alarm. */
function doorFacts(d) {
  const lock = d.unlocked ? stateBadge("warn", "doors.unlocked", "unlocked")
    : stateBadge("good", "doors.locked", "locked");
  let contact;
  if (d.open === null || d.open === undefined) contact = stateBadge("", "doors.noContact", "none");
  else contact = d.open ? stateBadge("warn", "doors.open", "open") : stateBadge("good", "doors.closed", "closed");
  const fire = d.fire_alarm ? stateBadge("bad", "doors.fire", "fire") : stateBadge("good", "doors.noFire", "calm");
  return h("dl", { class: "facts" },
    h("dt", {}, t("doors.mode")), h("dd", { "data-testid": "door-mode" }, word("door.mode", d.mode)),
    h("dt", {}, t("doors.lock")), h("dd", { "data-testid": "door-lock" }, lock),
    h("dt", {}, t("doors.contact")), h("dd", { "data-testid": "door-contact" }, contact),
    h("dt", {}, t("doors.fireAlarm")), h("dd", { "data-testid": "door-fire" }, fire));
}

/** Readers, I/O modules and cameras as GET /ready reports them (also when it answers 503). */
function healthBox(report) {
  const groups = [["readers", "doors.readers"], ["io_modules", "doors.ioModules"], ["cameras", "doors.cameras"]];
  const rows = [];
  for (const [key, label] of groups) {
    const devices = Object.entries(report[key] || {});
    rows.push(h("dt", {}, t(label)), h("dd", {},
      devices.length ? devices.map(([id, online]) => h("span", {
        class: "badge " + (online ? "good" : "bad"), "data-testid": "device", "data-device": id,
        "data-online": String(online) }, t(online ? "doors.deviceOnline" : "doors.deviceOffline", { id })))
        : h("span", { class: "muted" }, t("doors.noDevices"))));
  }
  rows.push(h("dt", {}, t("doors.broker")), h("dd", {},
    h("span", { class: "badge " + (report.broker ? "good" : "warn"), "data-testid": "broker-state" },
      t(report.broker ? "doors.brokerUp" : "doors.brokerDown"))));
  if (report.outbox_depth !== null && report.outbox_depth !== undefined) {
    rows.push(h("dt", {}, t("doors.outbox")), h("dd", { "data-testid": "outbox-depth" },
      t("doors.outboxDepth", { n: report.outbox_depth })));
  }
  return h("dl", { class: "facts" }, rows);
}

export function render(root, ctx) {
  const canOpen = ctx.me.role === "operator";
  const msg = messageLine("doors-msg");
  const updated = h("p", { class: "muted", "data-testid": "doors-updated", "aria-live": "off" });
  const list = h("div", { class: "grid door-grid", "data-testid": "door-list" });
  const health = h("section", { class: "card-box", "data-testid": "device-health" },
    h("h3", {}, t("doors.health")), h("p", { class: "muted" }, t("common.loading")));
  const cards = new Map(); // door id → {node, facts}
  let timer = null;
  let stopped = false;
  let failing = false;

  async function openDoor(id, opener) {
    const answer = await confirmAction({ title: t("doors.openTitle", { door: id }),
      message: t("doors.openMessage", { door: id }), confirmKey: "doors.openConfirm", reason: true });
    opener.focus(); // back where the operator was, for the next door or the next open
    if (!answer) return;
    msg.info("doors.opening", { door: id });
    try {
      const result = await call("POST", `/doors/${encodeURIComponent(id)}/open`, { json: { reason: answer.reason } });
      msg.ok("doors.opened", { door: result.door, status: word("doors.result", result.status),
        time: formatTime(new Date()) });
      poll();
    } catch (err) {
      if (!err.handled) msg.error(err);
    }
  }

  function doorCard(d) {
    const facts = h("div", { "data-testid": "door-facts" });
    const node = h("section", { class: "card-box door-card", "data-testid": "door-card", "data-door": d.id },
      h("h3", {}, t("doors.door", { door: d.id })),
      facts,
      canOpen ? h("div", { class: "actions" },
        button("doors.openButton", (e) => openDoor(d.id, e.currentTarget), { "data-testid": "door-open",
          "data-door": d.id }))
        : null);
    return { node, facts };
  }

  function show(doors) {
    const ids = doors.map((d) => d.id).join("\n");
    if (ids !== [...cards.keys()].join("\n")) {
      cards.clear();
      for (const d of doors) cards.set(d.id, doorCard(d));
      replace(list, doors.length ? [...cards.values()].map((c) => c.node)
        : h("p", { class: "empty", "data-testid": "doors-empty" }, t("doors.none")));
    }
    for (const d of doors) {
      const card = cards.get(d.id);
      replace(card.facts, doorFacts(d));
      card.node.dataset.unlocked = String(d.unlocked);
      card.node.dataset.open = String(d.open);
      card.node.dataset.fire = String(d.fire_alarm);
      card.node.classList.toggle("alarm", Boolean(d.fire_alarm));
    }
  }

  async function readiness() {
    try {
      return await call("GET", "/ready");
    } catch (err) {
      if (err.status === 503 && err.body) return err.body; // not ready: the report says which device
      throw err;
    }
  }

  let busy = false;
  let again = false;
  /** One refresh now, then one every POLL_MS; a refresh asked for while one runs follows it. */
  async function poll() {
    if (stopped) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    clearTimeout(timer);
    try {
      const [doors, report] = await Promise.all([call("GET", "/doors"), readiness().catch(() => null)]);
      if (stopped) return;
      show(doors);
      if (report) replace(health, h("h3", {}, t("doors.health")), healthBox(report));
      updated.textContent = t("doors.updated", { time: formatTime(new Date()) });
      if (failing) msg.clear();
      failing = false;
    } catch (err) {
      if (stopped || err.handled) return;
      failing = true;
      msg.error(err);
    } finally {
      busy = false;
    }
    if (stopped) return;
    if (again) {
      again = false;
      poll();
    } else {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  replace(root, h("h2", {}, t("doors.heading")),
    h("p", { class: "muted" }, t(canOpen ? "doors.helpOperator" : "doors.helpViewer")),
    msg.node, updated, list, health);
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
