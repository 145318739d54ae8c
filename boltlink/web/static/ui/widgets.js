// Small pieces several pages share: notices, copy buttons, QR codes, the confirm dialog, downloads.

import { h } from "./dom.js";

let noticeTimer;

/** A short message in the polite live region, read out by screen readers. */
export function notify(message) {
  const region = document.getElementById("notice");
  region.textContent = message;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { region.textContent = ""; }, 4000);
}

export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "button", "aria-label": `${label}: ${text}` }, label);
  button.addEventListener("click", async () => {
    await copyText(text);
    button.textContent = "Copied";
    notify("Copied to the clipboard");
    setTimeout(() => { button.textContent = label; }, 2000);
  });
  return button;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain http on a non-local host has no Clipboard API: copy from a selected field instead.
    const scratch = h("textarea", { readonly: true, class: "sr-only" }, text);
    document.body.append(scratch);
    scratch.select();
    document.execCommand("copy");
    scratch.remove();
  }
}

/** The short link's QR code (public, like the redirect), and a PNG to download. */
export function qrCode(link) {
  const path = `/${encodeURIComponent(link.slug)}/qr`;
  return h("figure", { class: "qr-figure" },
    h("img", { class: "qr", src: `${path}?format=svg&size=320`, width: 160, height: 160,
               alt: `QR code for ${link.short_url}` }),
    h("figcaption", { class: "small" },
      h("a", { href: `${path}?format=png&size=1024`, download: `${link.slug}-qr.png` }, "Download PNG")));
}

/** A modal yes/no question; resolves true only when the user confirms. Escape or Cancel say no. */
export function confirmDialog(question, confirmLabel) {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", class: "button", autofocus: true }, "Cancel");
    const confirm = h("button", { type: "button", class: "danger" }, confirmLabel);
    const dialog = h("dialog", { "aria-labelledby": "confirm-question" },
      h("p", { id: "confirm-question" }, question),
      h("div", { class: "row" }, cancel, confirm));
    const opener = document.activeElement;
    cancel.addEventListener("click", () => dialog.close("no"));
    confirm.addEventListener("click", () => dialog.close("yes"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      opener?.focus?.();
      resolve(dialog.returnValue === "yes");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Save a fetched Response's body as a file (the API needs the key header, so a plain link can't). */
export async function download(response, filename) {
  const url = URL.createObjectURL(await response.blob());
  const anchor = h("a", { href: url, download: filename, class: "sr-only" }, filename);
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A page's error in place of its content. */
export function failure(error) {
  return h("div", { class: "panel" }, h("p", { class: "form-error", role: "alert" }, error.message));
}
