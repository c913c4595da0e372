// The gateway's web page: sign in with a token, enrol tenants, suspend/revoke,
// search entries, export CSV, entries per hour. No framework and no external
// URL: it must work offline on the building's LAN. Every piece of data goes in
// through textContent or an attribute, never innerHTML.
"use strict";

(function () {
  const API = "/api/v1";
  const TOKEN_KEY = "accessgw.token";
  const LANG_KEY = "accessgw.lang";
  const MAX_PHOTOS = 5;
  const PAGE = 50;
  const TENANT_PAGE = 20;
  const TENANT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

  // ---- every label, in one dictionary ---------------------------------------------------
  const STRINGS = {
    "en": {
      "lang.name": "English",
      "lang.switch": "中文",
      "lang.switchLabel": "切换到中文 (switch to Chinese)",
      "app.title": "Access gateway",
      "signout": "Sign out",
      "whoami": "{name} ({role})",
      "role.admin": "administrator",
      "role.police": "police",
      "role.auditor": "auditor",
      "role.operator": "operator",
      "signin.heading": "Sign in",
      "signin.help": "Paste the API token an administrator gave you. It is kept only in this browser tab.",
      "signin.token": "API token",
      "signin.submit": "Sign in",
      "signin.checking": "Checking the token…",
      "signin.rejected": "This token was not accepted: it is unknown, revoked or rotated.",
      "signin.expired": "You were signed out: the token is no longer accepted (revoked, rotated or unknown). Sign in again.",
      "signin.signedOut": "Signed out.",
      "signin.tooMany": "Too many failed sign-ins from this computer; wait a minute and try again.",
      "signin.empty": "Enter a token.",
      "role.nothing": "The role {role} has nothing to do on this page; it is for administrators and police.",
      "role.policeNote": "Police can search tenants and entries; enrolment and status changes are for administrators.",
      "any": "Any",
      "search": "Search",
      "more": "More",
      "close": "Close",
      "yes": "yes",
      "no": "no",
      "enrol.heading": "Enrol a tenant",
      "enrol.id": "Tenant id",
      "enrol.id.hint": "Letters, digits, _ . - (up to 64)",
      "enrol.name": "Name",
      "enrol.permit": "Residence permit number",
      "enrol.room": "Room",
      "enrol.validFrom": "Valid from",
      "enrol.validTo": "Valid to",
      "enrol.card": "Card number (optional)",
      "enrol.photos": "Face photos (1–5, JPEG or PNG)",
      "enrol.submit": "Enrol",
      "enrol.reset": "Clear form",
      "enrol.step.create": "Create tenant {id}",
      "enrol.step.createAgain": "Tenant {id} was already created above: not created again",
      "enrol.step.card": "Bind card {card}",
      "enrol.step.cardAgain": "Card {card} was already bound above",
      "enrol.step.photos": "Check and store {n} photo(s)",
      "enrol.step.ok": "done",
      "enrol.step.running": "working…",
      "enrol.step.failed": "failed: {message}",
      "enrol.step.rejected": "rejected: see the photo checks below",
      "enrol.done": "Tenant {id} enrolled: {cards} card(s), {faces} face template(s).",
      "enrol.photosRejected": "A photo was rejected, so no photo was stored. Tenant {id} exists; choose better photos and press Enrol again to upload only the photos.",
      "enrol.err.id": "The tenant id must start with a letter or digit and use only letters, digits, _ . -",
      "enrol.err.required": "Fill in: {fields}.",
      "enrol.err.dates": "“Valid from” must not be after “valid to”.",
      "enrol.err.card": "A card number is a whole number from 0 to 4294967295.",
      "enrol.err.photos": "Choose 1 to 5 photos (you chose {n}).",
      "verdicts.caption": "Photo checks",
      "verdicts.photo": "Photo",
      "verdicts.result": "Result",
      "verdicts.reason": "Reason",
      "verdicts.detail": "Detail",
      "verdict.ok": "✓ accepted",
      "verdict.bad": "✗ rejected",
      "photoReason.ok": "ok",
      "photoReason.unreadable": "not a readable image",
      "photoReason.too_large": "too large",
      "photoReason.no_face": "no face found",
      "photoReason.multiple_faces": "more than one face",
      "photoReason.face_too_small": "face too small",
      "photoReason.too_blurry": "too blurry",
      "photoReason.not_the_same_person": "not the same person as the other photos",
      "manage.heading": "Find, suspend or revoke a tenant",
      "manage.q": "Id, name, permit or room",
      "manage.status": "Status",
      "manage.count": "{shown} of {total} tenant(s).",
      "manage.none": "No tenant matches.",
      "manage.suspend": "Suspend",
      "manage.revoke": "Revoke",
      "manage.activate": "Reactivate",
      "manage.suspendLabel": "Suspend tenant {id}",
      "manage.revokeLabel": "Revoke tenant {id}",
      "manage.activateLabel": "Reactivate tenant {id}",
      "manage.confirmRevoke": "Revoke tenant {id}? Their cards and face stop opening doors.",
      "manage.changed.active": "Tenant {id} is active again.",
      "manage.changed.suspended": "Tenant {id} is suspended.",
      "manage.changed.revoked": "Tenant {id} is revoked.",
      "status.active": "Active",
      "status.suspended": "Suspended",
      "status.revoked": "Revoked",
      "col.id": "Id",
      "col.name": "Name",
      "col.permit": "Permit",
      "col.room": "Room",
      "col.validTo": "Valid to",
      "col.cards": "Cards",
      "col.faces": "Faces",
      "col.status": "Status",
      "col.actions": "Actions",
      "col.time": "Time",
      "col.door": "Door",
      "col.method": "Method",
      "col.tenant": "Tenant",
      "col.card": "Card",
      "col.decision": "Decision",
      "col.reason": "Reason",
      "col.distance": "Face distance",
      "col.camera": "Camera",
      "col.snapshot": "Snapshot",
      "col.entryId": "Entry id",
      "entries.heading": "Search entries",
      "entries.export": "Export CSV",
      "entries.reset": "Clear filters",
      "entries.searching": "Searching…",
      "entries.count": "{n} entr(ies) shown.",
      "entries.countMore": "{n} entr(ies) shown; press More for older ones.",
      "entries.none": "No entry matches.",
      "entries.exporting": "Exporting…",
      "entries.exported": "Saved {file} ({size}).",
      "entries.err.card": "A card number is a whole number from 0 to 4294967295.",
      "entries.err.range": "“From” must be before “until”.",
      "f.since": "From",
      "f.until": "Until",
      "f.tenant": "Tenant id",
      "f.card": "Card number",
      "f.door": "Door",
      "f.method": "Method",
      "f.decision": "Decision",
      "f.reason": "Reason",
      "method.card": "Card",
      "method.face": "Face",
      "method.card_and_face": "Card and face",
      "method.remote": "Remote",
      "method.exit_button": "Exit button",
      "decision.granted": "Granted",
      "decision.denied": "Denied",
      "reason.granted": "Granted",
      "reason.unknown_card": "Unknown card",
      "reason.unknown_face": "Unknown face",
      "reason.revoked": "Revoked",
      "reason.suspended": "Suspended",
      "reason.permit_expired": "Permit expired",
      "reason.permit_not_yet_valid": "Permit not yet valid",
      "reason.face_mismatch": "Face does not match card",
      "reason.face_timeout": "No face in time",
      "reason.outside_schedule": "Outside schedule",
      "card.bits": "{bits}-bit",
      "snapshot.heading": "Snapshot",
      "snapshot.alt": "Snapshot of entry {id}",
      "snapshot.open": "Enlarge snapshot of entry {id}",
      "snapshot.loading": "loading…",
      "snapshot.missing": "not kept",
      "chart.heading": "Entries per hour",
      "chart.day": "Day",
      "chart.show": "Show",
      "chart.table": "Numbers",
      "chart.hour": "Hour",
      "chart.count": "Entries",
      "chart.loading": "Loading…",
      "chart.summary": "{day}: {total} entr(ies); busiest hour {hour}:00 with {max}.",
      "chart.empty": "{day}: no entries.",
      "chart.aria": "Bar chart of entries per hour on {day}",
      "err.network": "The gateway did not answer ({message}).",
      "err.forbidden": "Your role may not do this ({message}).",
      "err.generic": "{message}",
    },
    "zh-CN": {
      "lang.name": "中文",
      "lang.switch": "English",
      "lang.switchLabel": "Switch to English (切换到英文)",
      "app.title": "门禁网关",
      "signout": "退出登录",
      "whoami": "{name}（{role}）",
      "role.admin": "管理员",
      "role.police": "民警",
      "role.auditor": "审计员",
      "role.operator": "值班员",
      "signin.heading": "登录",
      "signin.help": "请粘贴管理员发给您的 API 令牌。令牌只保存在本浏览器标签页中。",
      "signin.token": "API 令牌",
      "signin.submit": "登录",
      "signin.checking": "正在验证令牌…",
      "signin.rejected": "令牌无效：未知、已吊销或已更换。",
      "signin.expired": "您已被登出：令牌已失效（吊销、更换或未知）。请重新登录。",
      "signin.signedOut": "已退出登录。",
      "signin.tooMany": "本机登录失败次数过多，请一分钟后再试。",
      "signin.empty": "请输入令牌。",
      "role.nothing": "角色 {role} 在本页面无可用功能；本页面供管理员和民警使用。",
      "role.policeNote": "民警可以查询租户和通行记录；登记和状态变更由管理员操作。",
      "any": "全部",
      "search": "查询",
      "more": "更多",
      "close": "关闭",
      "yes": "是",
      "no": "否",
      "enrol.heading": "登记租户",
      "enrol.id": "租户编号",
      "enrol.id.hint": "字母、数字、_ . -（最多 64 位）",
      "enrol.name": "姓名",
      "enrol.permit": "居住证号码",
      "enrol.room": "房间",
      "enrol.validFrom": "有效期起",
      "enrol.validTo": "有效期止",
      "enrol.card": "卡号（可选）",
      "enrol.photos": "人脸照片（1–5 张，JPEG 或 PNG）",
      "enrol.submit": "登记",
      "enrol.reset": "清空表单",
      "enrol.step.create": "创建租户 {id}",
      "enrol.step.createAgain": "租户 {id} 已在上次创建，不再重复创建",
      "enrol.step.card": "绑定卡 {card}",
      "enrol.step.cardAgain": "卡 {card} 已在上次绑定",
      "enrol.step.photos": "检查并保存 {n} 张照片",
      "enrol.step.ok": "完成",
      "enrol.step.running": "处理中…",
      "enrol.step.failed": "失败：{message}",
      "enrol.step.rejected": "未通过：见下方照片检查结果",
      "enrol.done": "租户 {id} 登记完成：{cards} 张卡，{faces} 个人脸模板。",
      "enrol.photosRejected": "有照片未通过检查，所有照片均未保存。租户 {id} 已创建；请换用合格的照片后再次点击“登记”，只会重新上传照片。",
      "enrol.err.id": "租户编号须以字母或数字开头，只能包含字母、数字、_ . -",
      "enrol.err.required": "请填写：{fields}。",
      "enrol.err.dates": "“有效期起”不能晚于“有效期止”。",
      "enrol.err.card": "卡号须为 0 到 4294967295 之间的整数。",
      "enrol.err.photos": "请选择 1 到 5 张照片（当前 {n} 张）。",
      "verdicts.caption": "照片检查结果",
      "verdicts.photo": "照片",
      "verdicts.result": "结果",
      "verdicts.reason": "原因",
      "verdicts.detail": "详情",
      "verdict.ok": "✓ 通过",
      "verdict.bad": "✗ 未通过",
      "photoReason.ok": "合格",
      "photoReason.unreadable": "无法读取的图片",
      "photoReason.too_large": "文件过大",
      "photoReason.no_face": "未检测到人脸",
      "photoReason.multiple_faces": "不止一张人脸",
      "photoReason.face_too_small": "人脸太小",
      "photoReason.too_blurry": "照片太模糊",
      "photoReason.not_the_same_person": "与其他照片不是同一人",
      "manage.heading": "查找、暂停或吊销租户",
      "manage.q": "编号、姓名、证号或房间",
      "manage.status": "状态",
      "manage.count": "显示 {shown} / 共 {total} 名租户。",
      "manage.none": "没有匹配的租户。",
      "manage.suspend": "暂停",
      "manage.revoke": "吊销",
      "manage.activate": "恢复",
      "manage.suspendLabel": "暂停租户 {id}",
      "manage.revokeLabel": "吊销租户 {id}",
      "manage.activateLabel": "恢复租户 {id}",
      "manage.confirmRevoke": "确定吊销租户 {id}？其门卡和人脸将不能再开门。",
      "manage.changed.active": "租户 {id} 已恢复正常。",
      "manage.changed.suspended": "租户 {id} 已暂停。",
      "manage.changed.revoked": "租户 {id} 已吊销。",
      "status.active": "正常",
      "status.suspended": "已暂停",
      "status.revoked": "已吊销",
      "col.id": "编号",
      "col.name": "姓名",
      "col.permit": "证号",
      "col.room": "房间",
      "col.validTo": "有效期止",
      "col.cards": "卡号",
      "col.faces": "人脸",
      "col.status": "状态",
      "col.actions": "操作",
      "col.time": "时间",
      "col.door": "门",
      "col.method": "方式",
      "col.tenant": "租户",
      "col.card": "卡号",
      "col.decision": "结果",
      "col.reason": "原因",
      "col.distance": "人脸距离",
      "col.camera": "摄像机",
      "col.snapshot": "抓拍",
      "col.entryId": "记录编号",
      "entries.heading": "查询通行记录",
      "entries.export": "导出 CSV",
      "entries.reset": "清空条件",
      "entries.searching": "查询中…",
      "entries.count": "已显示 {n} 条记录。",
      "entries.countMore": "已显示 {n} 条记录；点击“更多”查看更早的记录。",
      "entries.none": "没有匹配的记录。",
      "entries.exporting": "导出中…",
      "entries.exported": "已保存 {file}（{size}）。",
      "entries.err.card": "卡号须为 0 到 4294967295 之间的整数。",
      "entries.err.range": "“开始时间”须早于“结束时间”。",
      "f.since": "开始时间",
      "f.until": "结束时间",
      "f.tenant": "租户编号",
      "f.card": "卡号",
      "f.door": "门",
      "f.method": "方式",
      "f.decision": "结果",
      "f.reason": "原因",
      "method.card": "刷卡",
      "method.face": "人脸",
      "method.card_and_face": "卡+人脸",
      "method.remote": "远程开门",
      "method.exit_button": "出门按钮",
      "decision.granted": "通过",
      "decision.denied": "拒绝",
      "reason.granted": "通过",
      "reason.unknown_card": "未登记的卡",
      "reason.unknown_face": "未登记的人脸",
      "reason.revoked": "已吊销",
      "reason.suspended": "已暂停",
      "reason.permit_expired": "居住证已过期",
      "reason.permit_not_yet_valid": "居住证尚未生效",
      "reason.face_mismatch": "人脸与卡不符",
      "reason.face_timeout": "未及时识别人脸",
      "reason.outside_schedule": "不在允许时段",
      "card.bits": "{bits} 位",
      "snapshot.heading": "抓拍",
      "snapshot.alt": "记录 {id} 的抓拍",
      "snapshot.open": "放大记录 {id} 的抓拍",
      "snapshot.loading": "加载中…",
      "snapshot.missing": "未保留",
      "chart.heading": "每小时通行量",
      "chart.day": "日期",
      "chart.show": "显示",
      "chart.table": "数据",
      "chart.hour": "小时",
      "chart.count": "通行次数",
      "chart.loading": "加载中…",
      "chart.summary": "{day}：共 {total} 次通行；最多在 {hour}:00，{max} 次。",
      "chart.empty": "{day}：没有通行记录。",
      "chart.aria": "{day} 每小时通行量柱状图",
      "err.network": "网关没有响应（{message}）。",
      "err.forbidden": "您的角色无权执行此操作（{message}）。",
      "err.generic": "{message}",
    },
  };

  let lang = "en";

  function t(key, args) {
    const table = STRINGS[lang] || STRINGS.en;
    let text = key in table ? table[key] : (key in STRINGS.en ? STRINGS.en[key] : key);
    if (args) {
      text = text.replace(/\{(\w+)\}/g, (m, name) => (name in args ? String(args[name]) : m));
    }
    return text;
  }

  // Label an element with a dictionary key: translated now and on every language switch.
  function tr(el, key, args) {
    el.dataset.i18n = key;
    if (args) el.dataset.i18nArgs = JSON.stringify(args);
    else delete el.dataset.i18nArgs;
    el.textContent = t(key, args);
    return el;
  }

  // A label for a code from the API (reason, status…): the raw code if the dictionary lacks it.
  function codeLabel(el, prefix, code) {
    el.dataset.code = code;
    const key = prefix + code;
    if (key in STRINGS.en) return tr(el, key);
    delete el.dataset.i18n;
    el.textContent = code;
    return el;
  }

  function argsOf(el) {
    try {
      return el.dataset.i18nArgs ? JSON.parse(el.dataset.i18nArgs) : undefined;
    } catch (e) {
      return undefined;
    }
  }

  function applyLang() {
    document.documentElement.lang = lang;
    document.title = t("app.title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n, argsOf(el));
    for (const el of document.querySelectorAll("[data-i18n-aria]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAria, el.dataset.i18nAriaArgs ? JSON.parse(el.dataset.i18nAriaArgs) : undefined));
    }
    for (const el of document.querySelectorAll("[data-i18n-alt]")) {
      el.alt = t(el.dataset.i18nAlt, el.dataset.i18nAltArgs ? JSON.parse(el.dataset.i18nAltArgs) : undefined);
    }
    const toggle = $("lang-toggle");
    toggle.textContent = t("lang.switch");
    toggle.setAttribute("aria-label", t("lang.switchLabel"));
    toggle.lang = lang === "en" ? "zh-CN" : "en";
    updateWhoami();
    if (chartState.counts) drawChart();
  }

  function ariaLabel(el, key, args) {
    el.dataset.i18nAria = key;
    if (args) el.dataset.i18nAriaArgs = JSON.stringify(args);
    el.setAttribute("aria-label", t(key, args));
  }

  function altText(img, key, args) {
    img.dataset.i18nAlt = key;
    if (args) img.dataset.i18nAltArgs = JSON.stringify(args);
    img.alt = t(key, args);
  }

  function initialLang() {
    let saved = null;
    try {
      saved = localStorage.getItem(LANG_KEY);
    } catch (e) { /* storage may be off */ }
    if (saved && saved in STRINGS) return saved;
    const nav = (navigator.language || "").toLowerCase();
    return nav.startsWith("zh") ? "zh-CN" : "en";
  }

  // ---- small DOM helpers ------------------------------------------------------------------
  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null) continue;
        if (k === "class") node.className = v;
        else if (k.startsWith("data-")) node.setAttribute(k, String(v));
        else node.setAttribute(k, String(v));
      }
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(node, on) {
    node.hidden = !on;
  }

  function setMsg(node, key, args, kind) {
    node.classList.remove("error", "ok");
    if (kind) node.classList.add(kind);
    if (!key) {
      delete node.dataset.i18n;
      node.textContent = "";
      return;
    }
    tr(node, key, args);
  }

  function errorMsg(node, err) {
    const { key, args } = describe(err);
    setMsg(node, key, args, "error");
  }

  function describe(err) {
    if (err && err.status === 0) return { key: "err.network", args: { message: err.message } };
    if (err && err.status === 403) return { key: "err.forbidden", args: { message: err.message } };
    return { key: "err.generic", args: { message: (err && err.message) || String(err) } };
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function localDay(d) {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  function formatTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${localDay(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // A datetime-local value ("2026-11-23T08:00[:ss]") as RFC 3339 with this browser's offset.
  function withOffset(value) {
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return null;
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const abs = Math.abs(off);
    return `${localDay(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
      `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }

  function humanSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  }

  function cardNumber(text) {
    if (!/^[0-9]{1,10}$/.test(text)) return null;
    const n = Number(text);
    return n <= 0xFFFFFFFF ? n : null;
  }

  // ---- the API ----------------------------------------------------------------------------
  class ApiFailure extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.status = status;
      this.code = code;
      this.body = body;
    }
  }

  let token = null;
  let me = null;

  async function call(method, path, opts) {
    opts = opts || {};
    const headers = {};
    const useToken = opts.token !== undefined ? opts.token : token;
    if (useToken) headers["Authorization"] = "Bearer " + useToken;
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.form !== undefined) {
      body = opts.form; // FormData: the browser sets the multipart boundary
    }
    let url = API + path;
    if (opts.query && String(opts.query)) url += "?" + opts.query.toString();
    let response;
    try {
      response = await fetch(url, { method, headers, body, cache: "no-store" });
    } catch (e) {
      throw new ApiFailure(0, "network", e && e.message ? e.message : String(e));
    }
    if (response.ok) {
      if (opts.raw) return response;
      if (response.status === 204) return null;
      return response.json();
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (e) { /* not JSON */ }
    const error = payload && payload.error ? payload.error : {};
    const failure = new ApiFailure(response.status, error.code || "http_" + response.status,
      error.message || response.statusText || "HTTP " + response.status, payload);
    if (response.status === 401 && !opts.signingIn) {
      signOut("signin.expired");
      failure.handled = true;
    }
    throw failure;
  }

  // ---- sign in / out --------------------------------------------------------------------
  function updateWhoami() {
    const who = $("whoami");
    if (!me) {
      who.textContent = "";
      show(who, false);
      return;
    }
    const roleKey = "role." + me.role;
    who.textContent = t("whoami", { name: me.name, role: roleKey in STRINGS.en ? t(roleKey) : me.role });
    who.dataset.role = me.role;
    show(who, true);
  }

  function applyRole() {
    const role = me.role;
    let visible = 0;
    for (const section of document.querySelectorAll("[data-roles]")) {
      const on = section.dataset.roles.split(" ").includes(role);
      show(section, on);
      if (on) visible += 1;
    }
    const msg = $("role-msg");
    if (visible === 0) {
      setMsg(msg, "role.nothing", { role });
      show(msg, true);
    } else if (role === "police") {
      setMsg(msg, "role.policeNote");
      show(msg, true);
    } else {
      show(msg, false);
    }
  }

  function enterApp(who) {
    me = who;
    updateWhoami();
    show($("signin"), false);
    show($("app"), true);
    show($("sign-out"), true);
    setMsg($("signin-msg"), null);
    show($("signin-msg"), false);
    applyRole();
    if (!$("chart-day").value) $("chart-day").value = localDay(new Date());
  }

  function signOut(messageKey) {
    token = null;
    me = null;
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* ignore */ }
    resetData();
    updateWhoami();
    show($("app"), false);
    show($("sign-out"), false);
    show($("signin"), true);
    const msg = $("signin-msg");
    if (messageKey) {
      setMsg(msg, messageKey, undefined, messageKey === "signin.signedOut" ? "ok" : "error");
      show(msg, true);
    } else {
      show(msg, false);
    }
    $("token-input").value = "";
    $("token-input").focus();
  }

  function resetData() {
    revokeSnapshots();
    clear($("entries-body"));
    show($("entries-table"), false);
    show($("entries-more"), false);
    entriesState.cursor = null;
    entriesState.query = null;
    setMsg($("entries-msg"), null);
    clear($("tenants-body"));
    show($("tenants-table"), false);
    show($("tenants-more"), false);
    setMsg($("manage-msg"), null);
    clear($("enrol-steps"));
    clear($("enrol-problems"));
    outcome(null);
    clear($("verdicts-body"));
    show($("verdicts"), false);
    enrolState.tenantId = null;
    enrolState.card = null;
    chartState.counts = null;
    chartState.day = null;
    clear($("chart-body"));
    setMsg($("chart-msg"), null);
    const canvas = $("chart-canvas");
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }

  async function signIn(candidate) {
    const msg = $("signin-msg");
    setMsg(msg, "signin.checking");
    show(msg, true);
    try {
      const who = await call("GET", "/me", { token: candidate, signingIn: true });
      token = candidate;
      try {
        sessionStorage.setItem(TOKEN_KEY, candidate);
      } catch (e) { /* the tab keeps it in memory anyway */ }
      enterApp(who);
    } catch (err) {
      if (err.status === 401) setMsg(msg, "signin.rejected", undefined, "error");
      else if (err.status === 429) setMsg(msg, "signin.tooMany", undefined, "error");
      else errorMsg(msg, err);
      show(msg, true);
      $("token-input").focus();
    }
  }

  // ---- enrolment --------------------------------------------------------------------------
  const enrolState = { tenantId: null, card: null };

  function stepItem(testid, key, args) {
    const li = el("li", { "data-testid": testid, "class": "step" });
    const label = tr(el("span", { "class": "step-label" }), key, args);
    const state = el("span", { "class": "step-state", "data-testid": testid + "-state" });
    li.append(label, " — ", state);
    $("enrol-steps").append(li);
    return {
      set(stateName, msgKey, msgArgs) {
        li.dataset.state = stateName;
        tr(state, msgKey, msgArgs);
      },
    };
  }

  function renderVerdicts(verdicts) {
    const body = $("verdicts-body");
    clear(body);
    for (const v of verdicts) {
      const row = el("tr", { "data-testid": "verdict-row", "data-ok": v.ok ? "true" : "false", "class": v.ok ? "ok" : "bad" });
      row.append(
        el("td", { "data-testid": "verdict-name" }, v.name),
        tr(el("td", { "data-testid": "verdict-result" }), v.ok ? "verdict.ok" : "verdict.bad"),
        codeLabel(el("td", { "data-testid": "verdict-reason", "data-reason": v.reason }), "photoReason.", v.reason),
        el("td", { "data-testid": "verdict-detail" }, v.detail),
      );
      body.append(row);
    }
    show($("verdicts"), verdicts.length > 0);
  }

  function markInvalid(ids) {
    for (const id of ["enrol-id", "enrol-name", "enrol-permit", "enrol-valid-from", "enrol-valid-to", "enrol-card", "enrol-photos"]) {
      $(id).removeAttribute("aria-invalid");
    }
    for (const id of ids) $(id).setAttribute("aria-invalid", "true");
    if (ids.length) $(ids[0]).focus();
  }

  function validateEnrol() {
    const v = {
      id: $("enrol-id").value.trim(),
      name: $("enrol-name").value.trim(),
      permit: $("enrol-permit").value.trim(),
      room: $("enrol-room").value.trim(),
      validFrom: $("enrol-valid-from").value,
      validTo: $("enrol-valid-to").value,
      cardText: $("enrol-card").value.trim(),
      photos: Array.from($("enrol-photos").files || []),
    };
    const missing = [];
    const bad = [];
    for (const [id, key, value] of [["enrol-id", "enrol.id", v.id], ["enrol-name", "enrol.name", v.name],
      ["enrol-permit", "enrol.permit", v.permit], ["enrol-valid-to", "enrol.validTo", v.validTo]]) {
      if (!value) {
        missing.push(t(key));
        bad.push(id);
      }
    }
    const problems = [];
    if (missing.length) problems.push(["enrol.err.required", { fields: missing.join(lang === "en" ? ", " : "、") }]);
    if (v.id && !(TENANT_ID_RE.test(v.id) && v.id.length <= 64)) {
      problems.push(["enrol.err.id"]);
      bad.push("enrol-id");
    }
    if (v.validFrom && v.validTo && v.validFrom > v.validTo) {
      problems.push(["enrol.err.dates"]);
      bad.push("enrol-valid-from");
    }
    v.card = null;
    if (v.cardText) {
      v.card = cardNumber(v.cardText);
      if (v.card === null) {
        problems.push(["enrol.err.card"]);
        bad.push("enrol-card");
      }
    }
    if (v.photos.length < 1 || v.photos.length > MAX_PHOTOS) {
      problems.push(["enrol.err.photos", { n: v.photos.length }]);
      bad.push("enrol-photos");
    }
    return { values: v, problems, bad };
  }

  async function enrol(event) {
    event.preventDefault();
    clear($("enrol-steps"));
    clear($("enrol-problems"));
    outcome(null);
    renderVerdicts([]);
    const { values: v, problems, bad } = validateEnrol();
    markInvalid(bad);
    if (problems.length) {
      for (const [key, args] of problems) {
        $("enrol-problems").append(tr(el("li", { "data-testid": "enrol-problem" }), key, args));
      }
      return;
    }
    const submit = $("enrol-submit");
    submit.disabled = true;
    try {
      // 1. the tenant (once: a retry after rejected photos only uploads photos again)
      const again = enrolState.tenantId === v.id;
      const create = stepItem("step-create", again ? "enrol.step.createAgain" : "enrol.step.create", { id: v.id });
      if (again) {
        create.set("ok", "enrol.step.ok");
      } else {
        enrolState.tenantId = null;
        enrolState.card = null;
        create.set("running", "enrol.step.running");
        const body = { id: v.id, name: v.name, permit_number: v.permit, valid_to: v.validTo };
        if (v.validFrom) body.valid_from = v.validFrom;
        if (v.room) body.room = v.room;
        try {
          await call("POST", "/tenants", { json: body });
        } catch (err) {
          create.set("failed", "enrol.step.failed", { message: describeText(err) });
          return;
        }
        enrolState.tenantId = v.id;
        create.set("ok", "enrol.step.ok");
      }
      // 2. the card
      let cards = 0;
      if (v.card !== null) {
        const cardAgain = again && enrolState.card === v.card;
        const cardStep = stepItem("step-card", cardAgain ? "enrol.step.cardAgain" : "enrol.step.card", { card: v.card });
        if (!cardAgain) {
          cardStep.set("running", "enrol.step.running");
          try {
            await call("POST", `/tenants/${encodeURIComponent(v.id)}/cards`, { json: { number: v.card } });
          } catch (err) {
            cardStep.set("failed", "enrol.step.failed", { message: describeText(err) });
            return;
          }
          enrolState.card = v.card;
        }
        cardStep.set("ok", "enrol.step.ok");
        cards = 1;
      }
      // 3. the photos: every verdict shown, stored or not
      const photoStep = stepItem("step-photos", "enrol.step.photos", { n: v.photos.length });
      photoStep.set("running", "enrol.step.running");
      const form = new FormData();
      for (const file of v.photos) form.append("photos", file, file.name);
      let result;
      try {
        result = await call("POST", `/tenants/${encodeURIComponent(v.id)}/faces`, { form });
      } catch (err) {
        const verdicts = err.body && err.body.error && err.body.error.verdicts;
        if (verdicts) photoStep.set("failed", "enrol.step.rejected");
        else photoStep.set("failed", "enrol.step.failed", { message: describeText(err) });
        if (verdicts) {
          renderVerdicts(verdicts);
          outcome("error", "enrol.photosRejected", { id: v.id });
        }
        return;
      }
      photoStep.set("ok", "enrol.step.ok");
      renderVerdicts(result.verdicts);
      outcome("ok", "enrol.done", { id: v.id, cards, faces: result.stored });
      enrolState.tenantId = null;
      enrolState.card = null;
      $("enrol-form").reset();
    } finally {
      submit.disabled = false;
    }
  }

  function outcome(kind, key, args) {
    const p = $("enrol-outcome");
    setMsg(p, key, args, kind);
    p.dataset.state = kind || "";
    show(p, Boolean(key));
  }

  function describeText(err) {
    const { key, args } = describe(err);
    return t(key, args);
  }

  const previewUrls = [];

  function showPreviews() {
    const list = $("enrol-previews");
    while (previewUrls.length) URL.revokeObjectURL(previewUrls.pop());
    clear(list);
    for (const file of Array.from($("enrol-photos").files || [])) {
      const url = URL.createObjectURL(file);
      previewUrls.push(url);
      const li = el("li", { "data-testid": "enrol-preview" });
      const img = el("img", { src: url, alt: file.name, width: "72", height: "72" });
      li.append(img, el("span", null, file.name));
      list.append(li);
    }
  }

  // ---- tenants: search, suspend, revoke ---------------------------------------------------------
  const tenantsState = { query: null, offset: 0, total: 0, shown: 0 };

  function tenantRow(tn) {
    const row = el("tr", { "data-testid": "tenant-row", "data-tenant-id": tn.id, "data-status": tn.status });
    const status = codeLabel(el("td", { "data-testid": "tenant-status" }), "status.", tn.status);
    status.className = "status-" + tn.status;
    const actions = el("td", { "class": "row-actions" });
    if (me && me.role === "admin") {
      const buttons = [];
      if (tn.status === "active") buttons.push(["suspend", "suspend-btn"]);
      if (tn.status !== "active") buttons.push(["activate", "activate-btn"]);
      if (tn.status !== "revoked") buttons.push(["revoke", "revoke-btn"]);
      for (const [action, testid] of buttons) {
        const b = el("button", { type: "button", "data-testid": testid, "data-action": action, "class": action === "revoke" ? "danger small" : "secondary small" });
        tr(b, "manage." + action);
        ariaLabel(b, `manage.${action}Label`, { id: tn.id });
        b.addEventListener("click", () => changeStatus(tn, action, row));
        actions.append(b);
      }
    }
    row.append(
      el("td", { "data-testid": "tenant-id" }, tn.id),
      el("td", null, tn.name),
      el("td", null, tn.permit_number),
      el("td", null, tn.room || ""),
      el("td", null, tn.valid_to),
      el("td", null, (tn.cards || []).join(", ")),
      el("td", null, tn.face_templates),
      status,
      actions,
    );
    return row;
  }

  async function changeStatus(tn, action, row) {
    const msg = $("manage-msg");
    if (action === "revoke" && !window.confirm(t("manage.confirmRevoke", { id: tn.id }))) return;
    for (const b of row.querySelectorAll("button")) b.disabled = true;
    try {
      const updated = await call("POST", `/tenants/${encodeURIComponent(tn.id)}/${action}`);
      const fresh = tenantRow(updated);
      row.replaceWith(fresh);
      setMsg(msg, "manage.changed." + updated.status, { id: updated.id }, "ok");
    } catch (err) {
      if (!err.handled) errorMsg(msg, err);
      for (const b of row.querySelectorAll("button")) b.disabled = false;
    }
  }

  async function searchTenants(append) {
    const msg = $("manage-msg");
    if (!append) {
      tenantsState.query = new URLSearchParams();
      const q = $("manage-q").value.trim();
      const status = $("manage-status").value;
      if (q) tenantsState.query.set("q", q);
      if (status) tenantsState.query.set("status", status);
      tenantsState.offset = 0;
      tenantsState.shown = 0;
    }
    const query = new URLSearchParams(tenantsState.query);
    query.set("limit", String(TENANT_PAGE));
    query.set("offset", String(tenantsState.offset));
    try {
      const page = await call("GET", "/tenants", { query });
      const body = $("tenants-body");
      if (!append) clear(body);
      for (const tn of page.items) body.append(tenantRow(tn));
      tenantsState.offset += page.items.length;
      tenantsState.shown += page.items.length;
      tenantsState.total = page.total;
      show($("tenants-table"), tenantsState.shown > 0);
      show($("tenants-more"), tenantsState.shown < page.total && page.items.length > 0);
      if (page.total === 0) setMsg(msg, "manage.none");
      else setMsg(msg, "manage.count", { shown: tenantsState.shown, total: page.total });
    } catch (err) {
      if (!err.handled) errorMsg(msg, err);
    }
  }

  // ---- entries ------------------------------------------------------------------------------
  const entriesState = { query: null, cursor: null, count: 0 };
  const snapshotUrls = new Map(); // entry id -> object URL
  let snapshotQueue = [];
  let snapshotActive = 0;
  let snapshotGeneration = 0;

  function revokeSnapshots() {
    snapshotGeneration += 1;
    snapshotQueue = [];
    for (const url of snapshotUrls.values()) URL.revokeObjectURL(url);
    snapshotUrls.clear();
  }

  // The filters of the form, as query parameters; null (and a message) when one is wrong.
  function entryFilters() {
    const msg = $("entries-msg");
    const q = new URLSearchParams();
    const since = $("f-since").value;
    const until = $("f-until").value;
    for (const id of ["f-since", "f-until", "f-card"]) $(id).removeAttribute("aria-invalid");
    if (since) q.set("since", withOffset(since));
    if (until) q.set("until", withOffset(until));
    if (since && until && new Date(since) >= new Date(until)) {
      $("f-since").setAttribute("aria-invalid", "true");
      setMsg(msg, "entries.err.range", undefined, "error");
      return null;
    }
    const tenant = $("f-tenant").value.trim();
    if (tenant) q.set("tenant_id", tenant);
    const cardText = $("f-card").value.trim();
    if (cardText) {
      const n = cardNumber(cardText);
      if (n === null) {
        $("f-card").setAttribute("aria-invalid", "true");
        setMsg(msg, "entries.err.card", undefined, "error");
        return null;
      }
      q.set("card_number", String(n));
    }
    const door = $("f-door").value.trim();
    if (door) q.set("door", door);
    for (const [id, name] of [["f-method", "method"], ["f-decision", "decision"], ["f-reason", "reason"]]) {
      const value = $(id).value;
      if (value) q.set(name, value);
    }
    return q;
  }

  function entryRow(e) {
    const row = el("tr", {
      "data-testid": "entry-row", "data-entry-id": e.id, "data-tenant-id": e.tenant_id || "",
      "data-decision": e.decision, "data-method": e.method, "data-reason": e.reason, "class": "decision-" + e.decision,
    });
    const time = el("td", { "data-testid": "entry-time" });
    time.append(el("time", { datetime: e.ts, title: e.ts }, formatTime(e.ts)));
    const card = el("td", { "data-testid": "entry-card" });
    if (e.card_number !== null && e.card_number !== undefined) {
      card.append(String(e.card_number));
      if (e.card_bits) card.append(" ", tr(el("small"), "card.bits", { bits: e.card_bits }));
    }
    const decision = codeLabel(el("td", { "data-testid": "entry-decision" }), "decision.", e.decision);
    const badge = decision;
    badge.classList.add("badge", "badge-" + e.decision);
    const idCell = el("td", { "data-testid": "entry-id" });
    idCell.append(el("code", null, e.id));
    const snap = el("td", { "data-testid": "entry-snapshot" });
    if (e.snapshot) loadThumb(e.id, snap);
    row.append(
      time,
      el("td", { "data-testid": "entry-door" }, e.door),
      codeLabel(el("td", { "data-testid": "entry-method" }), "method.", e.method),
      el("td", { "data-testid": "entry-tenant" }, e.tenant_id || "—"),
      card,
      decision,
      codeLabel(el("td", { "data-testid": "entry-reason" }), "reason.", e.reason),
      el("td", null, typeof e.face_distance === "number" ? e.face_distance.toFixed(3) : ""),
      el("td", null, e.camera || ""),
      snap,
      idCell,
    );
    return row;
  }

  function loadThumb(entryId, cell) {
    const placeholder = tr(el("span", { "class": "muted" }), "snapshot.loading");
    cell.append(placeholder);
    snapshotQueue.push({ entryId, cell, placeholder, generation: snapshotGeneration });
    pumpSnapshots();
  }

  function pumpSnapshots() {
    while (snapshotActive < 3 && snapshotQueue.length) {
      const job = snapshotQueue.shift();
      snapshotActive += 1;
      fetchThumb(job).finally(() => {
        snapshotActive -= 1;
        pumpSnapshots();
      });
    }
  }

  async function fetchThumb(job) {
    let url = snapshotUrls.get(job.entryId);
    try {
      if (!url) {
        const response = await call("GET", `/entries/${encodeURIComponent(job.entryId)}/snapshot`, { raw: true });
        const blob = await response.blob();
        if (job.generation !== snapshotGeneration) return;
        url = URL.createObjectURL(blob);
        snapshotUrls.set(job.entryId, url);
      }
    } catch (err) {
      if (job.generation === snapshotGeneration) tr(job.placeholder, "snapshot.missing");
      return;
    }
    const button = el("button", { type: "button", "class": "thumb", "data-testid": "snapshot-open" });
    ariaLabel(button, "snapshot.open", { id: job.entryId });
    const img = el("img", { src: url, "data-testid": "snapshot-thumb", width: "64", height: "48" });
    altText(img, "snapshot.alt", { id: job.entryId });
    button.append(img);
    button.addEventListener("click", () => {
      const big = $("snapshot-large");
      big.src = url;
      altText(big, "snapshot.alt", { id: job.entryId });
      $("snapshot-dialog").showModal();
    });
    job.placeholder.replaceWith(button);
  }

  async function searchEntries(append) {
    const msg = $("entries-msg");
    if (!append) {
      const q = entryFilters();
      if (q === null) return;
      entriesState.query = q;
      entriesState.cursor = null;
      entriesState.count = 0;
    }
    const query = new URLSearchParams(entriesState.query);
    query.set("limit", String(PAGE));
    if (append && entriesState.cursor) query.set("cursor", entriesState.cursor);
    setMsg(msg, "entries.searching");
    const more = $("entries-more");
    more.disabled = true;
    try {
      const page = await call("GET", "/entries", { query });
      const body = $("entries-body");
      if (!append) {
        revokeSnapshots();
        clear(body);
      }
      for (const e of page.items) body.append(entryRow(e));
      entriesState.count += page.items.length;
      entriesState.cursor = page.next_cursor;
      show($("entries-table"), entriesState.count > 0);
      show(more, Boolean(page.next_cursor));
      if (entriesState.count === 0) setMsg(msg, "entries.none");
      else setMsg(msg, page.next_cursor ? "entries.countMore" : "entries.count", { n: entriesState.count });
    } catch (err) {
      if (!err.handled) errorMsg(msg, err);
    } finally {
      more.disabled = false;
    }
  }

  async function exportCsv() {
    const msg = $("entries-msg");
    const q = entryFilters();
    if (q === null) return;
    const button = $("f-export");
    button.disabled = true;
    setMsg(msg, "entries.exporting");
    try {
      const response = await call("GET", "/entries.csv", { query: q, raw: true });
      const blob = await response.blob();
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename="?([^";]+)"?/.exec(disposition);
      const name = match ? match[1] : `entries-${localDay(new Date())}.csv`;
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: name, hidden: "" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setMsg(msg, "entries.exported", { file: name, size: humanSize(blob.size) }, "ok");
    } catch (err) {
      if (!err.handled) errorMsg(msg, err);
    } finally {
      button.disabled = false;
    }
  }

  // ---- entries per hour: a bar chart drawn on the canvas ----------------------------------------
  const chartState = { day: null, counts: null };

  async function loadChart() {
    const msg = $("chart-msg");
    const day = $("chart-day").value;
    if (!day) {
      $("chart-day").focus();
      return;
    }
    setMsg(msg, "chart.loading");
    try {
      const data = await call("GET", "/entries/per-hour", { query: new URLSearchParams({ day }) });
      chartState.day = data.day;
      chartState.counts = data.counts;
      const body = $("chart-body");
      clear(body);
      data.counts.forEach((n, hour) => {
        const row = el("tr", { "data-testid": "chart-row", "data-hour": hour, "data-count": n });
        row.append(el("td", null, `${pad(hour)}:00`), el("td", null, n));
        body.append(row);
      });
      const total = data.counts.reduce((a, b) => a + b, 0);
      const max = Math.max(...data.counts);
      if (total === 0) setMsg(msg, "chart.empty", { day: data.day });
      else setMsg(msg, "chart.summary", { day: data.day, total, hour: pad(data.counts.indexOf(max)), max });
      msg.dataset.total = String(total);
      drawChart();
    } catch (err) {
      if (!err.handled) errorMsg(msg, err);
    }
  }

  function niceStep(max) {
    if (max <= 5) return 1;
    const raw = max / 5;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }

  function drawChart() {
    const canvas = $("chart-canvas");
    const counts = chartState.counts;
    if (!counts) return;
    const css = getComputedStyle(document.documentElement);
    const color = (name, fallback) => (css.getPropertyValue(name) || fallback).trim();
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(320, canvas.clientWidth || 960);
    const height = 280;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 44, right = 12, top = 16, bottom = 36;
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const max = Math.max(1, ...counts);
    const step = niceStep(max);
    const yMax = Math.ceil(max / step) * step;
    const font = getComputedStyle(document.body).fontFamily;
    ctx.font = `12px ${font}`;
    // grid and y labels
    ctx.strokeStyle = color("--grid", "#ddd");
    ctx.fillStyle = color("--muted", "#666");
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = 0; v <= yMax; v += step) {
      const y = top + plotH - (v / yMax) * plotH;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(left + plotW, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(String(v), left - 6, y);
    }
    // bars and x labels
    const slot = plotW / 24;
    const barW = Math.max(2, slot * 0.7);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    counts.forEach((n, hour) => {
      const x = left + hour * slot + (slot - barW) / 2;
      const h = (n / yMax) * plotH;
      ctx.fillStyle = color("--accent", "#1f6feb");
      if (n > 0) ctx.fillRect(x, top + plotH - h, barW, h);
      if (n > 0 && h > 14 && barW >= 14) {
        ctx.fillStyle = color("--on-accent", "#fff");
        ctx.fillText(String(n), x + barW / 2, top + plotH - h + 2);
      } else if (n > 0) {
        ctx.fillStyle = color("--fg", "#222");
        ctx.textBaseline = "bottom";
        ctx.fillText(String(n), x + barW / 2, top + plotH - h - 2);
        ctx.textBaseline = "top";
      }
      if (hour % (slot < 22 ? 2 : 1) === 0) {
        ctx.fillStyle = color("--muted", "#666");
        ctx.fillText(pad(hour), left + hour * slot + slot / 2, top + plotH + 6);
      }
    });
    ctx.fillStyle = color("--muted", "#666");
    ctx.textAlign = "right";
    ctx.fillText(t("chart.hour"), left + plotW, top + plotH + 20);
    ariaLabel(canvas, "chart.aria", { day: chartState.day });
  }

  // ---- wiring -------------------------------------------------------------------------------
  function wire() {
    $("lang-toggle").addEventListener("click", () => {
      lang = lang === "en" ? "zh-CN" : "en";
      try {
        localStorage.setItem(LANG_KEY, lang);
      } catch (e) { /* ignore */ }
      applyLang();
    });
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const candidate = $("token-input").value.trim();
      if (!candidate) {
        setMsg($("signin-msg"), "signin.empty", undefined, "error");
        show($("signin-msg"), true);
        return;
      }
      signIn(candidate);
    });
    $("sign-out").addEventListener("click", () => signOut("signin.signedOut"));
    $("enrol-form").addEventListener("submit", enrol);
    $("enrol-form").addEventListener("reset", () => {
      setTimeout(showPreviews, 0);
      markInvalid([]);
    });
    $("enrol-photos").addEventListener("change", showPreviews);
    $("manage-form").addEventListener("submit", (event) => {
      event.preventDefault();
      searchTenants(false);
    });
    $("tenants-more").addEventListener("click", () => searchTenants(true));
    $("entries-form").addEventListener("submit", (event) => {
      event.preventDefault();
      searchEntries(false);
    });
    $("entries-form").addEventListener("reset", () => setTimeout(() => setMsg($("entries-msg"), null), 0));
    $("entries-more").addEventListener("click", () => searchEntries(true));
    $("f-export").addEventListener("click", exportCsv);
    $("chart-form").addEventListener("submit", (event) => {
      event.preventDefault();
      loadChart();
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(drawChart, 150);
    });
  }

  function start() {
    lang = initialLang();
    wire();
    applyLang();
    let saved = null;
    try {
      saved = sessionStorage.getItem(TOKEN_KEY);
    } catch (e) { /* ignore */ }
    if (saved) {
      show($("signin"), false);
      call("GET", "/me", { token: saved, signingIn: true })
        .then((who) => {
          token = saved;
          enterApp(who);
        })
        .catch((err) => {
          if (err.status === 401) signOut("signin.expired");
          else {
            signOut(null);
            errorMsg($("signin-msg"), err);
            show($("signin-msg"), true);
          }
        });
    } else {
      signOut(null);
    }
  }

  start();
  document.body.dataset.ready = "true";
})();
