// How numbers, times and sizes read on screen, in the browser's own locale.

const numbers = new Intl.NumberFormat();

export function count(value) {
  return numbers.format(value ?? 0);
}

export function plural(value, one, many = `${one}s`) {
  return `${count(value)} ${value === 1 ? one : many}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function bucket(iso, granularity) {
  const date = new Date(iso);
  return granularity === "hour"
    ? date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

export function bytes(value) {
  if (!value) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB"];
  const power = Math.min(units.length - 1, Math.floor(Math.log(value) / Math.log(1024)));
  return `${(value / 1024 ** power).toFixed(power ? 1 : 0)} ${units[power]}`;
}

export function duration(seconds) {
  const s = Math.floor(seconds ?? 0);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function percent(part, whole) {
  return whole ? `${Math.round((100 * part) / whole)}%` : "0%";
}
