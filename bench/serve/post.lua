-- wrk script: POST the JSON body in the file named by env BODY_FILE to the URL path in env URL_PATH.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.path = os.getenv("URL_PATH")
wrk.headers["Content-Type"] = "application/json"

-- Count non-200 answers so that a fast error is never mistaken for a fast prediction.
local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH p50_us=%d p99_us=%d requests=%d\n",
    latency:percentile(50), latency:percentile(99), summary.requests))
  -- The whole latency histogram (microseconds:count), so that rounds can be pooled exactly.
  local parts = {}
  for i = 1, #latency do
    local value, count = latency(i)
    parts[#parts + 1] = string.format("%d:%d", value, count)
  end
  io.write("HIST " .. table.concat(parts, ",") .. "\n")
end
