-- Authorization codes from a server that approves at once (`GET /authorize` → 302 with
-- `code` in `Location`): each thread appends its codes to BENCH_OUT.<thread index>.
dofile("report.lua")

local out
local pending = 0

wrk.method = "GET"

function init(args)
  out = io.open(os.getenv("BENCH_OUT") .. "." .. index, "w")
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
  end
end
