// One message catalogue per language in /i18n/<lang>/: codes.json (reason, method, error, verdict,
// role, alert words: the server's exports read the same file) and one file per part of the page
// (town.json: the town platform's page).
// The server's `message` stays for logs; the page shows the words it finds here by code.
// Times: always in the gateway's own zone (from /me), with the zone shown.

export const LANGS = ["zh-CN", "en"];
const BUNDLES = ["codes", "page", "tenants", "ops", "town"];
const LANG_KEY = "accessgw.lang";

let lang = "zh-CN";
let words = {};
let fallback = {};
let zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

async function loadBundles(l) {
  const parts = await Promise.all(BUNDLES.map(async (b) => {
    const r = await fetch(`/i18n/${l}/${b}.json`, { cache: "no-cache" });
    return r.ok ? r.json() : {};
  }));
  return Object.assign({}, ...parts);
}

export function initialLang() {
  let saved = null;
  try {
    saved = localStorage.getItem(LANG_KEY);
  } catch (e) { /* storage may be off */ }
  if (LANGS.includes(saved)) return saved;
  return (navigator.language || "").toLowerCase().startsWith("en") ? "en" : "zh-CN";
}

export async function setLang(l) {
  lang = LANGS.includes(l) ? l : "zh-CN";
  const [mine, en] = await Promise.all([loadBundles(lang), lang === "en" ? null : loadBundles("en")]);
  words = mine;
  fallback = en || mine;
  document.documentElement.lang = lang;
  try {
    localStorage.setItem(LANG_KEY, lang);
  } catch (e) { /* ignore */ }
}

export function currentLang() {
  return lang;
}

/** t("entries.total", {n: 3}) — the word in this language, else English, else the key. */
export function t(key, args) {
  let text = key in words ? words[key] : key in fallback ? fallback[key] : key;
  if (args) {
    for (const [k, v] of Object.entries(args)) text = text.split(`{${k}}`).join(String(v));
  }
  return text;
}

export function has(key) {
  return key in words || key in fallback;
}

/** The codes of a family the catalogue knows, in its order: codes("reason") → ["granted", …]. */
export function codes(family) {
  const prefix = family + ".";
  return Object.keys(fallback).filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes("."))
    .map((k) => k.slice(prefix.length));
}

/** A code as a word: word("reason", "unknown_card") → "未登记的卡"; unknown codes show as they are. */
export function word(family, code) {
  if (code === null || code === undefined || code === "") return "";
  const key = `${family}.${code}`;
  return has(key) ? t(key) : String(code);
}

/** The words for a failed call: by its code, with the server's message only when we have no word. */
export function failureText(err) {
  if (!err) return "";
  if (err.status === 0) return t("error.network");
  const key = `error.${err.code}`;
  return has(key) ? t(key) : t("error.generic", { message: err.message || String(err) });
}

// ---- time, in the gateway's zone ---------------------------------------------------------------
export function setZone(z) {
  if (!z) return;
  try {
    new Intl.DateTimeFormat("en", { timeZone: z });
    zone = z;
  } catch (e) { /* unknown zone: keep the browser's */ }
}

export function currentZone() {
  return zone;
}

function parts(date, z = zone) {
  const f = new Intl.DateTimeFormat("en-GB", {
    timeZone: z, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23",
  });
  const out = {};
  for (const p of f.formatToParts(date)) out[p.type] = p.value;
  return out;
}

/** Minutes east of UTC in the gateway's zone at that instant. */
export function offsetMinutes(date, z = zone) {
  const p = parts(date, z);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function offsetText(minutes) {
  const a = Math.abs(minutes);
  return `${minutes >= 0 ? "+" : "-"}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** "Asia/Shanghai (UTC+08:00)" */
export function zoneLabel() {
  return `${zone} (UTC${offsetText(offsetMinutes(new Date()))})`;
}

/** An instant as "2026-11-23 08:00:05" in the gateway's zone. */
export function formatTime(iso) {
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = parts(d);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** Today's date in the gateway's zone, "2026-11-23". */
export function today() {
  const p = parts(new Date());
  return `${p.year}-${p.month}-${p.day}`;
}

/** The value for <input type=datetime-local> showing that instant in the gateway's zone. */
export function localInputValue(date) {
  const p = parts(date);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

/** A wall time typed in the gateway's zone ("2026-11-23T08:00" or "2026-11-23") as RFC 3339. */
export function wallToRfc3339(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(value || "");
  if (!m) return null;
  const [y, mo, d, hh = "00", mi = "00", ss = "00"] = m.slice(1);
  const guess = Date.UTC(+y, +mo - 1, +d, +hh, +mi, +ss);
  // The offset at the instant itself (twice: a wall time near a DST change settles on the second pass).
  let off = offsetMinutes(new Date(guess));
  off = offsetMinutes(new Date(guess - off * 60000));
  return `${y}-${mo}-${d}T${hh}:${mi}:${ss}${offsetText(off)}`;
}

/** Whole days from today (gateway zone) to an ISO date; negative when it is past. */
export function daysUntil(isoDate) {
  const a = Date.UTC(...today().split("-").map((v, i) => (i === 1 ? +v - 1 : +v)));
  const b = Date.UTC(...isoDate.split("-").map((v, i) => (i === 1 ? +v - 1 : +v)));
  return Math.round((b - a) / 86400000);
}
