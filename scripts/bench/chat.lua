-- wrk script for `make bench` (scripts/bench.sh): POST one chat completion
-- request per call and, at the end, append one JSON line with the results
-- to the file named by BENCH_OUT.
--
-- Environment:
--   BENCH_KEY     Fusion client key, sent as "Authorization: Bearer ..." (none: no header)
--   BENCH_STREAM  1 for "stream": true (wrk counts a request done when the
--                 chunked SSE response has ended)
--   BENCH_MODEL   model name (default bench-model)
--   BENCH_OUT     file the JSON line is appended to (default: stdout)
--   BENCH_LABEL   free text copied into the JSON line
local key = os.getenv("BENCH_KEY") or ""
local stream = os.getenv("BENCH_STREAM") == "1"
local model = os.getenv("BENCH_MODEL") or "bench-model"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are a benchmark."},'
  .. '{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32'
  .. (stream and ',"stream":true' or '') .. '}'

function done(summary, latency, requests)
  local e = summary.errors
  local line = string.format(
    '{"label":"%s","duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}\n',
    os.getenv("BENCH_LABEL") or "", summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max)
  local path = os.getenv("BENCH_OUT")
  if path and path ~= "" then
    local f = assert(io.open(path, "a"))
    f:write(line)
    f:close()
  else
    io.write(line)
  end
end
