-- wrk script for bench/run.mjs's "fresh" rows: every request carries the next cookie of the file
-- named by BENCH_COOKIES (one `name=value` per line), round robin, so the gate sees a token it
-- has not seen recently on each request.
local cookies = {}
for line in io.lines(os.getenv("BENCH_COOKIES")) do
  if #line > 0 then cookies[#cookies + 1] = line end
end
assert(#cookies > 0, "BENCH_COOKIES: no cookies")
local i = math.random(#cookies) -- threads start at different places
function request()
  i = i % #cookies + 1
  return wrk.format(nil, nil, { ["Cookie"] = cookies[i] })
end
