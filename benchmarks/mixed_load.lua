-- Mixed agent traffic for wrk: reads (queries) and writes (adds, votes) drawn from a file of
-- prepared requests, one per line: KIND <tab> PATH <tab> JSON BODY. Each add is used once
-- (threads take interleaved lines), so none of them is a dedup hit.
-- Settings come from the environment: MIXED_FILE, READ_SHARE, API_KEY.

local reads, adds, votes = {}, {}, {}
local read_share = tonumber(os.getenv("READ_SHARE") or "0.8")
local threads = {}

local function load(path)
  for line in io.lines(path) do
    local kind, p, body = line:match("^(%a+)\t([^\t]+)\t(.*)$")
    local item = { path = p, body = body }
    if kind == "read" then table.insert(reads, item)
    elseif kind == "add" then table.insert(adds, item)
    else table.insert(votes, item) end
  end
end

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  load(os.getenv("MIXED_FILE"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("API_KEY") or "dev-key")
  math.randomseed(1000 + id)
  next_add = id + 1
  counts = { read = 0, add = 0, vote = 0, bad = 0 }
end

function request()
  local r = math.random()
  local item, kind
  if r < read_share then
    item, kind = reads[math.random(#reads)], "read"
  elseif r < read_share + (1 - read_share) / 2 and next_add <= #adds then
    item, kind = adds[next_add], "add"
    next_add = next_add + #threads
  else
    item, kind = votes[math.random(#votes)], "vote"
  end
  counts[kind] = counts[kind] + 1
  return wrk.format(nil, item.path, nil, item.body)
end

function response(status, headers, body)
  if status >= 400 then counts.bad = counts.bad + 1 end
end

function done(summary, latency, requests)
  local total = { read = 0, add = 0, vote = 0, bad = 0 }
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = total[k] + v end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"status_errors": %d, "timeouts": %d, "reads": %d, "adds": %d, "votes": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    total.read, total.add, total.vote))
end
