-- wrk script for recsite benchmarks: bounded in count (here) and time (wrk -d).
-- Run with ONE wrk thread (-t1) and any number of connections: gunicorn's sync workers
-- close every connection, and a stopped wrk thread leaves the connection it just
-- reopened idle, which would pin a sync worker; with one thread that only happens
-- once the whole run is over (the driver then ends wrk with SIGINT).
-- args: mode ("get"|"post") file token max_requests marker_dir [post_path]
--   get:  `file` holds one request path per line; each request picks one at random.
--   post: `file` holds one JSON body per line; each is sent once, in order.
-- When the bound is reached it writes `marker_dir/done.0` and stops.
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

function setup(thread)
  table.insert(threads, thread)
end

local mode, lines, headers, max_n, marker_dir, post_path
local finished = false
local verified = false
local issued = 0 -- bodies handed to wrk (post mode)
local idle = 0
ok_count = 0
bad_count = 0
answered = 0
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
  lines = {}
  for line in io.lines(file) do
    if #line > 0 then table.insert(lines, line) end
  end
  if mode == "post" and #lines < max_n then max_n = #lines end
  headers = { ["Authorization"] = "Bearer " .. token }
  if mode == "post" then headers["Content-Type"] = "application/json" end
  math.randomseed(os.time())
end

local function finish()
  if finished then return end
  finished = true
  local f = io.open(marker_dir .. "/done.0", "w")
  if f then f:write("done"); f:close() end
  wrk.thread:stop()
end

function request()
  if not verified then
    -- wrk calls request() once before the run to verify the script and discards
    -- the result: hand it a placeholder, consume nothing.
    verified = true
    return wrk.format("GET", "/__bench_verify__", headers)
  end
  if t_first == 0 then t_first = now() end
  if mode == "post" then
    if issued >= max_n then
      -- every body is in flight or answered: idle connections ask for a cheap 404
      return wrk.format("GET", "/__bench_idle__", headers)
    end
    issued = issued + 1
    return wrk.format("POST", post_path, headers, lines[issued])
  end
  return wrk.format("GET", lines[math.random(#lines)], headers)
end

function response(status, hdrs, body)
  if finished then return end
  if mode == "post" and status == 404 then
    -- an idle placeholder; many in a row mean a body was lost to a socket error
    idle = idle + 1
    if idle >= 2000 then finish() end
    return
  end
  answered = answered + 1
  t_last = now()
  if status >= 200 and status < 300 then
    ok_count = ok_count + 1
  else
    bad_count = bad_count + 1
    if #bad_statuses < 200 then bad_statuses = bad_statuses .. status .. " " end
  end
  if answered >= max_n then finish() end
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
