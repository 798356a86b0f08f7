-- wrk -s benchmarks/wrk/score.lua: POST one demo row to /score.
-- Environment: SCORER_API_KEY (Bearer key, optional), SCORER_BODY (path to a JSON body; default: the
-- demo model's serving_input_example.json is too big, so pass one row), SCORER_DEPLOYMENT (pin, optional).
local body_path = os.getenv("SCORER_BODY")
local f = assert(io.open(body_path, "rb"), "set SCORER_BODY to a JSON body file")
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.path = "/score"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("SCORER_API_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local pin = os.getenv("SCORER_DEPLOYMENT")
if pin and pin ~= "" then
  wrk.headers["azureml-model-deployment"] = pin
end

local codes = {}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("latency_ms p50=%.2f p90=%.2f p99=%.2f\n", latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("non2xx=%d errors(connect/read/write/timeout)=%d/%d/%d/%d\n",
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
