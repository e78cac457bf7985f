-- pretrained_lat.lua: the paper's comparison on a model you bring. Loads a PyTorch-layout image
-- classifier (a torchvision ResNet state_dict saved as safetensors, or a lat checkpoint),
-- fine-tunes copies on clean Fashion-MNIST with no defence, RLP, AT at the input and LAT at each
-- --lat_layers site, and evaluates each: clean accuracy and held-out robustness (input PGD and
-- corruptions none of them trained on). Each fine-tuned model is written in PyTorch's layout
-- (<name>.safetensors in the run folder: torchvision's load_state_dict takes it with strict=True).
-- A 3-channel model sees the grey images repeated over its channels.
--   build/lat recipes/pretrained_lat.lua --model=resnet.safetensors [--arch=resnet] [--quick] ...
local lat = require 'lat'
local D = require 'lat.experiment.defences'
local HO = lat.eval.heldout
local list = lat.args.list
local now = require('lat.core.sys').now

local function slice(ds, skip, n) return ds:subset(lat.arange(skip + 1, skip + 1 + math.min(n, ds:len() - skip), 'int32')) end

-- the images as the model takes them: its channel count
local function channels_of(model) return model:module('conv1').weight.shape[2] end
local function adapt(ds, channels)
  if channels == 1 then return ds end
  local all = ds:batch(lat.arange(0, ds:len(), 'int32')) -- batch() takes the loader's 0-based rows
  local rep = {}
  for k = 1, channels do rep[k] = all.x end
  return lat.data.TensorDataset{ x = lat.cat(rep, 2), y = all.y }
end

local function threat_of(c)
  if c.defence == 'at' then return lat.threat{ where = 'input', norm = 'l2', eps = c.eps, clamp = { 0, 1 } } end
  if c.defence ~= 'none' then return lat.threat{ where = c.where, norm = 'l2', eps = c.eps, relative = true } end
end

local function evaluate(s, name)
  local held = HO.run(s.model, s.eval_set, s.suite, { seed = 1 })
  return { name = name, clean_accuracy = lat.eval.accuracy(s.model, s.test_set).accuracy, robustness = held.robustness }
end

return lat.experiment{
  name = 'pretrained_lat',
  about = 'A model you bring, fine-tuned on Fashion-MNIST with no defence, RLP, AT and LAT; clean accuracy and held-out robustness; checkpoints in PyTorch layout.',
  options = {
    model = { '', 'the checkpoint to start from (safetensors; PyTorch or lat layout)' },
    arch = { 'resnet', "its architecture: resnet (any torchvision-layout ResNet, read off the file), resnet18, resnet34, or '' for a lat checkpoint" },
    batch = { 64, 'fine-tuning batch size', 'count' },
    finetune = { 4000, 'clean training images each defence fine-tunes on', 'count' },
    ft_lr = { 0.01, 'fine-tuning learning rate (SGD, momentum 0.9)', 'positive' },
    ft_epochs = { 1, 'fine-tuning epochs', 'count' },
    steps = { 5, 'PGD steps of the AT and LAT adversaries', 'natural' },
    at_eps = { '0.5,1', 'AT radii at the input (L2, absolute)', 'nonnegative list' },
    lat_layers = { 'layer1,layer2,layer3', 'LAT sites', 'list' },
    lat_eps = { '0.1', 'LAT radii (L2, relative to the activation norm)', 'nonnegative list' },
    rlp_layer = { 'layer2', 'the site of the random latent perturbation control (RLP)' },
    rlp_eps = { 0.1, "RLP's radius (L2, relative)", 'nonnegative' },
    seeds = { '1', 'fine-tuning seeds', 'natural list' },
    eval_examples = { 500, 'test images for the held-out attacks', 'count' },
    test_examples = { 10000, 'test images for clean accuracy', 'count' },
  },
  quick = { finetune = 128, eval_examples = 32, test_examples = 256, steps = 1, at_eps = '1', lat_layers = 'layer2' },
  check = function(opt)
    if opt.model == '' then error('pretrained_lat: --model must name a checkpoint (safetensors)', 0) end
  end,

  setup = function(opt)
    local model, report = lat.models.load(opt.model, { arch = opt.arch ~= '' and opt.arch or nil })
    lat.args.layers(model, 'lat_layers', list(opt.lat_layers))
    lat.args.layers(model, 'rlp_layer', { opt.rlp_layer })
    local ch = channels_of(model)
    local train, test = lat.data.fashion_mnist('train'), lat.data.fashion_mnist('test')
    local s = { model = model, ft_data = adapt(slice(train, 0, opt.finetune), ch),
      eval_set = adapt(slice(test, 0, opt.eval_examples), ch), test_set = adapt(slice(test, 0, opt.test_examples), ch),
      suite = { HO.spec.pgd{ norm = 'linf', eps = 8 / 255, steps = opt.quick and 2 or 10 }, HO.spec.pgd{ norm = 'l2', eps = 1.0, steps = opt.quick and 2 or 10 },
        HO.spec.corruption{ kind = 'fog', severity = 2 }, HO.spec.corruption{ kind = 'pixelate', severity = 2 } },
      state = {} }
    for k, v in pairs(model:state_dict()) do s.state[k] = v:clone() end
    print(('pretrained_lat: %s loaded (%d channels in); %d converted tensors'):format(opt.model, ch, #(report.converted or {})))
    return s
  end,

  grid = function(opt)
    local out = { D.undefended(1) }
    local configs = D.list{ format = '%.2g', rlp = { opt.rlp_layer, opt.rlp_eps }, at = { 'input', list(opt.at_eps, 'number') },
      lat = D.pairs_of(list(opt.lat_layers), list(opt.lat_eps, 'number')) }
    for _, seed in ipairs(list(opt.seeds, 'number')) do
      for _, c in ipairs(configs) do out[#out + 1] = D.at(c, seed) end
    end
    return out
  end,

  run = function(c, ctx)
    local s, opt = ctx.setup, ctx.opt
    s.model:load_state_dict(s.state)
    if c.name == D.UNDEFENDED then return evaluate(s, 'as loaded') end
    local threat = threat_of(c)
    local t0 = now()
    lat.train.fit{ model = s.model, epochs = opt.ft_epochs,
      loader = lat.data.DataLoader(s.ft_data, { batch_size = opt.batch, shuffle = true, seed = ctx:seed('data order') }),
      loss = D.loss(c, threat, { weight = 1, steps = opt.steps, rng = ctx:generator('attack') }),
      optimizer = lat.optim.SGD(s.model:named_parameters(), { lr = opt.ft_lr, momentum = 0.9 }) }
    s.model:eval()
    local row = evaluate(s, c.name)
    row.train_seconds, row.seed = now() - t0, c.seed
    row.checkpoint = ctx:path((c.key:gsub('[^%w%.=-]+', '_')) .. '.safetensors')
    lat.save(row.checkpoint, s.model:state_dict())
    print(('  %-18s seed %d: clean %.1f%%  held-out %.1f%%  -> %s'):format(c.name, c.seed, 100 * row.clean_accuracy, 100 * row.robustness, row.checkpoint))
    return row
  end,

  summarise = function(rows, ctx)
    print(ctx:heading(('%-22s %8s %10s'):format('model', 'clean %', 'held-out %')))
    for _, r in ipairs(rows) do print(('%-22s %8.1f %10.1f'):format(r.name, 100 * r.clean_accuracy, 100 * r.robustness)) end
  end,
}
