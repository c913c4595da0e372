// Building DOM nodes without innerHTML: every piece of data goes in as text or an attribute,
// so a name like "<img onerror=…>" stays a name.

const PROPS = new Set(["hidden", "disabled", "checked", "required", "value", "selected", "multiple", "open"]);

/** h("button", {class: "x", onclick: fn, "data-testid": "y"}, "text", child, [more]) */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (PROPS.has(k)) node[k] = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

let nextId = 0;
/** A fresh id for pairing a <label for> with its input. */
export function uid(prefix = "f") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}
