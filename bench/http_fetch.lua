-- wrk's script for bench/http_fetch.py: which request each connection sends next, and what
-- came back.
--
--   wrk ... -s bench/http_fetch.lua <url> -- <paths file> <body bytes> <threads>
--
-- The paths file holds one path per line (a resident's document, with the purpose); every
-- request carries the Authorization header from $BENCH_HTTP_FETCH_AUTHORIZATION when it is
-- set. The requests are formatted once, in init. Each thread walks the list in order from its
-- own starting point (evenly spaced), so with at least as many paths as connections, requests
-- in flight at the same moment ask for different residents.
--
-- Every response is counted by status, and a 200 counts as ok only if its body has the
-- expected length. done() prints one line, "BENCH-RESULT {json}", with wrk's totals, its
-- socket errors, latency percentiles in microseconds and these counts.

local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

function init(args)
   local headers = {}
   local authorization = os.getenv("BENCH_HTTP_FETCH_AUTHORIZATION")
   if authorization then
      headers["Authorization"] = authorization
   end
   prepared = {}
   for path in io.lines(args[1]) do
      if path ~= "" then
         prepared[#prepared + 1] = wrk.format("GET", path, headers)
      end
   end
   expected = tonumber(args[2])
   position = math.floor(index * #prepared / tonumber(args[3]))
   statuses = {}
   ok = 0
   wrong_length = 0
end

function request()
   position = position % #prepared + 1
   return prepared[position]
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   if status == 200 then
      if #body == expected then
         ok = ok + 1
      else
         wrong_length = wrong_length + 1
      end
   end
end

function done(summary, latency, requests)
   local ok_total, wrong_total, by_status = 0, 0, {}
   for _, thread in ipairs(threads) do
      ok_total = ok_total + thread:get("ok")
      wrong_total = wrong_total + thread:get("wrong_length")
      for status, count in pairs(thread:get("statuses")) do
         by_status[status] = (by_status[status] or 0) + count
      end
   end
   local statuses_json = {}
   for status, count in pairs(by_status) do
      statuses_json[#statuses_json + 1] = string.format('"%s": %.0f', status, count)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH-RESULT {"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, '
         .. '"ok": %.0f, "wrong_length": %.0f, "statuses": {%s}, '
         .. '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "timeout": %.0f}, '
         .. '"latency_us": {"p50": %.1f, "p90": %.1f, "p99": %.1f, "max": %.1f, "mean": %.1f}}\n',
      summary.duration, summary.requests, summary.bytes,
      ok_total, wrong_total, table.concat(statuses_json, ", "),
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
