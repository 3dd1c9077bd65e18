-- Authorization codes, each thread appending its codes to BENCH_OUT.<thread index>. From a
-- server that approves at once (`GET /authorize` → 302 with `code` in `Location`), or one that
-- first sends the browser to an interaction page which redirects with the code (mcpauth-server
-- with a remembered consent; BENCH_HEADERS carries the session's `Cookie`): that page is
-- fetched next, with the cookie the redirect set (the interaction's, binding it to this
-- "browser").
dofile("report.lua")

local out
local pending = 0
-- Interaction pages to fetch, with their cookie (a queue shared by the thread's connections:
-- each response queues at most one, each request takes one when there is one).
local follow = {}

wrk.method = "GET"
wrk.headers = bench_headers()
local base_cookie = wrk.headers["Cookie"]

function init(args)
  out = io.open(os.getenv("BENCH_OUT") .. "." .. index, "w")
end

function request()
  local page = table.remove(follow)
  if page then
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    if page.cookie then
      headers["Cookie"] = base_cookie and (base_cookie .. "; " .. page.cookie) or page.cookie
    end
    return wrk.format("GET", page.path, headers)
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
    -- An interaction page on the same server: its path, and the cookie set with it.
    local set = headers["Set-Cookie"] or headers["set-cookie"]
    follow[#follow + 1] = {
      path = (location:gsub("^https?://[^/]+", "")),
      cookie = set and set:match("^([^;]+)"),
    }
  else
    show_failure(status, body)
  end
end
