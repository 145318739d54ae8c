-- wrk script of scripts/bench.py and scripts/soak.py: each request asks for a random one of the
-- benchmark's slugs (benchmarks/slugs.py: s00000 .. s09999), and done() prints one line
--   BENCH_JSON {"requests": .., "duration_us": .., "p50_us": .., ..., "errors": {..}}
-- for the scripts to parse instead of wrk's human-readable text.
--
-- Environment:
--   BENCH_SLUG_COUNT  how many slugs exist (default 10000)
--   BENCH_RATE        requests/s over the whole run, spread over BENCH_THREADS threads (default: none,
--                     every connection sends its next request as soon as the last one is answered)
--   BENCH_THREADS     wrk's -t, needed with BENCH_RATE
--
-- A constant rate (wrk2 is not packaged) comes from delay(): each thread hands out send times one
-- interval apart, so its connections together keep to the rate instead of each pausing a fixed time.

local slug_count = tonumber(os.getenv("BENCH_SLUG_COUNT") or "10000")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
end

local now_ms
local interval_ms
local next_at_ms = 0

function init(args)
  math.randomseed(os.time() * 1000 + (thread_index or 0) * 7919)
  if rate > 0 then
    local ffi = require("ffi")
    ffi.cdef [[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clk_id, bench_timespec *tp);
    ]]
    local ts = ffi.new("bench_timespec")
    now_ms = function()
      ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
    interval_ms = 1000 * threads / rate
  end
end

function request()
  return wrk.format("GET", string.format("/s%05d", math.random(0, slug_count - 1)))
end

if rate > 0 then
  function delay()
    local now = now_ms()
    -- No catching up after a stall: a burst would not be the steady load this run is about.
    next_at_ms = math.max(next_at_ms + interval_ms, now)
    return math.floor(next_at_ms - now)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "errors": {"connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
