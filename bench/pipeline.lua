-- bench/pipeline.lua: the wrk script of bench/http.sh.
--   wrk ... -s bench/pipeline.lua URL -- DEPTH [BODY]
-- DEPTH (default 1) requests go out in each write, as the TechEmpower
-- pipelined plaintext test does; wrk counts every response. BODY > 0 makes
-- each request a POST with BODY bytes ("xxx...", Content-Length framing).
-- With DEPTH 1 and no BODY request() stays undefined, so that wrk keeps sending its one pre-built
-- request (its fast path) and the script costs nothing per request.
-- At the end it prints one line that http.sh reads:
--   wrk-result requests=N secs=S rps=R p50_ms=A p99_ms=B errors=E non2xx=X
-- errors = connect + read + write + timeout errors; non2xx = responses
-- whose status was not 2xx. A latency wrk cannot give is printed as NA.

function init(args)
   local depth = tonumber(args[1]) or 1
   local size = tonumber(args[2]) or 0
   if size > 0 then
      wrk.method = "POST"
      wrk.body = string.rep("x", size)
      wrk.headers["Content-Type"] = "application/octet-stream"
   end
   if depth > 1 or size > 0 then
      local batch = string.rep(wrk.format(), depth)
      request = function() return batch end
   end
end

-- With pipelining, wrk's correction for coordinated omission can leave
-- its histogram with nothing at a percentile (it returns 0): say so
-- rather than print a latency of 0.
local function ms(latency, p)
   local us = latency:percentile(p)
   if us <= 0 then return "NA" end
   return string.format("%.3f", us / 1000)
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "wrk-result requests=%d secs=%.3f rps=%.0f p50_ms=%s p99_ms=%s errors=%d non2xx=%d\n",
      summary.requests, secs, summary.requests / secs, ms(latency, 50), ms(latency, 99),
      e.connect + e.read + e.write + e.timeout, e.status))
end
