-- Copyright (c) cloudpatterns.mysql developers
-- SPDX-License-Identifier: Apache-2.0
--
-- wrk script: POST JSON SQL requests ({"query": ..., "params": [...]}) to the URL's path and print
-- the results as ONE machine-readable line: CPM_WRK_RESULT {json}.
--
--   wrk -t2 -c16 -d30s -s post_json.lua http://gatekeeper:3000/random -- id_max=599
--
-- Settings come from `key=value` arguments after `--`, else from environment variables WRK_<KEY>:
--   query          SQL of the single request         (default: a sakila customer primary-key read)
--   params         JSON array of its parameters      (default: [$id])
--   body           a whole JSON body instead of query/params
--   requests_file  a file with one JSON body per line (blank and # lines skipped); the requests
--                  cycle through its lines in order, so 8 reads + 2 writes make an 80/20 mix
--   id_min, id_max the range `$id` is drawn from      (default 1..599, sakila's customer ids)
--   seed           random seed, per thread seed+thread number (default 42: runs are repeatable)
--   pool           requests pre-built per thread     (default 1000; rounded up to whole cycles)
--   api_key        value of the API key header       (prefer WRK_API_KEY: arguments show in ps)
--   api_key_header its name                          (default X-API-Key)
--   status_counts  0 to skip counting responses by status (saves parsing headers and bodies)
-- Every `$id` in a body becomes a random integer in [id_min, id_max].

local MARKER = "CPM_WRK_RESULT "
local NULL = {} -- encodes as JSON null (a nil cannot be stored in a table)
local DEFAULT_QUERY = "SELECT customer_id, first_name, last_name FROM customer WHERE customer_id = %s"

-- Setup and done run in their own Lua state; each thread runs in another one.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_number", #threads)
end

local function setting(args, name, default)
   for _, arg in ipairs(args) do
      local key, value = arg:match("^([%w_]+)=(.*)$")
      if key == name then
         return value
      end
   end
   local value = os.getenv("WRK_" .. name:upper())
   if value ~= nil and value ~= "" then
      return value
   end
   return default
end

local function json_string(text)
   local escaped = text:gsub('[%c"\\]', function(char)
      local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
      return named[char] or string.format("\\u%04x", char:byte())
   end)
   return '"' .. escaped .. '"'
end

local function read_templates(path)
   local file, problem = io.open(path, "r")
   if not file then
      error("post_json.lua: cannot read requests_file: " .. tostring(problem))
   end
   local templates = {}
   for line in file:lines() do
      if line:match("%S") and not line:match("^%s*#") then
         table.insert(templates, line)
      end
   end
   file:close()
   if #templates == 0 then
      error("post_json.lua: requests_file " .. path .. " has no request line")
   end
   return templates
end

local function templates_from(args)
   local path = setting(args, "requests_file", nil)
   if path then
      return read_templates(path)
   end
   local body = setting(args, "body", nil)
   if body then
      return { body }
   end
   local query = setting(args, "query", DEFAULT_QUERY)
   local params = setting(args, "params", "[$id]")
   return { '{"query": ' .. json_string(query) .. ', "params": ' .. params .. "}" }
end

function init(args)
   local templates = templates_from(args)
   local id_min = tonumber(setting(args, "id_min", "1"))
   local id_max = tonumber(setting(args, "id_max", "599"))
   local seed = tonumber(setting(args, "seed", "42"))
   local wanted = tonumber(setting(args, "pool", "1000"))
   if not (id_min and id_max and seed and wanted) or id_min > id_max or wanted < 1 then
      error("post_json.lua: id_min, id_max, seed and pool must be numbers, id_min <= id_max, pool >= 1")
   end
   math.randomseed(seed + (thread_number or 0))

   local headers = { ["Content-Type"] = "application/json" }
   local api_key = setting(args, "api_key", nil)
   if api_key then
      headers[setting(args, "api_key_header", "X-API-Key")] = api_key
   end

   -- Pre-built requests: building one per call is what the wrk docs warn is expensive.
   local size = math.ceil(wanted / #templates) * #templates
   pool = {}
   for index = 1, size do
      local template = templates[(index - 1) % #templates + 1]
      local body = template:gsub("%$id", function()
         return tostring(math.random(id_min, id_max))
      end)
      pool[index] = wrk.format("POST", wrk.path, headers, body)
   end
   position = 0

   status_counts = {}
   if setting(args, "status_counts", "1") == "0" then
      response = nil
   end
end

function request()
   position = position % #pool + 1
   return pool[position]
end

function response(status, _headers, _body)
   status_counts[status] = (status_counts[status] or 0) + 1
end

local function encode(value)
   if value == NULL then
      return "null"
   elseif type(value) == "table" then
      local keys = {}
      for key in pairs(value) do
         table.insert(keys, key)
      end
      table.sort(keys)
      local parts = {}
      for _, key in ipairs(keys) do
         table.insert(parts, json_string(tostring(key)) .. ": " .. encode(value[key]))
      end
      return "{" .. table.concat(parts, ", ") .. "}"
   elseif type(value) == "string" then
      return json_string(value)
   elseif type(value) == "boolean" or value == nil then
      return tostring(value == true)
   elseif value == math.floor(value) and math.abs(value) < 2 ^ 53 then
      return string.format("%d", value)
   end
   return string.format("%.3f", value)
end

local function milliseconds(microseconds)
   return microseconds / 1000
end

function done(summary, latency, _requests)
   local counts, counted = {}, false
   for _, thread in ipairs(threads) do
      local per_thread = thread:get("status_counts")
      if type(per_thread) == "table" then
         for status, count in pairs(per_thread) do
            counts[tostring(status)] = (counts[tostring(status)] or 0) + count
            counted = true
         end
      end
   end
   local non_2xx = 0
   for status, count in pairs(counts) do
      if tonumber(status) < 200 or tonumber(status) > 299 then
         non_2xx = non_2xx + count
      end
   end
   local seconds = summary.duration / 1e6
   local result = {
      threads = #threads,
      requests = summary.requests,
      duration_s = seconds,
      bytes = summary.bytes,
      requests_per_sec = seconds > 0 and summary.requests / seconds or 0,
      errors = summary.errors,
      latency_ms = NULL,
   }
   -- With no latency sample (every request timed out), wrk leaves min at 2^64 and max at 0.
   if latency.min <= latency.max then
      result.latency_ms = {
         min = milliseconds(latency.min),
         mean = milliseconds(latency.mean),
         stdev = milliseconds(latency.stdev),
         max = milliseconds(latency.max),
         p50 = milliseconds(latency:percentile(50)),
         p90 = milliseconds(latency:percentile(90)),
         p95 = milliseconds(latency:percentile(95)),
         p99 = milliseconds(latency:percentile(99)),
      }
   end
   if counted or summary.requests == 0 then
      result.status_codes = counts
      result.non_2xx = non_2xx
   end
   io.write(MARKER, encode(result), "\n")
end
