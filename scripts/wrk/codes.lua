-- Authorization-code redemption: each code in BENCH_TOKENS (a file, one per line) once; the
-- thread stops when its codes run out, so the run's rate covers redemptions only.
-- BENCH_BODY is the form without the code (`grant_type=authorization_code&…`).
dofile("report.lua")

local queue = {}
local next_code = 1
local body = os.getenv("BENCH_BODY")
local last

-- At load time, before wrk adds `Host` to these headers.
wrk.method = "POST"
wrk.headers = bench_headers()

function init(args)
  queue = share_of(os.getenv("BENCH_TOKENS"), index, threads)
end

function request()
  -- Out of codes before the stop takes effect: a used code (counted as non-2xx). An index,
  -- not table.remove(queue, 1), which moves every later code and would load wrk, not the server.
  last = queue[next_code] or last or ""
  next_code = next_code + 1
  return wrk.format(nil, nil, nil, body .. "&code=" .. last)
end

function response(status, headers, response_body)
  show_failure(status, response_body)
  if next_code > #queue then wrk.thread:stop() end
end
