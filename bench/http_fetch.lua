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
-- socket errors, latency percentiles in microseconds and these counts (bench/wrk_report.lua,
-- loaded from beside this script).

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_report.lua")

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
   report(threads, summary, latency, {"ok", "wrong_length"})
end
