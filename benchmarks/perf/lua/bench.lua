-- wrk script for recsite benchmarks: bounded in count (per thread) and time (-d).
-- args: mode ("get"|"post") file token max_per_thread marker_dir
--   get:  `file` holds one request path per line; each request picks one at random.
--   post: `file`.<thread id> holds one JSON body per line, sent once each, in order.
-- When a thread reaches its bound it writes `marker_dir/done.<id>` and stops, so the
-- driver can end wrk with SIGINT instead of waiting for the full -d.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local tsbuf = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, tsbuf) -- CLOCK_MONOTONIC
  return tonumber(tsbuf.tv_sec) + tonumber(tsbuf.tv_nsec) * 1e-9
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  table.insert(threads, thread)
  next_id = next_id + 1
end

local mode, lines, headers, max_n, marker_dir, post_path
local pos = 0
local finished = false
ok_count = 0
bad_count = 0
sent = 0
t_first = 0
t_last = 0
bad_statuses = ""

function init(args)
  mode = args[1]
  local file = args[2]
  local token = args[3]
  max_n = tonumber(args[4])
  marker_dir = args[5]
  post_path = args[6] or "/"
  if mode == "post" then file = file .. "." .. id end
  lines = {}
  for line in io.lines(file) do
    if #line > 0 then table.insert(lines, line) end
  end
  if mode == "post" and #lines < max_n then max_n = #lines end
  headers = { ["Authorization"] = "Bearer " .. token }
  if mode == "post" then headers["Content-Type"] = "application/json" end
  math.randomseed(os.time() + 7919 * (id + 1))
  if max_n == 0 then finish() end
end

function finish()
  if finished then return end
  finished = true
  local f = io.open(marker_dir .. "/done." .. id, "w")
  if f then f:write("done"); f:close() end
  wrk.thread:stop()
end

function request()
  if finished or sent >= max_n then
    -- a request wrk asks for after our bound: harmless and never counted as data
    return wrk.format("GET", "/api/v1/health/", headers)
  end
  sent = sent + 1
  if t_first == 0 then t_first = now() end
  if mode == "post" then
    pos = pos + 1
    return wrk.format("POST", post_path, headers, lines[pos])
  end
  return wrk.format("GET", lines[math.random(#lines)], headers)
end

function response(status, hdrs, body)
  if finished then return end
  t_last = now()
  if status >= 200 and status < 300 then
    ok_count = ok_count + 1
  else
    bad_count = bad_count + 1
    if #bad_statuses < 200 then bad_statuses = bad_statuses .. status .. " " end
  end
  if ok_count + bad_count >= max_n then finish() end
end

function done(summary, latency, requests)
  local ok, bad, first, last, statuses = 0, 0, nil, 0, ""
  for _, t in ipairs(threads) do
    ok = ok + (t:get("ok_count") or 0)
    bad = bad + (t:get("bad_count") or 0)
    local f = t:get("t_first") or 0
    if f > 0 and (first == nil or f < first) then first = f end
    local l = t:get("t_last") or 0
    if l > last then last = l end
    statuses = statuses .. (t:get("bad_statuses") or "")
  end
  local window = 0
  if first ~= nil and last > first then window = last - first end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.6f, "window_s": %.6f, "ok": %d, ' ..
    '"bad": %d, "bad_statuses": "%s", "socket_errors": %d, "timeouts": %d, ' ..
    '"mean_ms": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
    '"p999_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, window, ok, bad, statuses,
    e.connect + e.read + e.write, e.timeout,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
end
