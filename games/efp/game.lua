-- Escape from Pong (Halley's Comet Software, BSD-3-Clause; Debian package efp).
--
-- You are the ball. A paddle always moves to stay in front of you; white walls
-- bounce you, red walls (and being caught inside the paddle) restart the level;
-- leaving the screen anywhere clears the level. 13 levels, then the game loops
-- with a faster paddle. The game keeps no score and has no game over, so this
-- script supplies both:
--   +1 each time the ball escapes the screen (a level cleared),
--   -1 each time the level restarts (a "death"),
--   done once LIVES deaths have happened.
--
-- RAM (found by disassembling the 1 KB ROM with da65 and confirmed by dumps):
--   $13/$14   ball pixel x / y (recomputed each frame from $15-$18)
--   $15/$16   ball x, 8.8 fixed point in 2-pixel units ($17/$18: y)
--   $19-$1C   ball velocity x, y (8.8 signed); $1D gravity
--   $1E/$1F   paddle x / y (pixels)
--   $20       lap: 1 on the first pass through the 13 levels, +1 each lap
--             (it is also the paddle's speed)
--   $31/$32   pointer to the current level's data in ROM ($8385 = level 1)
--   $00/$01   scratch; they hold $C2/$80 only while a level is being (re)loaded
--             and for the ~64 frames with the NMI off that follow, when nothing
--             moves. Gameplay frames never leave that pair there.
-- A restart or an escape is resolved within one frame inside the game (its
-- flags $25/$26 are cleared before a frame ends), so the script detects them
-- instead by the level pointer changing (escape) and by the game entering its
-- level-load freeze with the pointer unchanged (restart).

local game = {}

local LIVES = 5

-- level data pointers, in order (parsed from the ROM's level scripts)
local LEVEL_OF = {
  [0x8385] = 1, [0x8398] = 2, [0x839C] = 3, [0x83A0] = 4, [0x83A7] = 5,
  [0x83AB] = 6, [0x83BB] = 7, [0x83BF] = 8, [0x83C3] = 9, [0x83CA] = 10,
  [0x83D1] = 11, [0x83D5] = 12, [0x83D9] = 13,
}

local read = memory.readbyte

local last_key, was_frozen, escape_pending
local deaths, cleared

local function level_key()
  return read(0x31) + 256 * read(0x32) + 65536 * read(0x20)
end

local function frozen()
  return read(0x00) == 0xC2 and read(0x01) == 0x80
end

function game.reset()
  last_key = level_key()
  was_frozen = frozen()
  escape_pending = false
  deaths, cleared = 0, 0
end

function game.step()
  if last_key == nil then game.reset() end
  local reward = 0
  local key = level_key()
  if key ~= last_key then
    -- the level pointer (or the lap) moved on: the ball left the screen
    reward = reward + 1
    cleared = cleared + 1
    last_key = key
    escape_pending = true
  end
  local now_frozen = frozen()
  if now_frozen and not was_frozen then
    if escape_pending then
      escape_pending = false
    else
      reward = reward - 1
      deaths = deaths + 1
    end
  end
  was_frozen = now_frozen
  local pointer = read(0x31) + 256 * read(0x32)
  local info = {
    level = LEVEL_OF[pointer] or 0,
    lap = read(0x20),
    levels_cleared = cleared,
    deaths = deaths,
    lives = LIVES - deaths,
    loading = now_frozen and 1 or 0,
    ball_x = read(0x13),
    ball_y = read(0x14),
    paddle_x = read(0x1E),
    paddle_y = read(0x1F),
  }
  return reward, deaths >= LIVES, info
end

return game
