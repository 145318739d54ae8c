// Stress test of boltlink's redirects with k6 (https://k6.io), for users who have it.
//
// The same load as scripts/bench.py puts on contender (a), from k6 instead of wrk: virtual users
// ramp up to PEAK_VUS (one keep-alive connection each), hold, and ramp down, each requesting a
// random slug of the set, as a browser would, without following the redirect.
//
// Run it against a running cluster (./boltlink.pyz start-cluster):
//
//   KEY=$(./boltlink.pyz apikey create --name k6)
//   k6 run -e BOLTLINK_URL=http://127.0.0.1:5000 -e BOLTLINK_API_KEY=$KEY scripts/k6/stress_test.js
//
// With BOLTLINK_API_KEY, setup() creates SLUG_COUNT links (k6-<run>-<n>, to https://example.com/k6/<n>)
// through POST /api/v1/links/bulk; BOLTLINK_DELETE_LINKS=1 deletes them again in teardown() (their
// click statistics go with them). Or give existing slugs and no key:
//
//   k6 run -e BOLTLINK_SLUGS=hello,docs,launch scripts/k6/stress_test.js
//
// Environment (-e NAME=value):
//   BOLTLINK_URL           base URL of the API (default http://127.0.0.1:5000)
//   BOLTLINK_API_KEY       a key with links:write, to create the links in setup()
//   BOLTLINK_SLUGS         comma-separated existing slugs instead (no key needed)
//   SLUG_COUNT             links to create (default 10000, as scripts/bench.py)
//   PEAK_VUS               virtual users at the peak (default 64, wrk's -c64 in scripts/bench.py)
//   RAMP, HOLD             ramp-up and hold durations (default 30s and 1m; the ramp-down is 10s)
//   P99_MS                 the p99 threshold in ms (default 15: issue #8's goal at 64 connections)
//
// Thresholds: p99 of the redirects under P99_MS, under 0.1% failed requests (statuses other than
// 2xx/3xx, or no response), and every response a redirect with a Location. k6 exits non-zero
// when one is crossed. k6 itself takes CPU: on the server's own machine it lowers what is measured.

import http from "k6/http";
import { check, fail } from "k6";

const BASE_URL = (__ENV.BOLTLINK_URL || "http://127.0.0.1:5000").replace(/\/+$/, "");
const API_KEY = __ENV.BOLTLINK_API_KEY || "";
const SLUG_COUNT = parseInt(__ENV.SLUG_COUNT || "10000", 10);
const PEAK_VUS = parseInt(__ENV.PEAK_VUS || "64", 10);
const P99_MS = parseFloat(__ENV.P99_MS || "15");
const BULK_LIMIT = 1000; // rows per POST /api/v1/links/bulk
const USER_AGENT =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

export const options = {
  maxRedirects: 0, // the redirect itself is measured, not the site it points to
  discardResponseBodies: true,
  userAgent: USER_AGENT, // a human visitor: every redirect is a recorded click
  scenarios: {
    redirects: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: __ENV.RAMP || "30s", target: PEAK_VUS },
        { duration: __ENV.HOLD || "1m", target: PEAK_VUS },
        { duration: "10s", target: 0 },
      ],
      gracefulRampDown: "5s",
      exec: "follow",
    },
  },
  thresholds: {
    "http_req_duration{name:redirect}": [`p(99)<${P99_MS}`],
    "http_req_failed{name:redirect}": ["rate<0.001"],
    "checks{name:redirect}": ["rate>0.999"],
  },
  summaryTrendStats: ["avg", "min", "med", "p(90)", "p(99)", "max"],
};

function apiHeaders() {
  return { headers: { "X-API-Key": API_KEY, "Content-Type": "application/json" }, responseType: "text" };
}

function createLinks() {
  const run = Date.now().toString(36);
  const slugs = [];
  for (let start = 0; start < SLUG_COUNT; start += BULK_LIMIT) {
    const rows = [];
    for (let n = start; n < Math.min(start + BULK_LIMIT, SLUG_COUNT); n++) {
      rows.push({ url: `https://example.com/k6/${n}`, slug: `k6-${run}-${n}` });
    }
    const res = http.post(`${BASE_URL}/api/v1/links/bulk`, JSON.stringify(rows), apiHeaders());
    if (res.status < 200 || res.status >= 300) {
      fail(`POST /api/v1/links/bulk answered ${res.status}: ${res.body}`);
    }
    const result = JSON.parse(res.body);
    if (result.failed) {
      const firstError = result.results.find((r) => r.status !== "created");
      fail(`${result.failed} of ${rows.length} links were refused, e.g. ${JSON.stringify(firstError)}`);
    }
    rows.forEach((row) => slugs.push(row.slug));
  }
  return slugs;
}

export function setup() {
  if (__ENV.BOLTLINK_SLUGS) {
    return { slugs: __ENV.BOLTLINK_SLUGS.split(",").map((s) => s.trim()).filter((s) => s), created: false };
  }
  if (!API_KEY) {
    fail("set BOLTLINK_API_KEY (to create the links) or BOLTLINK_SLUGS (existing slugs)");
  }
  return { slugs: createLinks(), created: true };
}

export function follow(data) {
  const slug = data.slugs[Math.floor(Math.random() * data.slugs.length)];
  const res = http.get(`${BASE_URL}/${slug}`, { tags: { name: "redirect" } });
  check(res, { "a redirect with a Location": (r) => r.status >= 300 && r.status < 400 && !!r.headers["Location"] },
    { name: "redirect" });
}

export function teardown(data) {
  if (!data.created || __ENV.BOLTLINK_DELETE_LINKS !== "1") {
    return;
  }
  for (const slug of data.slugs) {
    http.del(`${BASE_URL}/api/v1/links/${slug}`, null, apiHeaders());
  }
}
