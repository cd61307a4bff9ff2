-- Catch: reward, done and info for netgym (RAM map in catch.s and game.toml).
--
-- Reward per agent step:
--   +1 for every target caught (score went up; the score byte wraps at 256),
--   -1 when the hazard touches the player (done = true; the game freezes),
--   plus shaping: SHAPING x (Manhattan distance to the target before the step
--   minus after it), counted only while the target stays where it was (no
--   shaping on a step where it jumped, so catching is never penalised). From
--   any start, moving straight to a target earns SHAPING x its distance, at
--   most 0.005 x 392 = 1.96 and about 0.65 on average (two random places are
--   131 px apart), so catching (+1) still dominates, while every step toward
--   the target pays 0.04 at once: enough for PPO to learn in a few minutes.
-- This script only reads RAM.

local game = {}

local PLAYER_X, PLAYER_Y = 0x00, 0x01
local TARGET_X, TARGET_Y = 0x02, 0x03
local HAZARD_X, HAZARD_Y = 0x04, 0x05
local SCORE, GAME_OVER = 0x08, 0x09
local FRAME_LO, FRAME_HI = 0x0A, 0x0B

local SHAPING = 0.005  -- reward per pixel of progress toward the target

local read = memory.readbyte

local last_score, last_tx, last_ty, last_distance, finished

local function distance()
  return math.abs(read(PLAYER_X) - read(TARGET_X)) + math.abs(read(PLAYER_Y) - read(TARGET_Y))
end

local function remember()
  last_score = read(SCORE)
  last_tx, last_ty = read(TARGET_X), read(TARGET_Y)
  last_distance = distance()
end

function game.reset()
  remember()
  finished = read(GAME_OVER) ~= 0
end

function game.step()
  if last_score == nil then game.reset() end
  local score = read(SCORE)
  local tx, ty = read(TARGET_X), read(TARGET_Y)
  local d = distance()
  local caught = (score - last_score) % 256
  local reward = caught
  if caught == 0 and tx == last_tx and ty == last_ty then
    reward = reward + SHAPING * (last_distance - d)
  end
  local over = read(GAME_OVER) ~= 0
  if over and not finished then
    reward = reward - 1
  end
  finished = over
  last_score, last_tx, last_ty, last_distance = score, tx, ty, d
  return reward, over, {
    score = score,
    caught = caught,
    player_x = read(PLAYER_X), player_y = read(PLAYER_Y),
    target_x = tx, target_y = ty,
    hazard_x = read(HAZARD_X), hazard_y = read(HAZARD_Y),
    game_over = over and 1 or 0,
    frame = read(FRAME_LO) + 256 * read(FRAME_HI),
  }
end

return game
