// The page's entry point: sign-in state, the navigation, and a router over location.hash.
//   #/new  #/links?q=&tag=&sort=&page=  #/links/<slug>  #/bulk  #/overview

import { session } from "./api.js";
import { bulkPage } from "./bulk.js";
import { h, replace } from "./dom.js";
import { linkPage } from "./link.js";
import { linksPage } from "./links.js";
import { overviewPage } from "./overview.js";
import { shortenPage } from "./shorten.js";
import { signInPage } from "./signin.js";
import { failure, notify } from "./widgets.js";

const ROUTES = [
  [/^\/new$/, shortenPage, () => "Shorten a link", "#/new"],
  [/^\/links$/, linksPage, () => "Links", "#/links"],
  [/^\/links\/([A-Za-z0-9_-]{1,64})$/, linkPage, (slug) => `/${slug}`, "#/links"],
  [/^\/bulk$/, bulkPage, () => "Upload CSV", "#/bulk"],
  [/^\/overview$/, overviewPage, () => "Overview", "#/overview"],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let leave = null; // what the current page wants done when it is left (e.g. stop a timer)
let drawing = 0; // a newer route wins over a slower older one still loading

async function route() {
  const drawn = ++drawing;
  leave?.();
  leave = null;
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  if (!session.key()) {
    nav.hidden = true;
    show(signInPage, params, "Sign in");
    return;
  }
  nav.hidden = false;
  const match = ROUTES.map(([pattern, ...rest]) => [path.match(pattern), ...rest]).find(([found]) => found);
  if (!match) {
    location.replace("#/links");
    return;
  }
  const [found, page, title, section] = match;
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const cleanup = await show(page, params, title(...found.slice(1)), ...found.slice(1));
  if (drawn === drawing) leave = cleanup ?? null;
  else cleanup?.();
}

async function show(page, params, title, ...args) {
  const drawn = drawing;
  const content = h("div", { "aria-busy": "true" });
  replace(main, content);
  document.title = `${title} · boltlink`;
  let cleanup;
  try {
    cleanup = await page(content, params, ...args);
  } catch (error) {
    if (drawn === drawing) replace(content, h("h1", { tabindex: "-1" }, title), failure(error));
  }
  content.removeAttribute("aria-busy");
  if (drawn === drawing) main.dataset.route = location.hash; // which page is on screen, complete (tests wait for it)
  // Move focus to the new page's heading, as a page load would, so keyboard and screen reader users start there.
  if (drawn === drawing) (content.querySelector("h1") ?? main).focus();
  return cleanup;
}

function signOut(reason) {
  session.clear();
  const target = reason ? `#/signin?${new URLSearchParams({ reason })}` : "#/signin";
  if (location.hash === target) route();
  else location.hash = target;
  if (!reason) notify("Signed out");
}

document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("boltlink:unauthorized", (event) => signOut(`Signed out: ${event.detail}`));
window.addEventListener("hashchange", route);
route();
