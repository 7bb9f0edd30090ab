-- wrk script of the benchmark (bench/lib/wrk.mjs): method, cookie, cookie chain and a JSON summary.
--   BENCH_METHOD  GET | POST
--   BENCH_COOKIE  the Cookie header to send ('' for none)
--   BENCH_CHAIN   '1': every request takes a live cookie that an earlier response set (a pool per
--                 thread, seeded with BENCH_COOKIE), as the autocannon worker does for /login
local method = os.getenv('BENCH_METHOD') or 'GET'
local cookie = os.getenv('BENCH_COOKIE') or ''
local chain = os.getenv('BENCH_CHAIN') == '1'

wrk.method = method
if cookie ~= '' then
  wrk.headers['Cookie'] = cookie
end

if chain then
  -- Only defined in chain mode: without request()/response() wrk sends a prebuilt request and
  -- skips header parsing in Lua, which keeps the load generator as cheap as it can be.
  local pool = {}
  if cookie ~= '' then
    pool[1] = cookie
  end
  function request()
    local h = {}
    for k, v in pairs(wrk.headers) do
      h[k] = v
    end
    h['Cookie'] = table.remove(pool)
    return wrk.format(method, wrk.path, h)
  end
  function response(status, headers, body)
    for k, v in pairs(headers) do
      if string.lower(k) == 'set-cookie' then
        local pair = string.match(v, '^%s*(sid=[^;]+)')
        if pair ~= nil then
          table.insert(pool, pair)
        end
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
