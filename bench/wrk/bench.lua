-- wrk script of the users benchmark (bench/run.py). Everything is chosen by environment
-- variables read when the script loads, so the hot path stays a table lookup:
--   BENCH_MODE     static   -- the URL as given (GET /healthz)
--                  tokens   -- GET with "Authorization: Bearer <token>", tokens from BENCH_DATA
--                  login    -- POST urlencoded username/password, "email<TAB>password" lines
--                              from BENCH_DATA
--                  register -- POST JSON {email, password} with a unique email per request:
--                              bench-<BENCH_PREFIX>-t<thread>-<counter>@example.com
--   BENCH_DATA     file of tokens or credentials (one per line)
--   BENCH_PREFIX   random, per wrk invocation (register)
--   BENCH_PASSWORD password of registered users (register)
--   BENCH_TRACK    1: also count responses by status and keep one body per non-2xx status
--                  (costs a Lua call per response: used only by the diagnostic re-runs)
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles (us).

local mode = os.getenv("BENCH_MODE") or "static"
local data_path = os.getenv("BENCH_DATA")
local prefix = os.getenv("BENCH_PREFIX") or "run"
local password = os.getenv("BENCH_PASSWORD") or "a benchmark passphrase 7f3a"
local track = os.getenv("BENCH_TRACK") == "1"

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

local function read_lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then
      out[#out + 1] = line
    end
  end
  return out
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function init(args)
  statuses = {}
  samples = {}
  counter = 0
  reqs = {}
  if mode == "tokens" then
    for _, tok in ipairs(read_lines(data_path)) do
      reqs[#reqs + 1] = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. tok })
    end
  elseif mode == "login" then
    for _, line in ipairs(read_lines(data_path)) do
      local email, pw = line:match("^([^\t]+)\t(.+)$")
      reqs[#reqs + 1] = wrk.format("POST", wrk.path,
        { ["Content-Type"] = "application/x-www-form-urlencoded" },
        "username=" .. urlencode(email) .. "&password=" .. urlencode(pw))
    end
  end
  -- threads start at different places of the list
  idx = (((tid or 0) * 7919) % math.max(#reqs, 1))
end

if mode == "tokens" or mode == "login" then
  function request()
    idx = idx % #reqs + 1
    return reqs[idx]
  end
elseif mode == "register" then
  local headers = { ["Content-Type"] = "application/json" }
  function request()
    counter = counter + 1
    local body = string.format('{"email":"bench-%s-t%d-%d@example.com","password":"%s"}',
      prefix, tid or 0, counter, password)
    return wrk.format("POST", wrk.path, headers, body)
  end
end

if track then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if (status < 200 or status > 299) and samples[status] == nil then
      samples[status] = string.sub(body or "", 1, 300)
    end
  end
end

local function jstr(s)
  s = tostring(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local counts, bodies = {}, {}
  for _, t in ipairs(threads) do
    local st = t:get("statuses") or {}
    for k, v in pairs(st) do
      counts[k] = (counts[k] or 0) + v
    end
    local sm = t:get("samples") or {}
    for k, v in pairs(sm) do
      if bodies[k] == nil then bodies[k] = v end
    end
  end
  local cs, bs = {}, {}
  for k, v in pairs(counts) do cs[#cs + 1] = jstr(k) .. ":" .. string.format("%d", v) end
  for k, v in pairs(bodies) do bs[#bs + 1] = jstr(k) .. ":" .. jstr(v) end
  local e = summary.errors
  local function p(q)
    if summary.requests == 0 then return 0 end
    return latency:percentile(q)
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"tracked":%s,"statuses":{%s},"samples":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    summary.requests > 0 and latency.min or 0,
    summary.requests > 0 and latency.mean or 0, summary.requests > 0 and latency.stdev or 0,
    summary.requests > 0 and latency.max or 0,
    p(50), p(75), p(90), p(99), p(99.9),
    track and "true" or "false", table.concat(cs, ","), table.concat(bs, ",")))
end
