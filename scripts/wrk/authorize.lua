-- Authorization codes, each thread appending its codes to BENCH_OUT.<thread index>. From a
-- server that approves at once (`GET /authorize` → 302 with `code` in `Location`), or one that
-- first sends the browser to an interaction page which redirects with the code (mcpauth-server
-- with a remembered consent; BENCH_HEADERS carries the session's `Cookie`): that page is
-- fetched next.
dofile("report.lua")

local out
local pending = 0
-- Interaction pages to fetch (a queue shared by the thread's connections: each response
-- queues at most one, each request takes one when there is one).
local follow = {}

wrk.method = "GET"
wrk.headers = bench_headers()

function init(args)
  out = io.open(os.getenv("BENCH_OUT") .. "." .. index, "w")
end

function request()
  local page = table.remove(follow)
  if page then
    return wrk.format("GET", page)
  end
  return wrk.format("GET", wrk.path)
end

function response(status, headers, body)
  local location = headers["Location"] or headers["location"] or ""
  local code = location:match("[?&]code=([^&]+)")
  if code then
    out:write(code, "\n")
    pending = pending + 1
    if pending >= 100 then
      out:flush()
      pending = 0
    end
  elseif location ~= "" then
    -- An interaction page on the same server: its path.
    follow[#follow + 1] = location:gsub("^https?://[^/]+", "")
  else
    show_failure(status, body)
  end
end
