-- Refresh-token rotation chains: each refresh token in BENCH_TOKENS (a file, one per line) is
-- redeemed once, and the refresh token of its response is the next one redeemed. Needs at
-- least as many tokens per thread as connections per thread.
-- BENCH_BODY is the form without the token (`grant_type=refresh_token&client_id=…`).
dofile("report.lua")

local queue = {}
local body = os.getenv("BENCH_BODY")

-- At load time, before wrk adds `Host` to these headers.
wrk.method = "POST"
wrk.headers = bench_headers()

function init(args)
  queue = share_of(os.getenv("BENCH_TOKENS"), index, threads)
end

function request()
  -- A broken chain (an error response) leaves a connection without a token: it sends a
  -- request that fails (counted as non-2xx) until the thread stops.
  local token = table.remove(queue, 1) or "chain-broken"
  return wrk.format(nil, nil, nil, body .. "&refresh_token=" .. token)
end

function response(status, headers, response_body)
  show_failure(status, response_body)
  local next_token = response_body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if next_token then queue[#queue + 1] = next_token end
  if #queue == 0 then wrk.thread:stop() end
end
