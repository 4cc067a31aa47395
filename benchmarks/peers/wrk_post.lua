-- The load of benchmarks/serving.py: every request is the same POST, read from a file.
--
--   WRK_BODY=body.json WRK_TOKEN=secret wrk -t1 -c32 -d10s -s wrk_post.lua http://host:port/path
--
-- WRK_BODY: the request body (JSON); WRK_TOKEN (optional): sent as "Authorization: Bearer".
-- At the end one line for the benchmark to parse (latencies in microseconds, exact from wrk's
-- histogram rather than rounded from its text):
--   BENCH requests=N duration_us=N connect=N read=N write=N status=N timeout=N p50=N p90=N
--         p99=N max=N

local path = os.getenv("WRK_BODY")
if path == nil or path == "" then
  error("WRK_BODY (the file with the request body) is not set")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("WRK_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d "
      .. "p50=%d p90=%d p99=%d max=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
