-- POST one prepared JSON body to every request and print a JSON summary at the end.
--   wrk -t1 -c64 -d20s -s benchmarks/wrk/post.lua http://127.0.0.1:8000 -- /score body.json KEY DEPLOYMENT
-- KEY and DEPLOYMENT are optional ("-" for none).
local req

function init(args)
  local path, body_file, key, deployment = args[1] or "/score", args[2], args[3], args[4]
  local f = assert(io.open(body_file, "rb"))
  local body = f:read("*a")
  f:close()
  local headers = { ["Content-Type"] = "application/json" }
  if key and key ~= "-" and key ~= "" then headers["Authorization"] = "Bearer " .. key end
  if deployment and deployment ~= "-" and deployment ~= "" then headers["azureml-model-deployment"] = deployment end
  req = wrk.format("POST", path, headers, body)
end

function request()
  return req
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean))
end
