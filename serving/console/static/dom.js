// Building DOM nodes from data without ever parsing strings as HTML (titles, passages and
// answers come from documents: text nodes only).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  const item = h("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

export function badge(status, label) {
  return h("span", { class: `badge s-${status}`, dataset: { status } }, label);
}

// Each render of a page takes a new view id; timers and late responses of a page that is no
// longer shown check it and stop.
let viewId = 0;
export function nextView() {
  viewId += 1;
  return viewId;
}
export function isCurrent(id) {
  return id === viewId;
}
