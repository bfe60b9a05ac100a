-- wrk script of the users benchmark (bench/run.py). Everything is chosen by environment
-- variables read when the script loads, so the hot path stays a table lookup:
--   BENCH_MODE     static   -- the URL as given (GET /healthz)
--                  tokens   -- GET with "Authorization: Bearer <token>", tokens from BENCH_DATA
--                  login    -- POST urlencoded username/password, "email<TAB>password" lines
--                              from BENCH_DATA
--                  register -- POST JSON {email, password} with a unique email per request:
--                              bench-<BENCH_PREFIX>-t<thread>-<counter>@example.com
--                  refresh  -- POST JSON {refresh_token}, one rotation chain per connection:
--                              the refresh tokens of BENCH_DATA (one per connection, one a
--                              line) are dealt to the threads (line i to thread
--                              (i - 1) % BENCH_THREADS); each thread keeps its own in a
--                              queue. request() takes one off the queue, response() puts
--                              the rotated one from a 200's body back. wrk keeps one request
--                              in flight per connection and calls response() before that
--                              connection's next request(), so with as many tokens as
--                              connections no token is ever in two requests: every chain
--                              stays alive. A chain broken (a non-200, a lost response)
--                              leaves a connection without a token: it then sends an
--                              invalid one (answered 400), counted as "starved".
--                  form     -- POST urlencoded, lines "<Authorization header>\t<form body>" from
--                              BENCH_DATA, cycled (the provider's client credentials and
--                              introspection: HTTP Basic of a client, a fixed body)
--                  once     -- as form, but each line is sent once (single-use codes: the
--                              code exchange); the lines are dealt to the threads as for
--                              refresh, and a thread whose lines are spent stops (so the run
--                              stop early: wrk still waits out its duration, so each thread
--                              notes (monotonic clock, through LuaJIT's ffi) its first
--                              request and when it stopped, and done() reports the span
--                              from the first to the last stop as "once_active_us" when
--                              every thread stopped, 0 otherwise)
--                  mint     -- GET the path of BENCH_DATA's first line (/oauth/authorize of a
--                              client with skip_consent) with the cookies of the lines after
--                              it ("name=value", one signed-in person each), dealt to the
--                              threads as for refresh and taken in turn by each thread's
--                              requests; the code of each 302's Location is kept, and done()
--                              writes them, one a line, to BENCH_DATA .. ".codes"
--                  oauth_refresh -- as refresh, for the provider's grants: POST urlencoded
--                              grant_type=refresh_token to /oauth/token with the client's
--                              HTTP Basic; BENCH_DATA's lines are "<Authorization
--                              header>\t<refresh token>", one grant per connection
--                  flow     -- the whole code flow of signed-in people, each connection in
--                              turn: GET the authorize path of BENCH_DATA's first line with
--                              a person's cookie, then POST the code of the 302's Location
--                              to /oauth/token with the Authorization header of its second
--                              line (the exchange form of BENCH_VERIFIER/BENCH_REDIRECT).
--                              The lines after those two are cookies, one per person; they
--                              are dealt to the threads as for refresh, and each thread's
--                              authorization requests take its cookies in turn (wrk does not
--                              say which connection asks, so a person is not pinned to a
--                              connection: with as many people as connections, the requests
--                              in flight are of different people but for a rare overlap).
--                              A thread keeps the codes its 302s carried in a queue, and
--                              request() sends a code when one waits, else an authorization
--                              request (so each connection alternates; the 200s counted are
--                              the flows completed)
--   BENCH_DATA     file of tokens or credentials (one per line)
--   BENCH_THREADS  wrk's thread count (refresh: to deal the tokens)
--   BENCH_PREFIX   random, per wrk invocation (register)
--   BENCH_PASSWORD password of registered users (register)
--   BENCH_TRACK    1: also count responses by status and keep one body per non-2xx status
--                  (costs a Lua call per response: used by the diagnostic re-runs and by
--                  the scenarios whose every answer must have one status)
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles (us).

local mode = os.getenv("BENCH_MODE") or "static"
local data_path = os.getenv("BENCH_DATA")
local prefix = os.getenv("BENCH_PREFIX") or "run"
local password = os.getenv("BENCH_PASSWORD") or "a benchmark passphrase 7f3a"
local track = os.getenv("BENCH_TRACK") == "1"
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
local verifier = os.getenv("BENCH_VERIFIER") or ""
local redirect = os.getenv("BENCH_REDIRECT") or ""

local threads = {}

-- microseconds of CLOCK_MONOTONIC (once: when a thread started and stopped)
local now_us = function() return 0 end
if mode == "once" then
  local ok, ffi = pcall(require, "ffi")
  if ok then
    ffi.cdef [[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clk_id, bench_timespec *tp);
    ]]
    local ts = ffi.new("bench_timespec")
    now_us = function()
      ffi.C.clock_gettime(1, ts)
      return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
    end
  end
end

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
  -- refresh: this thread's queue of current refresh tokens, and what went wrong
  queue, qhead, qtail = {}, 1, 0
  tokens, starved, unparsed = 0, 0, 0
  -- wrk calls request() once on the first thread's Lua state right after init(), before
  -- any connection, to check what it returns (script_verify_request): that call must
  -- not take a token, or one connection of that thread would have none
  verifying = (tid or 0) == 0
  codes, ncodes = {}, 0
  first_us, stop_us = 0, 0
  if mode == "refresh" or mode == "once" or mode == "oauth_refresh" then
    for i, tok in ipairs(read_lines(data_path)) do
      if mode == "oauth_refresh" then
        local auth, t = tok:match("^([^\t]+)\t(.+)$")
        client_auth, tok = auth, t
      end
      if (i - 1) % nthreads == (tid or 0) then
        qtail = qtail + 1
        queue[qtail] = tok
      end
    end
    tokens = qtail
  elseif mode == "flow" or mode == "mint" then
    -- the authorize path, (flow) the client's Authorization header, then the cookies
    local lines = read_lines(data_path)
    local first = mode == "flow" and 3 or 2
    client_auth = mode == "flow" and lines[2] or nil
    local cookies = {}
    for i = first, #lines do cookies[#cookies + 1] = lines[i] end
    for i, cookie in ipairs(cookies) do
      -- dealt as the refresh chains: cookie i to thread (i - 1) % threads; a thread with
      -- none (fewer people than threads) takes them all
      if (i - 1) % nthreads == (tid or 0) or #cookies < nthreads then
        reqs[#reqs + 1] = wrk.format("GET", lines[1], { ["Cookie"] = cookie })
      end
    end
  elseif mode == "tokens" then
    for _, tok in ipairs(read_lines(data_path)) do
      reqs[#reqs + 1] = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. tok })
    end
  elseif mode == "form" then
    for _, line in ipairs(read_lines(data_path)) do
      local auth, body = line:match("^([^\t]+)\t(.+)$")
      reqs[#reqs + 1] = wrk.format("POST", wrk.path,
        { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth },
        body)
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

if mode == "tokens" or mode == "login" or mode == "form" or mode == "mint" then
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
elseif mode == "refresh" then
  local headers = { ["Content-Type"] = "application/json" }
  function request()
    local tok
    if verifying then
      verifying = false
      tok = "wrk-verifies-the-request"
    elseif qhead <= qtail then
      tok = queue[qhead]
      queue[qhead] = nil
      qhead = qhead + 1
    else
      -- this connection's chain is broken: an invalid token, answered 400 (an error)
      starved = starved + 1
      tok = "no-token-left"
    end
    return wrk.format("POST", wrk.path, headers, '{"refresh_token":"' .. tok .. '"}')
  end
end

if mode == "oauth_refresh" then
  local headers = nil
  function request()
    headers = headers or { ["Content-Type"] = "application/x-www-form-urlencoded",
                           ["Authorization"] = client_auth or "" }
    local tok
    if verifying then
      verifying = false
      tok = "wrk-verifies-the-request"
    elseif qhead <= qtail then
      tok = queue[qhead]
      queue[qhead] = nil
      qhead = qhead + 1
    else
      starved = starved + 1
      tok = "no-token-left"
    end
    return wrk.format("POST", wrk.path, headers,
      "grant_type=refresh_token&refresh_token=" .. urlencode(tok))
  end
elseif mode == "flow" then
  local headers = nil
  function request()
    headers = headers or { ["Content-Type"] = "application/x-www-form-urlencoded",
                           ["Authorization"] = client_auth or "" }
    if verifying then
      verifying = false
      return reqs[1]
    end
    if qhead <= qtail then
      local code = queue[qhead]
      queue[qhead] = nil
      qhead = qhead + 1
      return wrk.format("POST", "/oauth/token", headers,
        "grant_type=authorization_code&code=" .. code .. "&redirect_uri=" ..
        urlencode(redirect) .. "&code_verifier=" .. urlencode(verifier))
    end
    -- the next person of this thread
    idx = idx % #reqs + 1
    return reqs[idx]
  end
end

if mode == "once" then
  function request()
    local line
    if verifying then
      verifying = false
      return wrk.format("POST", wrk.path, nil, "")
    elseif qhead <= qtail then
      line = queue[qhead]
      queue[qhead] = nil
      qhead = qhead + 1
      if first_us == 0 then first_us = now_us() end
    else
      -- this thread's lines are spent: stop it
      starved = starved + 1
      if stop_us == 0 then stop_us = now_us() end
      wrk.thread:stop()
      return wrk.format("POST", wrk.path, nil, "")
    end
    local auth, body = line:match("^([^\t]+)\t(.+)$")
    return wrk.format("POST", wrk.path,
      { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth }, body)
  end
end

local function record(status, body)
  statuses[status] = (statuses[status] or 0) + 1
  if (status < 200 or status > 299) and samples[status] == nil then
    samples[status] = string.sub(body or "", 1, 300)
  end
end

if mode == "refresh" or mode == "oauth_refresh" then
  function response(status, headers, body)
    if status == 200 then
      local tok = string.match(body or "", '"refresh_token"%s*:%s*"([^"]+)"')
      if tok then
        qtail = qtail + 1
        queue[qtail] = tok
      else
        unparsed = unparsed + 1
      end
    end
    if track then record(status, body) end
  end
elseif mode == "flow" then
  function response(status, headers, body)
    if status == 302 then
      local loc = headers["location"] or headers["Location"] or ""
      local code = string.match(loc, "[?&]code=([^&]+)")
      if code then
        qtail = qtail + 1
        queue[qtail] = code
      else
        unparsed = unparsed + 1
      end
    end
    if track then record(status, body) end
  end
elseif mode == "mint" then
  function response(status, headers, body)
    local loc = headers["location"] or headers["Location"] or ""
    local code = string.match(loc, "[?&]code=([^&]+)")
    if code then
      ncodes = ncodes + 1
      codes[ncodes] = code
    end
    if track then record(status, body) end
  end
elseif track then
  function response(status, headers, body)
    record(status, body)
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
  local ntokens, nstarved, nunparsed = 0, 0, 0
  local t_first, t_last, all_stopped = nil, 0, true
  for _, t in ipairs(threads) do
    local f, st = t:get("first_us") or 0, t:get("stop_us") or 0
    if f > 0 and (t_first == nil or f < t_first) then t_first = f end
    if st == 0 then all_stopped = false elseif st > t_last then t_last = st end
    ntokens = ntokens + (t:get("tokens") or 0)
    nstarved = nstarved + (t:get("starved") or 0)
    nunparsed = nunparsed + (t:get("unparsed") or 0)
    local st = t:get("statuses") or {}
    for k, v in pairs(st) do
      counts[k] = (counts[k] or 0) + v
    end
    local sm = t:get("samples") or {}
    for k, v in pairs(sm) do
      if bodies[k] == nil then bodies[k] = v end
    end
  end
  if mode == "mint" then
    local f = assert(io.open(data_path .. ".codes", "w"))
    for _, t in ipairs(threads) do
      for _, c in ipairs(t:get("codes") or {}) do f:write(c, "\n") end
    end
    f:close()
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
    '"tracked":%s,"statuses":{%s},"samples":{%s},' ..
    '"chains":{"tokens":%d,"starved":%d,"unparsed":%d},"once_active_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    summary.requests > 0 and latency.min or 0,
    summary.requests > 0 and latency.mean or 0, summary.requests > 0 and latency.stdev or 0,
    summary.requests > 0 and latency.max or 0,
    p(50), p(75), p(90), p(99), p(99.9),
    track and "true" or "false", table.concat(cs, ","), table.concat(bs, ","),
    ntokens, nstarved, nunparsed,
    (mode == "once" and all_stopped and t_first) and (t_last - t_first) or 0))
end
