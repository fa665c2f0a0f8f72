-- wrk script for bench/run.mjs's request mixes other than `same` (one cookie, one URL, given by
-- wrk's own -H and URL). BENCH_COOKIES names a file of `name=value` cookies, one per line;
-- BENCH_PATHS (optional) a file of paths, one per line; BENCH_ORDER is `round` (each request the
-- next cookie: the `cold` mix, every token new to the gate) or `random` (each request a random
-- cookie and a random path: the `browse` mix, visitors asking for pages and their assets).
-- bench/latency.lua runs this file to pick its requests.
local function lines(file)
  local out = {}
  if file and #file > 0 then
    for line in io.lines(file) do
      if #line > 0 then out[#out + 1] = line end
    end
  end
  return out
end
local cookies = lines(os.getenv("BENCH_COOKIES"))
local paths = lines(os.getenv("BENCH_PATHS"))
local random = os.getenv("BENCH_ORDER") == "random"
assert(#cookies > 0, "BENCH_COOKIES: no cookies")
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
local i = math.random(#cookies) -- threads start at different places

function request()
  local cookie, path
  if random then
    cookie = cookies[math.random(#cookies)]
    if #paths > 0 then path = paths[math.random(#paths)] end
  else
    i = i % #cookies + 1
    cookie = cookies[i]
  end
  return wrk.format(nil, path, { ["Cookie"] = cookie })
end
