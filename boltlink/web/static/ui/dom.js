// Every element of the UI is built here from data. Text always becomes a text
// node and is never parsed as HTML (the page's Trusted Types policy would
// refuse any HTML sink anyway), so a link title like "<script>" stays text.

const SVG_NS = "http://www.w3.org/2000/svg";
const SAFE_PROTOCOLS = ["http:", "https:", "blob:"];

/** An HTML element: h("a", {href: "#/links", class: "tag"}, "text", child, [more children]). */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element, same calling convention as h(). */
export function svg(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

function build(element, props, children) {
  let value;
  for (const [name, given] of Object.entries(props ?? {})) {
    if (given === undefined || given === null || given === false) continue;
    if (name.startsWith("on") && typeof given === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), given);
    } else if (name === "value") {
      value = given; // set after the children: a <select> needs its options first
    } else if (name === "href" || name === "src") {
      element.setAttribute(name, safeUrl(given));
    } else {
      element.setAttribute(name, given === true ? "" : String(given));
    }
  }
  append(element, children);
  if (value !== undefined) element.value = value;
  return element;
}

/** Append nodes and strings (as text); null, undefined and false are skipped, arrays flattened. */
export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A URL fit for href or src: http(s), blob, or relative; anything else (javascript:, data:) is dropped. */
export function safeUrl(value) {
  try {
    const url = new URL(String(value), location.href);
    return SAFE_PROTOCOLS.includes(url.protocol) ? url.href : "about:blank";
  } catch {
    return "about:blank";
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}
