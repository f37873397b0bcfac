-- wrk script of the serve benchmark: every request carries `Authorization: Bearer <token>`, the
-- tokens taken round-robin from a file (one a line), each wrk thread starting at its own offset
-- so that threads do not send the same token at the same moment.
--   wrk -t2 -c64 -d10s -s tokens.lua URL -- TOKENS_FILE
-- BENCH_DELAY_MS=N (environment) makes every connection wait N ms between its requests: the
-- rate-limited load (wrk2 is not in Debian). done() prints one `BENCHJSON {...}` line for run.py.

local reqs = {}
local nreqs = 0
local idx = 1
local created = {}

-- Runs in wrk's main Lua state once per thread, before any thread starts: each thread learns its
-- index and (re-set as threads are added) the thread count.
function setup(thread)
  table.insert(created, thread)
  thread:set("tid", #created - 1)
  for _, t in ipairs(created) do
    t:set("nthreads", #created)
  end
end

function init(args)
  local path = args[1]
  if path == nil then
    error("tokens.lua needs the tokens file: wrk ... -s tokens.lua URL -- FILE")
  end
  for line in io.lines(path) do
    if #line > 0 then
      nreqs = nreqs + 1
      reqs[nreqs] = wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. line })
    end
  end
  if nreqs == 0 then
    error("no tokens in " .. path)
  end
  local t = tid or 0
  local n = nthreads or 1
  idx = (t * math.floor(nreqs / n)) % nreqs + 1
end

function request()
  local r = reqs[idx]
  idx = idx % nreqs + 1
  return r
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
