-- What bench/http_fetch.lua and bench/http_applications.lua print when wrk is done: one
-- line, "BENCH-RESULT {json}", with wrk's totals, its socket errors, latency percentiles in
-- microseconds, the responses counted by status, and each named per-thread counter summed
-- over the threads (bench.http_fetch.run_wrk reads it).
--
--   dofile(<this file>); function done(summary, latency, requests)
--      report(threads, summary, latency, {"ok", "wrong_length"}) end

function report(threads, summary, latency, counters)
   local totals, by_status = {}, {}
   for _, name in ipairs(counters) do
      totals[name] = 0
   end
   for _, thread in ipairs(threads) do
      for _, name in ipairs(counters) do
         totals[name] = totals[name] + thread:get(name)
      end
      for status, count in pairs(thread:get("statuses")) do
         by_status[status] = (by_status[status] or 0) + count
      end
   end
   local statuses_json, counters_json = {}, {}
   for status, count in pairs(by_status) do
      statuses_json[#statuses_json + 1] = string.format('"%s": %.0f', status, count)
   end
   for _, name in ipairs(counters) do
      counters_json[#counters_json + 1] = string.format('"%s": %.0f', name, totals[name])
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH-RESULT {"duration_us": %.0f, "requests": %.0f, "bytes": %.0f, %s, '
         .. '"statuses": {%s}, '
         .. '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "timeout": %.0f}, '
         .. '"latency_us": {"p50": %.1f, "p90": %.1f, "p99": %.1f, "max": %.1f, "mean": %.1f}}\n',
      summary.duration, summary.requests, summary.bytes, table.concat(counters_json, ", "),
      table.concat(statuses_json, ", "),
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
