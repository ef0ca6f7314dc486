-- post.lua: wrk script for `make bench`. Posts the given fixture bodies in
-- turn, each with every MessageId replaced by a fresh one, so that every
-- request is a new event (the same body twice would be a duplicate, which
-- slhook answers without storing anything).
--
--   wrk ... -s bench/post.lua URL -- TAG FILE...
--
-- MessageIds read TAG-THREAD-N, so the spool can be asked afterwards how
-- many requests of a run it holds. done() prints one machine-readable line:
--   RESULT requests=N seconds=S rps=R p50_ms=A p99_ms=B non2xx=N errors=N

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

local tag = "run"
local bodies = {}
local next_body = 1
local counter = 0

-- The body cut around each MessageId value: pieces[1] id pieces[2] id ...
local function split(s)
   local pieces = {}
   local at = 1
   while true do
      local a, b = s:find('"MessageId":"[^"]*"', at)
      local skip = 13
      if not a then
         a, b = s:find("MessageId=[^&]*", at)
         skip = 10
         if not a then break end
         b = b + 1
      end
      table.insert(pieces, s:sub(at, a + skip - 1))
      at = b
   end
   table.insert(pieces, s:sub(at))
   return pieces
end

function init(args)
   tag = args[1]
   for i = 2, #args do
      local f = assert(io.open(args[i], "rb"))
      local s = f:read("*a"):gsub("%s+$", "")
      f:close()
      local c = s:sub(1, 1)
      local ctype = "application/x-www-form-urlencoded"
      if c == "{" or c == "[" then ctype = "application/json" end
      table.insert(bodies, {pieces = split(s), ctype = ctype})
   end
   assert(#bodies > 0, "post.lua: no bodies")
end

function request()
   local b = bodies[next_body]
   next_body = next_body % #bodies + 1
   counter = counter + 1
   local id = tag .. "-" .. tid .. "-" .. counter
   local body = table.concat(b.pieces, id)
   return wrk.format("POST", nil, {["Content-Type"] = b.ctype}, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f "
         .. "non2xx=%d errors=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      e.status, e.connect + e.read + e.write + e.timeout))
end
