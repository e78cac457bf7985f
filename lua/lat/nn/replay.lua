-- nn/replay.lua: computing a model's prefix once. A latent attack runs the model many times on one
-- batch with a perturbation added at some sites; every layer call that finishes before the first
-- site is reached gives the same output each time. A replay records those outputs during one
-- forward and hands them back on later forwards of the same batch, so that each attack step costs
-- only the layers after the site. It works at the level of layer calls (Module.__call), so any
-- model and any forward function benefit, whatever their shape: a site inside a block replays
-- everything before that block's first layer to be affected.
--   local rp = replay.new()
--   rp:record(function() ... model(x) with a hook calling rp:reach() at the site ... end)
--   rp:play(function() ... the same forward ... end)    -- the prefix layers are not run
-- What a replayed call skips is skipped whole, its hooks included (a capture hook on a prefix
-- layer sees only the recorded forward). A layer whose output depends on the mode (BatchNorm2d,
-- Dropout with p > 0: their replay_safe) is replayed only in the mode it was recorded in (and
-- Dropout never in training mode); the layers around it still are. If a forward calls the layers
-- in another order than the recorded one, the rest of it runs in full.
local lat = require 'lat.tensor'

local M = { active = nil } -- the replay being recorded or played (Module.__call reads it)
local Replay = {}
Replay.__index = Replay

function M.new() return setmetatable({ entries = {}, mode = 'idle', seq = 0, calls = 0, replayed = 0 }, Replay) end

local function run(self, mode, fn, ...)
  local prev, prev_mode = M.active, self.mode
  M.active, self.mode, self.seq, self.off = self, mode, 0, false
  local res = { pcall(fn, ...) }
  M.active, self.mode = prev, prev_mode
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2)
end

-- record(fn, ...) -> fn(...)'s results: runs fn, keeping the output of every layer call that
-- finishes before reach() is first called. With self.keep_graph the outputs keep their autograd
-- graph, so that a training forward may replay them and still train the prefix, up to the first
-- layer a training forward could not replay (a BatchNorm recorded in evaluation mode); all
-- others are detached.
function Replay:record(fn, ...)
  self.entries, self.sensitive, self.reached, self.train_safe = {}, {}, false, true
  self.graph = self.keep_graph and lat.is_grad_enabled() or false
  return run(self, 'record', fn, ...)
end

-- play(fn, ...) -> fn(...)'s results, with the recorded calls replayed. With self.need_graph
-- set (a training forward), only outputs recorded with their graph are used.
function Replay:play(fn, ...) return run(self, 'play', fn, ...) end

-- the site has been reached: the calls that finish from now on depend on the perturbation
function Replay:reach() if self.mode == 'record' then self.reached = true end end

-- whether a recorded call may stand in for the call now
local function usable(self, e)
  if self.need_graph and lat.is_grad_enabled() and not e.graph then return false end
  for i = 1, e.n_sensitive do
    local s = self.sensitive[i]
    if not s[1]:replay_safe(s[2], s[1].training) then return false end
  end
  return true
end

-- at the start of a layer call: the recorded output if this call may be replayed, or nil and
-- the call's sequence number
function Replay:enter(m)
  local seq = self.seq + 1
  self.seq = seq
  self.calls = self.calls + 1
  if self.mode ~= 'play' or self.off then return nil, seq end
  local e = self.entries[seq]
  if e == nil then return nil, seq end
  if e.module ~= m then
    self.off = true -- another order of calls than recorded: the rest runs in full
    return nil, seq
  end
  if not usable(self, e) then return nil, seq end
  self.seq = e.last
  self.replayed = self.replayed + 1
  return e.out, seq
end

local DEFAULT_SAFE -- Module.replay_safe, set by module.lua

-- at the end of a layer call (recording): keeps its output if the site has not been reached. The
-- output may depend on any call recorded before it, so it is replayed only where each of the
-- mode-dependent layers recorded so far (self.sensitive[1 .. n]) would give what it gave.
function Replay:leave(m, seq, out)
  if self.mode ~= 'record' or self.reached then return end
  local sensitive = self.sensitive
  if m.replay_safe ~= DEFAULT_SAFE and not (m:replay_safe(true, true) and m:replay_safe(false, true) and m:replay_safe(true, false)) then
    sensitive[#sensitive + 1] = { m, m.training }
    -- a training forward could not replay what follows it: its outputs need no graph
    if not m:replay_safe(m.training, true) then self.train_safe = false end
  end
  local graph = self.graph and self.train_safe
  -- A call replayed stands for its children: a child's entry serves only where the call's cannot
  -- be replayed and the child's can, that is in a training forward (need_graph) when the child
  -- kept its graph and the call did not. Every other child entry is dropped, and the memory of
  -- its output with it.
  for k = seq + 1, self.seq do
    local c = self.entries[k]
    if c and not (c.graph and not graph) then self.entries[k] = nil end
  end
  if lat.is_tensor(out) and not graph then out = out:detach() end
  self.entries[seq] = { module = m, out = out, last = self.seq, n_sensitive = #sensitive, graph = graph }
end

function M.set_default_safe(fn) DEFAULT_SAFE = fn end

return M
