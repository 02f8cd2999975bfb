-- Replays prepared HTTP requests round-robin, one file per wrk thread (disjoint slices).
-- Usage: wrk -s replay.lua URL -- PREFIX   (thread N reads PREFIX.N: requests separated by NUL)
-- The requests are complete HTTP/1.1 messages, so request() only hands back a string.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1] .. "." .. id, "rb"))
   local data = file:read("*a")
   file:close()
   prepared = {}
   local start = 1
   while start <= #data do
      local stop = string.find(data, "\0", start, true) or (#data + 1)
      prepared[#prepared + 1] = string.sub(data, start, stop - 1)
      start = stop + 1
   end
   prepared_count = #prepared
   sent = 0
end

function request()
   sent = sent + 1
   return prepared[(sent - 1) % #prepared + 1]
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      io.write(string.format("replay: thread %d sent %d of %d prepared\n",
                             thread:get("id"), thread:get("sent"), thread:get("prepared_count")))
   end
end
