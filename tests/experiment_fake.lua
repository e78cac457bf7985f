-- experiment_fake.lua: a tiny recipe for test_experiment.lua. No training: each row is numbers
-- drawn from the configuration's seeds and a cached "stage" made in setup, so that a test can
-- tell whether a row depends on anything but the run's seed and the configuration's key.
local lat = require 'lat'
local ffi = require 'ffi'
ffi.cdef 'int experiment_fake_usleep(unsigned int us) __asm__("usleep");'

local function append(path, line)
  if path == '' then return end
  local f = assert(io.open(path, 'a'))
  f:write(line, '\n')
  f:close()
end

return lat.experiment{
  name = 'fake',
  about = 'A fake sweep for the scaffold tests: rows of numbers drawn from each configuration\'s seeds.',
  options = {
    defences = { 'at,lat', 'the defences of the grid', 'list' },
    radii = { '0.1,0.3', 'the radii of the grid', 'nonnegative list' },
    seeds = { '1,2', 'the fine-tuning seeds of the grid', 'natural list' },
    scale = { 2, 'what the cached stage is made from', 'positive' },
    delay = { 0, 'seconds each configuration sleeps (for the kill test)', 'nonnegative', per_process = true },
    trace = { '', 'a file each run appends its key to (and setup "setup", the stage "made")', per_process = true },
    fail = { '', 'the key of a configuration whose run raises', per_process = true },
    bad_row = { false, 'run returns a string instead of a row', per_process = true },
    again = { '', 'seeds the best-scoring configuration runs again with (a followup stage)', 'natural list' },
    again_key = { '', 'the key of the followup configuration (to make it collide)' },
  },
  quick = { radii = '0.2', seeds = '1' },
  setup = function(opt, ctx)
    append(opt.trace, 'setup')
    local stage = ctx:cached('fake_stage', { seed = opt.seed, scale = opt.scale }, function()
      append(opt.trace, 'made')
      return { w = lat.randn({ 4 }, { rng = lat.Generator(opt.seed) }) * opt.scale }
    end)
    return { w = stage.w, setup_seed = ctx:seed('implant') }
  end,
  grid = function(opt)
    return lat.experiment.product({ defence = lat.args.list(opt.defences) }, { radius = lat.args.list(opt.radii, 'number') },
      { seed = lat.args.list(opt.seeds, 'number') })
  end,
  run = function(c, ctx)
    append(ctx.opt.trace, c.key)
    if ctx.opt.delay > 0 then ffi.C.experiment_fake_usleep(ctx.opt.delay * 1e6) end
    if c.key == ctx.opt.fail then error('fake failure in ' .. c.key) end
    if ctx.opt.bad_row then return 'not a row' end
    local g = ctx:generator('finetune')
    return {
      defence = c.defence, radius = c.radius, seed = c.seed,
      score = ctx.setup.w:sum():item() * c.radius + lat.rand({ 1 }, { rng = g }):item(),
      draw_global = lat.rand({ 1 }):item(), -- the default generator, reseeded for each configuration
      draw_ft = lat.randn({ 1 }, { rng = g }):item(),
      ft_seed = ctx:seed('finetune'), setup_seed = ctx.setup.setup_seed,
      exact = c.radius / 3, not_a_number = 0 / 0, infinite = -1 / 0, tensor = lat.tensor({ c.radius }) * 2,
      nested = { generations = { 'a', 'b' } },
    }
  end,
  followup = function(rows, opt)
    local best
    for _, r in ipairs(rows) do if not best or r.score > best.score then best = r end end
    local out = {}
    for _, s in ipairs(lat.args.list(opt.again, 'natural')) do
      out[#out + 1] = { key = opt.again_key ~= '' and opt.again_key or ('%s again seed=%d'):format(best.key, s),
        defence = best.defence, radius = best.radius, seed = s }
    end
    return out
  end,
  summarise = function(rows, ctx, again)
    local sum = 0
    for _, r in ipairs(rows) do sum = sum + r.score end
    local summary = {}
    for _, r in ipairs(rows) do
      r.flags = r.score > sum / #rows and 'above the mean' or ''
      summary[#summary + 1] = { name = r.key, score = r.score }
    end
    ctx:write_csv('summary.csv', { 'name', 'score' }, summary)
    if #again > 0 then ctx:write_csv('again.csv', { 'key', 'score' }, again) end
  end,
  columns = { 'key', 'defence', 'radius', 'seed', 'score', 'draw_global', 'draw_ft', 'ft_seed', 'setup_seed', 'exact',
    'not_a_number', 'infinite', 'tensor', 'flags' },
}
