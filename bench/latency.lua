-- wrk script for bench/run.mjs: per-request latency measured here, one connection per thread,
-- with the monotonic clock (LuaJIT FFI). wrk's own latency histogram is not used: on this
-- setup it disagrees with its own request count (with one connection it reported a mean of
-- 2 ms at 5,000 req/s, i.e. 10 s of waiting in 1 s); the pairs timed here add up.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

-- With BENCH_COOKIES set (the `browse` and `cold` mixes), each request is the one bench/mix.lua
-- picks: that file is run here (from this file's folder) and its `request` kept.
local pick = wrk.format
local mix = os.getenv("BENCH_COOKIES")
if mix and #mix > 0 then
  local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  dofile(dir .. "mix.lua")
  pick = request
end

-- Thread state: each wrk thread has one connection, so requests and responses pair in order.
sent, lats, n, bad = 0, {}, 0, 0
function request()
  sent = now_us()
  return pick()
end
function response(status)
  n = n + 1
  lats[n] = now_us() - sent
  if status ~= 200 then bad = bad + 1 end
end

-- Main state: gather every thread's samples and print one line for run.mjs to parse.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function done()
  local all, bad = {}, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("lats")) do all[#all + 1] = v end
    bad = bad + t:get("bad")
  end
  table.sort(all)
  local function pct(p) return all[math.max(1, math.ceil(#all * p / 100))] end
  local sum = 0
  for _, v in ipairs(all) do sum = sum + v end
  print(string.format("LATENCY n=%d bad=%d mean_us=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f",
    #all, bad, sum / #all, pct(50), pct(99), all[#all]))
end
