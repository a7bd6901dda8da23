-- wrk's script for bench/http_applications.py: residents apply online and an officer decides
-- each application they made, over the same connections.
--
--   wrk ... -s bench/http_applications.lua <url> -- <tokens file> <service> <threads>
--
-- The tokens file holds one resident's bearer token per line; the officer's comes from
-- $BENCH_HTTP_APPLICATIONS_OFFICER. Each thread walks the residents from its own evenly
-- spaced starting point. A request is the decision (approve) of the oldest application this
-- thread saw accepted and has not sent a decision for yet, if there is one; otherwise the
-- next resident's application (POST /v1/me/applications {"service_id": <service>}). So every
-- accepted application is decided once, by the same thread, as soon as a connection is free,
-- and the load stays a steady mix of one acceptance and one decision per application.
--
-- A 201 with an application_id counts as accepted, a 200 as decided; anything else is
-- counted by status and makes the run fail. done() prints one line, "BENCH-RESULT {json}",
-- as bench/http_fetch.lua does (bench/wrk_report.lua), with ok = decided, plus "accepted".

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_report.lua")

local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

function init(args)
   local service = args[2]
   applying = {}
   for token in io.lines(args[1]) do
      if token ~= "" then
         applying[#applying + 1] = wrk.format(
            "POST", "/v1/me/applications",
            {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"},
            '{"service_id": "' .. service .. '"}')
      end
   end
   officer = {
      ["Authorization"] = "Bearer " .. os.getenv("BENCH_HTTP_APPLICATIONS_OFFICER"),
      ["Content-Type"] = "application/json",
   }
   position = math.floor(index * #applying / tonumber(args[3]))
   to_decide = {}
   first, last = 1, 0
   statuses = {}
   accepted = 0
   ok = 0
   wrong_length = 0
end

function request()
   if first <= last then
      local id = to_decide[first]
      to_decide[first] = nil
      first = first + 1
      return wrk.format("POST", "/v1/applications/" .. id .. "/decisions", officer,
                        '{"decision": "approve", "reason": "符合条件"}')
   end
   position = position % #applying + 1
   return applying[position]
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   if status == 201 then
      local id = string.match(body, '"application_id":%s*"([0-9a-f%-]+)"')
      if id then
         accepted = accepted + 1
         last = last + 1
         to_decide[last] = id
      else
         wrong_length = wrong_length + 1
      end
   elseif status == 200 then
      ok = ok + 1
   end
end

function done(summary, latency, requests)
   report(threads, summary, latency, {"ok", "accepted", "wrong_length"})
end
