-- netgym's Lua bridge: drives one FCEUX instance frame by frame for one client.
--
-- FCEUX runs this with --loadlua. It binds a TCP port, writes "port N TID" (or
-- "error MESSAGE") to $NETGYM_PORT_FILE, runs the game's start sequence, keeps
-- an in-memory save state of the start of play, then serves one client in
-- lockstep. The wire format is in docs/games.md ("The bridge protocol").
-- The game's own script (reward, done, info) runs inside pcall: its errors
-- are sent to the client, never fatal here.

-- The bridge's own references to the globals it uses: a game script that assigns
-- one (`type = memory.readbyte(0x30)`, a `local` forgotten) cannot break it.
local assert, collect, error, getmetatable, ipairs, pairs, pcall, select, tonumber, tostring,
  type, unpack, xpcall = assert, collectgarbage, error, getmetatable, ipairs, pairs, pcall, select,
  tonumber, tostring, type, unpack, xpcall
local coroutine_create, coroutine_resume = coroutine.create, coroutine.resume
local debug, emu, gui, io, joypad, math, memory, os, savestate, string, table =
  debug, emu, gui, io, joypad, math, memory, os, savestate, string, table

local has_socket, socket = pcall(require, "socket")

local function env(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then return default end
  return value
end

local port_file = env("NETGYM_PORT_FILE", nil)
local bind_host = env("NETGYM_BIND", "127.0.0.1")
local script_path = env("NETGYM_GAME_SCRIPT", nil)
local frames_per_step = tonumber(env("NETGYM_FRAMES_PER_STEP", "1"))
local want_screen = env("NETGYM_SCREEN", "1") == "1"
local attach_timeout = tonumber(env("NETGYM_ATTACH_TIMEOUT", "30"))
local idle_timeout = tonumber(env("NETGYM_IDLE_TIMEOUT", "0"))  -- 0: wait for ever
-- How long one call of game.step() or game.reset() may run (0: no limit). The
-- client sets it below its own timeout, so that an endless loop in a script is
-- an error that names its line, where the client would only see no reply.
local script_timeout = tonumber(env("NETGYM_SCRIPT_TIMEOUT", "0")) or 0
-- The Lua memory a game script may hold (0: no limit), so that one that keeps
-- a little more every step ends with an error, not with the host's memory.
local memory_limit_mb = tonumber(env("NETGYM_SCRIPT_MEMORY_MB", "0")) or 0
local start_sequence = env("NETGYM_START", "")
local from_savestate = env("NETGYM_SAVESTATE", "0") == "1"
-- When set, screens go into this file (made by the service, on a tmpfs the
-- client shares) and replies carry only their length: one write of 245 KB
-- instead of thirty 8 KB socket sends, which cost FCEUX more than a frame.
local screen_path = env("NETGYM_SCREEN_FILE", nil)
-- Why the bridge ended FCEUX of its own accord, for the service to report.
local exit_file = env("NETGYM_EXIT_FILE", nil)
-- A client sends this first: any process that reaches the port could connect,
-- but only the one the service gave the instance to knows it.
local bridge_key = env("NETGYM_BRIDGE_KEY", "")
local print_mark = env("NETGYM_PRINT_MARK", "")
local error_mark = env("NETGYM_ERROR_MARK", "")

local ram_addresses = {}
for address in string.gmatch(env("NETGYM_RAM", ""), "%d+") do
  table.insert(ram_addresses, tonumber(address))
end

local BUTTONS = {"A", "B", "select", "start", "up", "down", "left", "right"}

local function report(text)
  local tmp = port_file .. ".tmp"
  local file = assert(io.open(tmp, "w"))
  file:write(text)
  file:close()
  os.rename(tmp, port_file)
end

local function note_exit(why)
  if exit_file == nil then return end
  local file = io.open(exit_file, "w")
  if file ~= nil then
    file:write(why)
    file:close()
  end
end

-- The bridge's own start-up errors say "bridge: " (instances.py tells them
-- from the game script's).
local function give_up(message)
  report("error bridge: " .. message)
  emu.exit()
end

if not has_socket then
  give_up("LuaSocket does not load in FCEUX's Lua 5.1 (Debian: apt-get install lua-socket): "
    .. tostring(socket))
  return
end
local gettime, sethook, get_info = socket.gettime, debug.sethook, debug.getinfo

local function u32(n)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 16777216) % 256)
end

local function read_u32(s, offset)
  local a, b, c, d = string.byte(s, offset, offset + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

local function pad_for(mask)
  local pad = {}
  for i, name in ipairs(BUTTONS) do
    pad[name] = math.floor(mask / 2 ^ (i - 1)) % 2 == 1
  end
  return pad
end

-- The bridge's own: a game script gets functions that refuse (below).
local set_pad, frame_advance = joypad.set, emu.frameadvance

local function advance(mask, frames)
  local pad = pad_for(mask)
  for _ = 1, frames do
    set_pad(1, pad)
    frame_advance()
  end
end

-- "w60,p8:1" = wait 60 frames, then hold buttons mask 8 (start) for 1 frame.
local function run_start_sequence()
  for kind, a, b in string.gmatch(start_sequence, "(%a)(%d+):?(%d*)") do
    if kind == "w" then
      advance(0, tonumber(a))
    else
      advance(tonumber(a), tonumber(b))
    end
  end
end

-- What a game script may not call: an error, with the script's line, as it loads.
local function forbidden(name, why)
  return function() error(name .. "() " .. why, 2) end
end
-- The bridge answers from FCEUX's after-emulation hook (below); FCEUX keeps
-- one function per hook, so a game script must not take it over.
local register_after = emu.registerafter
local BRIDGES = "is the bridge's: a game script only reads RAM"
-- Frames and buttons are the bridge's too: a step plays what the agent chose.
local OWNS_FRAMES = "is the bridge's: it plays the frames and holds the agent's buttons; "
  .. "a game script only reads RAM"
joypad.set = forbidden("joypad.set", OWNS_FRAMES)
joypad.write = forbidden("joypad.write", OWNS_FRAMES)
-- Nor may it register callbacks: FCEUX does not call memory hooks while the
-- bridge drives it (seen with memory.registerwrite), and an error in one would
-- stop every script, the bridge with it. A script reads RAM in game.step().
local NO_CALLBACKS = "is not available to a game script: its callbacks do not run "
  .. "while the bridge drives FCEUX; read RAM in game.step()"
for _, name in ipairs({"register", "registerwrite", "registerread", "registerexec",
                       "registerexecute", "registerrun"}) do
  if memory[name] ~= nil then memory[name] = forbidden("memory." .. name, NO_CALLBACKS) end
end
gui.register = forbidden("gui.register", NO_CALLBACKS)

-- FCEUX's print() writes to its Lua console window, which a headless FCEUX
-- has none of. A game script's print() goes to FCEUX's output instead, a line
-- at a time, marked so that the service passes it on to its own log.
local stdout, concat, gsub = io.stdout, table.concat, string.gsub
stdout:setvbuf("line")
local function write_marked(mark, ...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  -- Each line marked, those of a multi-line text (a traceback, say) too.
  local text = gsub(concat(parts, "\t"), "\r\n?", "\n")
  stdout:write(mark, (gsub(text, "\n", "\n" .. mark)), "\n")
end
function print(...) write_marked(print_mark, ...) end

-- FCEUX runs in the instance's own home folder: GAME_DIR names the game's,
-- for the script's own files, and require() looks there first.
GAME_DIR = script_path:match("^(.*)/[^/]*$") or "."
-- A searcher of its own, not GAME_DIR in package.path: a folder whose path has a
-- ';' or a '?' (Lua's separator and placeholder there) would be searched wrong.
do
  local game_dir, load_file, open, replace = GAME_DIR, loadfile, io.open, string.gsub
  table.insert(package.loaders, 2, function(name)
    local path = game_dir .. "/" .. replace(name, "%.", "/") .. ".lua"
    local file = open(path)
    if file == nil then return "\n\tno file '" .. path .. "'" end
    file:close()
    local chunk, problem = load_file(path)
    if chunk == nil then
      error("error loading module '" .. name .. "' from file '" .. path .. "':\n\t" .. problem, 0)
    end
    return chunk
  end)
end

-- A module that is nowhere: say where it belongs, not every folder of Lua's own
-- search paths (a dozen lines of system folders).
local find_module, find, sub, game_dir = require, string.find, string.sub, GAME_DIR
function require(name)
  local found, module = pcall(find_module, name)
  if found then return module end
  -- Lua's own message for this very name (not one from a module it loads).
  local missing = type(name) == "string" and "module '" .. name .. "' not found:"
  if missing and type(module) == "string" and sub(module, 1, #missing) == missing
    and find(module, "no field package.preload", 1, true) then
    error(missing .. " put " .. (gsub(name, "%.", "/")) .. ".lua in the game folder "
      .. game_dir .. ", where require() looks first", 2)
  end
  error(module, 0)
end

-- The libraries as they are now, for the bridge alone: the game script shares
-- the tables, and may change a function in one (`string.format = ...`).
local function own_copy(library)
  local copy = {}
  for name, value in pairs(library) do copy[name] = value end
  return copy
end
emu, gui, math, memory, savestate, string, table =
  own_copy(emu), own_copy(gui), own_copy(math), own_copy(memory), own_copy(savestate),
  own_copy(string), own_copy(table)
-- Nor may the script play frames, take the hooks or run FCEUX as it pleases (the
-- bridge has its own copies). FCEUX gives the emu functions a second time, in
-- its old FCEU table.
local RUNS_FCEUX = "is the bridge's: it runs FCEUX, and a game script only reads RAM "
  .. "(to end an episode, return done = true)"
local NOT_FOR_SCRIPTS = {
  frameadvance = OWNS_FRAMES, registerafter = BRIDGES, registerbefore = BRIDGES,
  exit = RUNS_FCEUX, pause = RUNS_FCEUX, unpause = RUNS_FCEUX, poweron = RUNS_FCEUX,
  softreset = RUNS_FCEUX, speedmode = RUNS_FCEUX,
}
for _, library in ipairs({{_G.emu, "emu"}, {_G.FCEU, "FCEU"}}) do
  local functions, prefix = library[1], library[2]
  if type(functions) == "table" then
    for name, why in pairs(NOT_FOR_SCRIPTS) do
      functions[name] = forbidden(prefix .. "." .. name, why)
    end
  end
end
os.exit = forbidden("os.exit", RUNS_FCEUX)
-- The bridge's hook stops a call of the script that runs too long or holds too
-- much (below); the script may not take it away.
debug.sethook = forbidden("debug.sethook", "is the bridge's: it stops a call of game.step() "
  .. "or game.reset() that runs too long")

-- A game's function, called with xpcall, and stopped with an error at the line it
-- runs when it runs past script_timeout or holds more than memory_limit_mb: a
-- count hook looks every hundred Lua instructions, which a script that returns
-- at once seldom reaches. Once it must stop, the hook raises at every instruction
-- of the script's, so that the script's own pcall() cannot keep it, and at none
-- of the bridge's.
local bridge_source = debug.getinfo(1, "S").source
local running, running_until, why_stopped = "the script", math.huge, nil
local LOOK_EVERY = 100  -- instructions: a loop of slow C calls is seen in time too

local function held_mb()
  return collect("count") / 1024
end

local function over_memory()
  if memory_limit_mb <= 0 or held_mb() <= memory_limit_mb then return false end
  collect("collect")  -- what it holds, not what it has dropped
  return held_mb() > memory_limit_mb
end

local function memory_problem()
  -- Rounded up: 256.3 MB over a limit of 256 is "257", not "256, over the 256".
  return string.format(" holds %d MB of Lua memory, over the %g MB a game script may "
    .. "hold (NETGYM_EMULATOR_SCRIPT_MEMORY_MB): does a table grow at every step?",
    math.ceil(held_mb()), memory_limit_mb)
end

local function look_at_the_script()
  if why_stopped == nil then
    if gettime() > running_until then
      why_stopped = " has run for more than " .. string.format("%g", script_timeout)
        .. " s, the time its client allows (an endless loop? a loop that waits for "
        .. "RAM to change cannot: frames advance only between calls)"
    elseif over_memory() then
      why_stopped = memory_problem()
    else
      return
    end
  end
  sethook(look_at_the_script, "", 1)  -- in whichever thread (coroutine) sees it
  if get_info(2, "S").source ~= bridge_source then error(running .. why_stopped, 2) end
end

-- An error value as text, even one whose __tostring fails.
local function error_text(problem)
  local shown, text = pcall(tostring, problem)
  if not shown then text = "an error whose value tostring() fails on: " .. tostring(text) end
  return text
end

-- Lua gives a place only to an error that is a string: a script's error({...})
-- or error() gets the line of the script's that raised it here.
local function located(problem)
  if type(problem) == "string" then return problem end
  -- As text made here, under the hook: the value's __tostring is the script's code.
  local said = running .. " raised a " .. type(problem) .. " as its error, not a message: "
    .. error_text(problem)
  for level = 2, 50 do
    local info = get_info(level, "Sl")
    if info == nil then break end
    if info.currentline > 0 and info.source ~= bridge_source then
      return string.gsub(info.source, "^@", "") .. ":" .. info.currentline .. ": " .. said
    end
  end
  return said
end

-- A coroutine of the script's runs under the same hook, while it runs: Lua sets
-- hooks per thread, and Lua 5.1 keeps an entry for each thread hooked until its
-- hook is cleared, even once the thread is gone.
local function unhook_thread(thread, ...)
  sethook(thread)
  return ...
end
local function resume(thread, ...)
  if type(thread) ~= "thread" then
    error("bad argument #1 to 'resume' (coroutine expected, got " .. type(thread) .. ")", 2)
  end
  if script_timeout <= 0 and memory_limit_mb <= 0 then return coroutine_resume(thread, ...) end
  sethook(thread, look_at_the_script, "", why_stopped and 1 or LOOK_EVERY)
  return unhook_thread(thread, coroutine_resume(thread, ...))
end
coroutine.resume = resume
local function rethrown(ok, ...)
  if not ok then error((...), 0) end
  return ...
end
function coroutine.wrap(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'wrap' (function expected, got " .. type(fn) .. ")", 2)
  end
  local thread = coroutine_create(fn)
  return function(...) return rethrown(resume(thread, ...)) end
end

local function unhooked(...)
  sethook()
  return ...
end

-- What a call that returned still holds, and what it could not get from the
-- system (Lua gives that error no place): named by where its function is defined.
local function checked(fn, called, ...)
  local problem = nil
  if called and over_memory() then
    problem = memory_problem()
  elseif not called and (...) == "not enough memory" then
    problem = string.format(" asked for more memory than its instance may have (%g MB for "
      .. "the script, NETGYM_EMULATOR_SCRIPT_MEMORY_MB, and 1 GB for FCEUX): one string or "
      .. "table that large?", memory_limit_mb)
  end
  if problem == nil then return called, ... end
  local defined = get_info(fn, "S")
  -- The script's main chunk is defined at line 0: name the file alone.
  local line = defined.linedefined > 0 and ":" .. defined.linedefined or ""
  return false, string.gsub(defined.source, "^@", "") .. line .. ": " .. running .. problem
end

local function call_game(name, fn)
  running, why_stopped = name, nil
  if script_timeout <= 0 and memory_limit_mb <= 0 then return xpcall(fn, located) end
  running_until = script_timeout > 0 and gettime() + script_timeout or math.huge
  sethook(look_at_the_script, "", LOOK_EVERY)
  return checked(fn, unhooked(xpcall(fn, located)))
end

-- Its top level runs under the same limits as game.step(): an endless loop or a
-- table that grows without end there is named by its line, like one in a step.
local chunk, load_error = loadfile(script_path)
local ok, game = false, load_error
if chunk ~= nil then
  ok, game = call_game("the script's top level (outside its functions)", chunk)
end
if not ok then
  report("error " .. error_text(game))
  emu.exit()
  return
end
if type(game) ~= "table" or type(game.step) ~= "function" then
  local returned = "it returned " .. (game == nil and "nothing" or "a " .. type(game))
    .. " (end the script with `return game`)"
  if type(game) == "table" and rawget(game, "step") ~= nil then
    returned = "its step is a " .. type(rawget(game, "step")) .. ", not a function"
  elseif type(game) == "table" then
    -- Its keys as they are, never through a __tostring of the script's.
    local names = {}
    for key in pairs(game) do
      table.insert(names, type(key) == "string" and string.format("%q", key) or "a " .. type(key))
    end
    table.sort(names)
    returned = #names == 0 and "it returned an empty table"
      or "its table has " .. table.concat(names, ", ", 1, math.min(#names, 20))
        .. (#names > 20 and ", ..." or "") .. " (names are case-sensitive)"
  end
  report("error " .. script_path .. " must return a table with a step() function: "
    .. returned)
  emu.exit()
  return
end
-- Whether a and b differ by one letter added, dropped or changed, or two swapped.
local function one_slip_apart(a, b)
  if math.abs(#a - #b) > 1 or a == b then
    return false
  end
  local i = 1
  while i <= #a and a:byte(i) == b:byte(i) do
    i = i + 1
  end
  return a:sub(i + 1) == b:sub(i + 1) or a:sub(i) == b:sub(i + 1) or a:sub(i + 1) == b:sub(i)
    or (a:sub(i, i) == b:sub(i + 1, i + 1) and a:sub(i + 1, i + 1) == b:sub(i, i)
      and a:sub(i + 2) == b:sub(i + 2))
end

-- game.Reset or game.rest would never run, and each episode would start where the
-- last one ended.
for key, value in pairs(game) do
  local wanted = type(key) == "string" and string.lower(key)
  local why = nil
  if (wanted == "reset" or wanted == "step") and key ~= wanted then
    why = "names are case-sensitive"
  elseif wanted and type(value) == "function" and rawget(game, "reset") == nil
      and one_slip_apart(wanted, "reset") then
    wanted, why = "reset", "is it misspelled?"
  end
  if why ~= nil then
    report("error " .. script_path .. " names a function game." .. key .. ", which the bridge "
      .. "never calls: it calls game." .. wanted .. " (" .. why .. ")")
    emu.exit()
    return
  end
end

local server, bind_error = socket.bind(bind_host, 0)
if server == nil then
  give_up("cannot listen on " .. bind_host .. ": " .. tostring(bind_error)
    .. " (NETGYM_EMULATOR_BRIDGE_HOST)")
  return
end
local _, port = server:getsockname()
emu.speedmode("maximum")
if from_savestate then
  savestate.load(savestate.create(1))  -- slot 0: ~/.fceux/fcs/<rom>.fc0
  -- A state that does not load leaves FCEUX at power-on, silently.
  if emu.framecount() == 0 then
    report("error savestate: did not load: it is damaged, was saved by another emulator "
      .. "or FCEUX version, or holds no frame yet")
    emu.exit()
    return
  end
end
run_start_sequence()
local start_state = savestate.create()
savestate.save(start_state)
savestate.persist(start_state)  -- an anonymous state is dropped after one load otherwise
-- FCEUX draws "Emulation speed 3200%" over the picture for 180 frames after
-- speedmode(); outside the saved state, that timer would mark the first
-- episode's screens only. Let it run out before any client sees a frame.
advance(0, 200)
-- The thread that runs this script also emulates: the service schedules
-- FCEUX's other threads (its window, which nobody sees) on idle CPU only.
local function thread_id()
  local stat = io.open("/proc/thread-self/stat", "r")
  if stat == nil then return "" end
  local line = stat:read("*l") or ""
  stat:close()
  return string.match(line, "^(%d+)") or ""
end
report("port " .. port .. " " .. thread_id())

-- The first connection that sends the key is the client. Connections are read
-- side by side, so that silent ones (any local process may connect) cannot
-- queue the client behind them: one with another key is closed at once, a
-- silent one after 2 s, and past 64 waiting the oldest goes.
local KEY_WAIT_S, MAX_WAITING = 2, 64
local function accept_client()
  local deadline = socket.gettime() + attach_timeout
  local waiting, order = {}, {}  -- connection -> {got, since}; connections, oldest first
  local function drop(connection)
    waiting[connection] = nil
    connection:close()
  end
  server:settimeout(0)
  while true do
    local now = socket.gettime()
    if now >= deadline then break end
    local watch = {server}
    local still = {}
    for _, connection in ipairs(order) do
      local state = waiting[connection]
      if state ~= nil and now - state.since > KEY_WAIT_S then drop(connection) end
      if waiting[connection] ~= nil then
        table.insert(still, connection)
        table.insert(watch, connection)
      end
    end
    order = still
    local readable = socket.select(watch, nil, math.min(deadline - now, 0.5))
    for _, ready in ipairs(readable) do
      if ready == server then
        local connection = server:accept()
        if connection ~= nil then
          connection:settimeout(0)
          if #order >= MAX_WAITING then drop(table.remove(order, 1)) end
          waiting[connection] = {got = "", since = socket.gettime()}
          table.insert(order, connection)
        end
      elseif waiting[ready] ~= nil then
        local state = waiting[ready]
        local data, err, partial = ready:receive(#bridge_key - #state.got)
        state.got = state.got .. (data or partial or "")
        if state.got == bridge_key then
          waiting[ready] = nil
          for other, _ in pairs(waiting) do other:close() end
          return ready
        end
        -- Only a whole key is compared: closing at its first wrong byte would tell
        -- a guesser each right one, and the key would take 16 tries a digit.
        if #state.got >= #bridge_key or err == "closed" then
          drop(ready)
        end
      end
    end
  end
  for connection, _ in pairs(waiting) do connection:close() end
  return nil
end
local client = accept_client()
server:close()
if client == nil then
  note_exit("no client connected within " .. attach_timeout .. " s of the start (the attach "
    .. "timeout, NETGYM_EMULATOR_ATTACH_TIMEOUT_S)")
  emu.exit()
  return
end
-- A client that vanishes without closing (its host died, the network was cut)
-- would otherwise hold this instance for ever.
client:settimeout(idle_timeout > 0 and idle_timeout or nil)
client:setoption("tcp-nodelay", true)

local screen_file = nil
if want_screen and screen_path ~= nil then
  screen_file = assert(io.open(screen_path, "r+b"))
  screen_file:setvbuf("no")
end

local function observation()
  local screen = ""
  if want_screen then screen = gui.gdscreenshot() end
  local ram = {}
  for i, address in ipairs(ram_addresses) do
    ram[i] = memory.readbyte(address)
  end
  if screen_file ~= nil then
    screen_file:seek("set", 0)
    screen_file:write(screen)
    return u32(#screen) .. string.char(unpack(ram))
  end
  return u32(#screen) .. screen .. string.char(unpack(ram))
end

local function number_text(value)
  if type(value) == "boolean" then value = value and 1 or 0 end
  return string.format("%.17g", value)
end

-- Info keys that Gymnasium's and stable-baselines3's wrappers and vector envs set:
-- a game's own would be overwritten, or break them (an "episode" of a number).
local reserved_info_keys = {
  episode = "Gymnasium's RecordEpisodeStatistics and stable-baselines3's Monitor",
  final_obs = "Gymnasium's vector envs",
  final_info = "Gymnasium's vector envs",
  terminal_observation = "stable-baselines3's vector envs",
  ["TimeLimit.truncated"] = "stable-baselines3's vector envs",
}

-- What game.step() returned, checked: nil when it is well formed, else what is wrong.
-- A value as the script wrote it: a string in quotes, so that "1" is not taken for 1.
local function shown(value)
  if type(value) == "string" then return string.format("%q", value) end
  -- Its __tostring would run the script's code again, past the time limit's hook.
  if getmetatable(value) ~= nil then return "a " .. type(value) .. " with a metatable" end
  return tostring(value)
end

-- Where game.step() is defined (its file may be a module the script requires).
local step_source = debug.getinfo(game.step, "S")
local step_where = string.gsub(step_source.source, "^@", "") .. ":" .. step_source.linedefined
  .. ": game.step() (the function that starts on this line) "

local function step_problem(reward, done, info)
  local where = step_where
  if type(reward) ~= "number" then
    return where .. "must return a number as its reward, not " .. shown(reward)
  end
  if reward ~= reward or reward == math.huge or reward == -math.huge then
    return where .. "must return a finite reward, not " .. tostring(reward)
      .. " (a division by zero?): one would spoil every value the agent learns"
  end
  if type(done) ~= "boolean" then
    return where .. "must return true or false as done, not " .. shown(done)
      .. " (in Lua, 0 counts as true: write `count == 0`, say)"
  end
  if info == nil then return nil end
  if type(info) ~= "table" then
    return where .. "must return a table as its info (or nothing), not " .. shown(info)
  end
  for key, value in pairs(info) do
    -- %z: a NUL byte (Lua 5.1), which would cut the key short on the client's side.
    if type(key) ~= "string" or key == "" or string.find(key, "[%s=%z]") then
      return where .. "returned the info key " .. string.format("%q", tostring(key))
        .. ": keys are names, without spaces, '=' or NUL bytes"
    end
    if string.sub(key, 1, 1) == "_" then
      return where .. "returned the info key " .. key .. ": in Gymnasium's vector infos, "
        .. "a name that starts with _ tells which envs set the rest (_score: score); give it "
        .. "another name"
    end
    if reserved_info_keys[key] then
      return where .. "returned the info key " .. key .. ", which " .. reserved_info_keys[key]
        .. " set in infos: give it a name of its own"
    end
    if type(value) ~= "number" and type(value) ~= "boolean" then
      return where .. "returned info " .. key .. " = " .. shown(value)
        .. ": info values are numbers or booleans"
    end
  end
  return nil
end

local function reply(reward, done, info)
  local parts = {"ok", number_text(reward), done and "1" or "0"}
  for key, value in pairs(info or {}) do
    table.insert(parts, key .. "=" .. number_text(value))
  end
  local header = table.concat(parts, " ")
  client:send(u32(#header) .. header .. observation())
end

-- The game's error goes to its client, and to the service's log beside the
-- script's prints, where its author looks.
local function fail(message)
  local text = error_text(message)
  write_marked(error_mark, text)
  local header = "error " .. text
  client:send(u32(#header) .. header .. u32(0) .. string.rep("\0", #ram_addresses))
end

-- A reply goes out from FCEUX's after-emulation hook, as soon as the last
-- frame of a step is emulated. What FCEUX does between that and this
-- script's next turn (drawing, its GUI thread: about a fifth of a frame) then
-- overlaps with the client's turn instead of adding to every step.
local answer = nil
register_after(function()
  if answer ~= nil then
    local send = answer
    answer = nil
    send()
  end
end)

-- Hold the buttons for `frames` frames; `send` answers after the last one.
local function advance_then(mask, frames, send)
  advance(mask, frames - 1)
  set_pad(1, pad_for(mask))
  answer = send
  frame_advance()
end

local function answer_step()
  local called, reward, done, info = call_game("game.step()", game.step)
  if not called then
    fail(reward)
  else
    local problem = step_problem(reward, done, info)
    if problem then fail(problem) else reply(reward, done, info) end
  end
end

local episode_start = 0  -- FCEUX's frame count when the episode's start state was loaded

local function answer_reset()
  local called, message = true, nil
  if type(game.reset) == "function" then
    called, message = call_game("game.reset()", game.reset)
  end
  -- Frames since the start of play: the seeded no-ops, and the one that redraws.
  local frame = emu.framecount() - episode_start
  if called then reply(0, false, {frame = frame}) else fail(message) end
end

while true do
  local request, problem = client:receive(5)
  if request == nil then
    if problem == "timeout" then
      note_exit("its client sent nothing for " .. idle_timeout .. " s (the idle timeout, "
        .. "NETGYM_EMULATOR_IDLE_TIMEOUT_S)")
    end
    break
  end
  local command, argument = string.sub(request, 1, 1), read_u32(request, 2)
  if command == "S" then
    advance_then(argument, frames_per_step, answer_step)
  elseif command == "R" then
    savestate.load(start_state)
    episode_start = emu.framecount()
    -- One frame more than asked: a loaded state does not redraw the screen, so
    -- without it the first observation would show the previous episode.
    advance_then(0, argument + 1, answer_reset)
  elseif command == "P" then
    client:send(u32(6) .. "ok 0 0" .. u32(0) .. string.rep("\0", #ram_addresses))
  elseif command == "Q" then
    note_exit("its client asked it to quit")
    break
  else
    -- As hex: the request may be any bytes, and the service reads the note as text.
    note_exit("its client sent an unknown request (hex) "
      .. string.gsub(request, ".", function(c) return string.format("%02x", string.byte(c)) end))
    break
  end
end
client:close()
emu.exit()
