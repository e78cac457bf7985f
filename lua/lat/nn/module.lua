-- module.lua: the Module base of lat.nn: parameters, buffers and named children, train/eval
-- modes, dotted names, state dicts, freezing, and hooks that read or replace any named layer's
-- input or output (the places where a latent adversary acts).
local core = require 'lat.core'
local lat = require 'lat.tensor'
local raise = core.raise
local replay = require 'lat.nn.replay'

local Module = {}
Module.__index = Module

-- A class: local Linear = nn.class('Linear'); function Linear:__init(...) end;
-- function Linear:forward(x) end; Linear(...) makes an instance.
local function class(name, parent)
  parent = parent or Module
  local cls = {}
  for k, v in pairs(parent) do if k:sub(1, 2) == '__' then cls[k] = v end end
  cls.__index = cls
  cls.__name = name
  cls.__parent = parent
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...)
      local m = setmetatable({
        _param_names = {}, _buffer_names = {}, _child_names = {},
        _pre_hooks = {}, _hooks = {}, training = true,
      }, c)
      c.__init(m, ...)
      return m
    end,
  })
end
Module.class = class

function Module:__init() end
function Module:forward() raise(self.__name .. ': forward is not defined') end

-- ---------------------------------------------------------------- printing

-- one line of settings after a layer's type name, 'Linear(784, 10, bias=true)'; layers override it
function Module:extra_repr() return '' end

-- '12,345' for a parameter count
local function thousands(n) return (tostring(n):reverse():gsub('(%d%d%d)', '%1,'):reverse():gsub('^,', '')) end

-- print(model): the module tree as PyTorch prints it, with each layer's settings (extra_repr)
-- and the parameter count of every layer and container that holds any
function Module.__tostring(m)
  local lines = {}
  local function walk(mod, label, indent)
    local n = mod:num_parameters()
    local count = n > 0 and ('  -- ' .. thousands(n) .. ' parameters') or ''
    local head = indent .. label .. mod.__name .. '('
    if #mod._child_names == 0 then
      lines[#lines + 1] = head .. mod:extra_repr() .. ')' .. count
      return
    end
    lines[#lines + 1] = head .. count
    for _, c in ipairs(mod._child_names) do walk(mod[c], '(' .. c .. '): ', indent .. '  ') end
    lines[#lines + 1] = indent .. ')'
  end
  walk(m, '', '')
  return table.concat(lines, '\n')
end

-- ---------------------------------------------------------------- registration

-- register a parameter: it requires gradients and is reachable as self[name]
function Module:param(name, t)
  if not lat.is_tensor(t) then raise(("param '%s' must be a tensor"):format(name)) end
  if rawget(self, name) == nil then table.insert(self._param_names, name) end
  t:requires_grad_(true)
  rawset(self, name, t)
  return t
end

-- register a buffer: state saved with the model but not trained (running statistics)
function Module:buffer(name, t)
  if rawget(self, name) == nil then table.insert(self._buffer_names, name) end
  rawset(self, name, t)
  return t
end

-- register a child module under a name (numbers name Sequential's children)
function Module:add(name, m)
  if getmetatable(m) == nil or not m._child_names then raise(("add: '%s' is not a module"):format(tostring(name))) end
  name = tostring(name)
  if rawget(self, name) == nil then table.insert(self._child_names, name) end
  rawset(self, name, m)
  if tonumber(name) then rawset(self, tonumber(name), m) end
  rawset(m, '_parent', self)
  rawset(m, '_name', name)
  return m
end

-- the dotted name of this module within its root ('' for the root)
function Module:path()
  local parts, m = {}, self
  while m._parent do
    table.insert(parts, 1, m._name)
    m = m._parent
  end
  return table.concat(parts, '.')
end

-- ---------------------------------------------------------------- walking the tree

-- array of {name, module}, depth first, the root first with name ''
function Module:named_modules()
  local out = {}
  local function walk(m, prefix)
    out[#out + 1] = { prefix, m }
    for _, n in ipairs(m._child_names) do walk(m[n], prefix == '' and n or prefix .. '.' .. n) end
  end
  walk(self, '')
  return out
end

function Module:modules()
  local out = {}
  for i, e in ipairs(self:named_modules()) do out[i] = e[2] end
  return out
end

-- a tensor shared by two modules (GPT-2's lm_head and wte) comes once, under its first name,
-- unless all names are asked for
local function named(self, list_field, all)
  local out, seen = {}, {}
  for _, e in ipairs(self:named_modules()) do
    local prefix, m = e[1], e[2]
    for _, n in ipairs(m[list_field]) do
      local t = m[n]
      if all or not seen[t] then out[#out + 1] = { prefix == '' and n or prefix .. '.' .. n, t } end
      seen[t] = true
    end
  end
  return out
end

function Module:named_parameters() return named(self, '_param_names') end
function Module:named_buffers() return named(self, '_buffer_names') end

function Module:parameters()
  local out = {}
  for i, e in ipairs(self:named_parameters()) do out[i] = e[2] end
  return out
end

function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

-- the module at a dotted name; an error lists the names there are
function Module:module(name)
  if name == '' then return self end
  local m = self
  for part in tostring(name):gmatch('[^.]+') do
    local child = rawget(m, part)
    if type(child) ~= 'table' or not child._child_names then
      local names = {}
      for _, e in ipairs(self:named_modules()) do if e[1] ~= '' then names[#names + 1] = e[1] end end
      raise(("no layer named '%s' (layers: %s)"):format(name, table.concat(names, ', ')))
    end
    m = child
  end
  return m
end

-- ---------------------------------------------------------------- modes and state

function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do m.training = mode end
  return self
end
function Module:eval() return self:train(false) end

-- the training flag of every module of a lat.nn model, in modules() order (of any other model
-- with a training field, its one flag)
local function modes_of(model)
  if type(model.modules) ~= 'function' then return { model.training } end
  local modes = {}
  for i, m in ipairs(model:modules()) do modes[i] = m.training end
  return modes
end

local function set_modes(model, modes)
  if type(model.modules) ~= 'function' then return model:train(modes[1]) end
  for i, m in ipairs(model:modules()) do m.training = modes[i] end
end

local function restored(model, modes, ok, ...)
  set_modes(model, modes)
  if not ok then error((...), 0) end -- the message already names where it was raised
  return ...
end

-- in_eval(model, fn, ...) -> fn(...)'s results, computed with the model in evaluation mode.
-- Afterwards every submodule has its own mode back (one left in evaluation mode on purpose
-- stays so), also when fn raises; the error goes on unchanged. model:in_eval(fn, ...) is the
-- same; any model with :eval(), :train(mode) and a training field may be given.
function Module.in_eval(model, fn, ...)
  local modes = modes_of(model)
  model:eval()
  return restored(model, modes, pcall(fn, ...))
end

-- without_grad(model, fn, ...) -> fn(...)'s results, computed with the model's parameters not
-- requiring gradients (an attack: the graph then holds only what the perturbation's gradient
-- needs, not every activation the weights' gradients would). Each parameter's flag is restored
-- afterwards, also when fn raises. Any model with :parameters() may be given.
function Module.without_grad(model, fn, ...)
  local params = type(model.parameters) == 'function' and model:parameters() or {}
  local flags = {}
  for i, p in ipairs(params) do
    flags[i] = p.requires_grad
    if flags[i] then p:requires_grad_(false) end
  end
  local res = { pcall(fn, ...) }
  for i, p in ipairs(params) do
    if flags[i] then p:requires_grad_(true) end
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2)
end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
end

-- freeze (stop training) all parameters, or those whose names start with one of the prefixes
local function set_frozen(self, prefixes, flag)
  if type(prefixes) == 'string' then prefixes = { prefixes } end
  for _, e in ipairs(self:named_parameters()) do
    local hit = prefixes == nil
    for _, p in ipairs(prefixes or {}) do
      if e[1] == p or e[1]:sub(1, #p + 1) == p .. '.' then hit = true end
    end
    if hit then e[2]:requires_grad_(not flag) end
  end
  return self
end
function Module:freeze(prefixes) return set_frozen(self, prefixes, true) end
function Module:unfreeze(prefixes) return set_frozen(self, prefixes, false) end

-- name -> tensor for every parameter and buffer (the tensors themselves, not copies), a shared
-- tensor under each of its names, as in PyTorch
function Module:state_dict()
  local sd = {}
  for _, e in ipairs(named(self, '_param_names', true)) do sd[e[1]] = e[2] end
  for _, e in ipairs(named(self, '_buffer_names', true)) do sd[e[1]] = e[2] end
  return sd
end

-- load_state_dict(sd[, strict = true]) -> self, { missing =, unexpected =, mismatched = }: copies
-- the values in, as PyTorch's does. strict requires exactly the model's names, shapes and dtypes
-- (a shared tensor needs one of its names) and raises an error listing every problem, the model
-- untouched; not strict, it loads what matches and the report lists the rest.
function Module:load_state_dict(sd, strict)
  if strict == nil then strict = true end
  local own, ordered = self:state_dict(), named(self, '_param_names', true)
  for _, e in ipairs(named(self, '_buffer_names', true)) do ordered[#ordered + 1] = e end
  local given = {}
  for _, e in ipairs(ordered) do if sd[e[1]] ~= nil then given[e[2]] = true end end
  local report = { missing = {}, unexpected = {}, mismatched = {} }
  local load = {}
  for _, e in ipairs(ordered) do
    local name, t = e[1], e[2]
    local src = sd[name]
    if src == nil then
      if not given[t] then report.missing[#report.missing + 1] = name end
    else
      local a, b = table.concat(t.shape, 'x'), table.concat(src.shape, 'x')
      if a ~= b or t.dtype ~= src.dtype then
        report.mismatched[#report.mismatched + 1] = ("'%s' is %s %s in the model but %s %s in the state"):format(name, t.dtype, a, src.dtype, b)
      else
        load[#load + 1] = { t, src }
      end
    end
  end
  for name in pairs(sd) do if own[name] == nil then report.unexpected[#report.unexpected + 1] = name end end
  table.sort(report.unexpected)
  local problems = {}
  for _, n in ipairs(report.missing) do problems[#problems + 1] = ("missing '%s'"):format(n) end
  for _, m in ipairs(report.mismatched) do problems[#problems + 1] = m end
  for _, n in ipairs(report.unexpected) do problems[#problems + 1] = ("unexpected '%s'"):format(n) end
  -- strict: every problem at once, and the model untouched; otherwise what matches is loaded
  if strict and #problems > 0 then
    raise(('load_state_dict: %d problem%s: %s'):format(#problems, #problems == 1 and '' or 's', table.concat(problems, '; ')))
  end
  lat.no_grad(function() for _, p in ipairs(load) do p[1]:copy_(p[2]) end end)
  return self, report
end

-- ---------------------------------------------------------------- running and hooks

local function run_hooks(list, value, m)
  for i = 1, #list do
    local r = list[i].fn(value, m)
    if r ~= nil then value = r end
  end
  return value
end

local function annotate(m, err)
  err = tostring(err)
  if err:find("in layer '", 1, true) then return err end
  local path = m:path()
  if path == '' then return err end
  return ("in layer '%s' (%s): %s"):format(path, m.__name, err)
end

local INPUT_TYPES = { cdata = true, table = true }
local function fail(m, msg)
  if m._parent == nil then raise(msg) end
  error(msg, 0)
end

local function call(m, x, ...)
  if not INPUT_TYPES[type(x)] then fail(m, ('%s: the input must be a tensor, got %s'):format(m.__name, type(x))) end
  if #m._pre_hooks > 0 then x = run_hooks(m._pre_hooks, x, m) end
  local ok, out = pcall(m.forward, m, x, ...)
  if not ok then fail(m, annotate(m, out)) end
  if #m._hooks > 0 then out = run_hooks(m._hooks, out, m) end
  return out
end

-- Calling a module runs its pre-hooks on the first argument, forward, then its hooks on the
-- output. A hook returning a value replaces the activation; returning nil leaves it. An error
-- names the layer, and at the outermost module the caller's line. Under a replay (replay.lua)
-- a call recorded before the attack's site returns the recorded output instead.
function Module.__call(m, x, ...)
  local r = replay.active
  if r == nil then return call(m, x, ...) end
  local recorded, seq = r:enter(m)
  if recorded ~= nil then return recorded end
  local out = call(m, x, ...)
  r:leave(m, seq, out)
  return out
end

-- replay_safe(recorded_training, training): whether this layer's output, recorded in one mode,
-- holds in the mode it runs in now; layers whose output depends on the mode override it
function Module.replay_safe() return true end
replay.set_default_safe(Module.replay_safe)

-- hook(name, fn[, {pre = true}]): fn(activation, module) -> replacement or nil, at the output
-- (or, with pre, the input) of the named layer. Returns a handle with :remove().
function Module:hook(name, fn, opts)
  if type(fn) ~= 'function' then raise('hook: the second argument must be a function') end
  local m = self:module(name)
  local list = (opts and opts.pre) and m._pre_hooks or m._hooks
  local entry = { fn = fn }
  list[#list + 1] = entry
  return {
    remove = function()
      for i = #list, 1, -1 do if list[i] == entry then table.remove(list, i) end end
    end,
  }
end

-- several hooks at once: hooks{ ['h.1'] = fn, ... } -> one handle removing them all
function Module:hooks(map, opts)
  local handles = {}
  for name, fn in pairs(map) do handles[#handles + 1] = self:hook(name, fn, opts) end
  return { remove = function() for _, h in ipairs(handles) do h.remove() end end }
end

-- capture(names[, {pre = true}]): records the activations of the named layers at each forward.
-- Returns the table they land in (name -> tensor) and a handle.
function Module:capture(names, opts)
  if type(names) == 'string' then names = { names } end
  local acts, map = {}, {}
  for _, name in ipairs(names) do map[name] = function(a) acts[name] = a end end
  return acts, self:hooks(map, opts)
end

-- ---------------------------------------------------------------- summary

local function shape_of(v)
  if lat.is_tensor(v) then return '{' .. table.concat(v.shape, ', ') .. '}' end
  return type(v)
end

-- summary(example_input, ...): runs the model on example input (without gradients) and prints
-- each layer's name, type, output shape and parameter count; returns the text.
function Module:summary(...)
  local rows, handles = {}, {}
  local args = { n = select('#', ...), ... }
  if args.n == 0 then
    raise(('summary: needs an example input to run the model on, e.g. model:summary(lat.zeros(1, 1, 28, 28)) '
      .. 'for images or model:summary(lat.zeros({1, 16}, \'int32\')) for token ids (print(model) shows the '
      .. 'layers and parameters without one)'))
  end
  for _, e in ipairs(self:named_modules()) do
    local name, m = e[1], e[2]
    local own = 0
    for _, n in ipairs(m._param_names) do own = own + m[n]:numel() end
    local row = { name = name == '' and '(model)' or name, type = m.__name, params = own, shape = '' }
    rows[#rows + 1] = row
    handles[#handles + 1] = self:hook(name, function(out) row.shape = shape_of(out) end)
  end
  local ok, err = pcall(self.in_eval, self, lat.no_grad, function() return self(unpack(args, 1, args.n)) end)
  for _, h in ipairs(handles) do h.remove() end
  if not ok then error(err, 0) end
  local w1, w2, w3 = 5, 4, 12
  for _, r in ipairs(rows) do
    w1, w2, w3 = math.max(w1, #r.name), math.max(w2, #r.type), math.max(w3, #r.shape)
  end
  local fmt = '%-' .. w1 .. 's  %-' .. w2 .. 's  %-' .. w3 .. 's  %10s'
  local lines = { fmt:format('layer', 'type', 'output shape', 'parameters') }
  for _, r in ipairs(rows) do lines[#lines + 1] = fmt:format(r.name, r.type, r.shape, r.params > 0 and tostring(r.params) or '') end
  lines[#lines + 1] = ('total parameters: %d (%d trainable)'):format(self:num_parameters(), (function()
    local n = 0
    for _, p in ipairs(self:parameters()) do if p.requires_grad then n = n + p:numel() end end
    return n
  end)())
  local text = table.concat(lines, '\n')
  print(text)
  return text
end

return Module
