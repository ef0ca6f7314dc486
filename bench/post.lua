-- post.lua: wrk script for `make bench`. Posts the given fixture bodies in
-- turn, each with every MessageId replaced by a fresh one, so that every
-- request is a new event (the same body twice would be a duplicate, which
-- slhook answers without storing anything), and every DateTime by the time
-- of sending, as SocketLabs sends events as they happen (fractions of the
-- second count up within each second). The spool keys events on their
-- DateTime (spool.h): the fixtures' fixed dates would make every event of a
-- run share a few, which real traffic never does.
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

-- The values replaced, JSON and form: what precedes each value (cut
-- before it), and which value goes in.
local fields = {
   {pat = '"MessageId":"[^"]*"', skip = 13, tail = 0, kind = "id"},
   {pat = "MessageId=[^&]*", skip = 10, tail = 1, kind = "id"},
   {pat = '"DateTime":"[^"]*"', skip = 12, tail = 0, kind = "iso"},
   {pat = "DateTime=[^&]*", skip = 9, tail = 1, kind = "http"},
}

-- The body cut around each value: pieces[1] value pieces[2] value ...,
-- kinds[i] naming the value after pieces[i].
local function split(s)
   local pieces, kinds = {}, {}
   local at = 1
   while true do
      local first, fa, fb
      for _, f in ipairs(fields) do
         local a, b = s:find(f.pat, at)
         if a and (not fa or a < fa) then first, fa, fb = f, a, b end
      end
      if not first then break end
      table.insert(pieces, s:sub(at, fa + first.skip - 1))
      table.insert(kinds, first.kind)
      at = fb + first.tail
   end
   table.insert(pieces, s:sub(at))
   return pieces, kinds
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
      local pieces, kinds = split(s)
      table.insert(bodies, {pieces = pieces, kinds = kinds, ctype = ctype})
   end
   assert(#bodies > 0, "post.lua: no bodies")
end

-- The current second's DateTime texts, and requests sent within it.
local second, iso, http, within = -1, "", "", 0
local escapes = {[","] = "%2C", [":"] = "%3A", [" "] = "%20"}

function request()
   local b = bodies[next_body]
   next_body = next_body % #bodies + 1
   counter = counter + 1
   local now = os.time()
   if now ~= second then
      second, within = now, 0
      iso = os.date("!%Y-%m-%dT%H:%M:%S", now)
      http = os.date("!%a, %d %b %Y %H:%M:%S GMT", now):gsub("[,: ]", escapes)
   end
   within = within + 1
   local values = {
      id = tag .. "-" .. tid .. "-" .. counter,
      iso = iso .. string.format(".%07dZ", within),
      http = http,
   }
   local parts = {}
   for i, piece in ipairs(b.pieces) do
      parts[#parts + 1] = piece
      if b.kinds[i] then parts[#parts + 1] = values[b.kinds[i]] end
   end
   return wrk.format("POST", nil, {["Content-Type"] = b.ctype},
                     table.concat(parts))
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
