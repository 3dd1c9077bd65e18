-- Shared by the bench scripts: after the run, one machine-readable line for scripts/bench.
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH {\"requests\": %d, \"duration_us\": %d, \"non_2xx\": %d, \"socket_errors\": %d, " ..
    "\"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d}\n",
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end

-- The first few failed responses of each thread, on stderr (what went wrong, not just how often).
local shown = 0
function show_failure(status, body)
  if status >= 300 and shown < 3 then
    shown = shown + 1
    io.stderr:write(string.format("HTTP %d: %s\n", status, (body or ""):sub(1, 300)))
  end
end

-- `BENCH_HEADERS`: header lines ("Name: value"), one per line.
function bench_headers()
  local headers = {}
  for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  return headers
end

-- The lines of `path` this thread owns (line i goes to thread i mod threads).
function share_of(path, index, threads)
  local mine = {}
  local i = 0
  for line in io.lines(path) do
    if line ~= "" then
      if i % threads == index then mine[#mine + 1] = line end
      i = i + 1
    end
  end
  return mine
end

-- Gives each thread its index. The thread count comes from BENCH_THREADS (wrk runs a
-- thread's init before the next thread's setup, so setup cannot count them).
local counter = 0
function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end
threads = tonumber(os.getenv("BENCH_THREADS") or "2")
