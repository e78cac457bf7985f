-- pretrained_lat.lua: the paper's comparison on a model you bring. Loads a PyTorch-layout image
-- classifier (a torchvision ResNet state_dict saved as safetensors, or a lat checkpoint),
-- fine-tunes copies on clean Fashion-MNIST with no defence, RLP, AT at the input and LAT at each
-- --lat_layers site, and evaluates each: clean accuracy and held-out robustness (input PGD and
-- corruptions none of them trained on). Each fine-tuned model is written in PyTorch's layout
-- (<name>.safetensors in the run folder: torchvision's load_state_dict takes it with strict=True).
-- A 3-channel model sees the grey images repeated over its channels.
-- --arch=gpt2 takes a Hugging Face GPT-2 folder (config.json + model.safetensors) instead: the
-- copies fine-tune on Moby Dick's training chapters (GPT-2's BPE, --len-token windows) with AT at
-- the token embeddings (radii relative to their norm) and LAT at blocks, and each is scored by its
-- loss on the validation chapters, clean and under an L2 PGD at the embeddings (--attack_eps,
-- relative); each is written as a GPT-2 folder (<name>/config.json + model.safetensors).
--   build/lat recipes/pretrained_lat.lua --model=resnet.safetensors [--arch=resnet] [--quick] ...
--   build/lat recipes/pretrained_lat.lua --model=gpt2-folder --arch=gpt2 [--lat_layers=transformer.h.5] ...
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

local function threat_of(c, lm)
  if c.defence == 'at' and lm then return lat.threat{ where = 'embedding', norm = 'l2', eps = c.eps, relative = true } end
  if c.defence == 'at' then return lat.threat{ where = 'input', norm = 'l2', eps = c.eps, clamp = { 0, 1 } } end
  if c.defence ~= 'none' then return lat.threat{ where = c.where, norm = 'l2', eps = c.eps, relative = true } end
end

-- ---------------------------------------------------------------- a GPT-2 on Moby Dick

local IMAGE_SITES = { lat_layers = 'layer1,layer2,layer3', rlp_layer = 'layer2' } -- the options' defaults

-- the LAT and RLP sites: as given, or for a GPT-2 left at the ResNet defaults, its first, middle
-- and last blocks (RLP: the middle one)
local function sites(opt)
  if opt.arch ~= 'gpt2' then return list(opt.lat_layers), opt.rlp_layer end
  local n = lat.models.gpt2.config(opt.model).layers
  local function block(k) return 'transformer.h.' .. k end
  local layers = opt.lat_layers ~= IMAGE_SITES.lat_layers and list(opt.lat_layers) or nil
  if not layers then
    layers = {}
    local seen = {}
    for _, k in ipairs{ 0, math.floor((n - 1) / 2), n - 1 } do
      if not seen[k] then seen[k] = true; layers[#layers + 1] = block(k) end
    end
  end
  return layers, opt.rlp_layer ~= IMAGE_SITES.rlp_layer and opt.rlp_layer or block(math.floor((n - 1) / 2))
end

-- windows of len + 1 tokens from the text: x the first len, y the next token at each position
local function windows(tokens, len, n)
  local count = math.min(n, math.floor((#tokens - 1) / len))
  if count < 1 then error(('pretrained_lat: the text holds %d tokens, fewer than one window of %d'):format(#tokens, len + 1), 0) end
  local x, y = lat.zeros({ count, len }, { dtype = 'int32' }), lat.zeros({ count, len }, { dtype = 'int32' })
  for w = 0, count - 1 do
    for t = 0, len - 1 do
      x.i[w * len + t], y.i[w * len + t] = tokens[w * len + t + 1], tokens[w * len + t + 2]
    end
  end
  x:mark_written(); y:mark_written()
  return lat.data.TensorDataset{ x = x, y = y }
end

local function mean_loss(model, ds, threat, opt)
  local total, count = 0, 0
  for b in lat.data.DataLoader(ds, { batch_size = opt.batch }):iter() do
    local loss
    if threat then
      local r = lat.attack.pgd(model, b, threat, { steps = opt.steps, rng = lat.Generator(1) })
      loss = -r.final_loss
    else
      loss = lat.no_grad(function() return lat.cross_entropy(model(b.x), b.y):item() end)
    end
    total, count = total + loss * b.x:size(1), count + b.x:size(1)
  end
  return total / count
end

local function setup_lm(opt)
  local model = lat.models.gpt2.load(opt.model)
  local lat_layers, rlp_layer = sites(opt)
  lat.args.layers(model, 'lat_layers', lat_layers)
  lat.args.layers(model, 'rlp_layer', { rlp_layer })
  local tok = opt.tokenizer ~= '' and lat.data.bpe.load(opt.tokenizer) or lat.data.bpe.gpt2()
  local len = math.min(opt.len, model.config.max_len)
  local train = tok:encode(lat.data.moby_dick('train'):text())
  local val = tok:encode(lat.data.moby_dick('val'):text())
  local s = { model = model, lm = true, ft_data = windows(train, len, opt.finetune), eval_set = windows(val, len, opt.eval_examples),
    attack = lat.threat{ where = 'embedding', norm = 'l2', eps = opt.attack_eps, relative = true }, state = {} }
  for k, v in pairs(model:state_dict()) do s.state[k] = v:clone() end
  print(('pretrained_lat: %s loaded (GPT-2, %d blocks); %d training and %d validation windows of %d tokens'):format(
    opt.model, model.config.layers, s.ft_data:len(), s.eval_set:len(), len))
  return s
end

local function evaluate(s, name, opt)
  if s.lm then
    s.model:eval()
    return { name = name, clean_loss = mean_loss(s.model, s.eval_set, nil, opt), attacked_loss = mean_loss(s.model, s.eval_set, s.attack, opt) }
  end
  local held = HO.run(s.model, s.eval_set, s.suite, { seed = 1 })
  return { name = name, clean_accuracy = lat.eval.accuracy(s.model, s.test_set).accuracy, robustness = held.robustness }
end

return lat.experiment{
  name = 'pretrained_lat',
  about = 'A model you bring, fine-tuned with no defence, RLP, AT and LAT (an image classifier on Fashion-MNIST: clean accuracy and held-out robustness; a GPT-2 on Moby Dick: validation loss, clean and attacked); checkpoints in PyTorch layout.',
  options = {
    model = { '', 'the checkpoint to start from (safetensors; PyTorch or lat layout; gpt2: a Hugging Face GPT-2 folder)' },
    arch = { 'resnet', "its architecture: resnet (any torchvision-layout ResNet, read off the file), resnet18, resnet34, gpt2 (a Hugging Face GPT-2 folder), or '' for a lat checkpoint" },
    batch = { 64, 'fine-tuning batch size', 'count' },
    finetune = { 4000, 'clean training images (gpt2: windows) each defence fine-tunes on', 'count' },
    ft_lr = { 0.01, 'fine-tuning learning rate (SGD, momentum 0.9)', 'positive' },
    ft_epochs = { 1, 'fine-tuning epochs', 'count' },
    steps = { 5, 'PGD steps of the AT and LAT adversaries', 'natural' },
    at_eps = { '0.5,1', 'AT radii at the input (L2, absolute; gpt2: at the token embeddings, relative)', 'nonnegative list' },
    lat_layers = { IMAGE_SITES.lat_layers, 'LAT sites (gpt2 by default: its first, middle and last blocks)', 'list' },
    lat_eps = { '0.1', 'LAT radii (L2, relative to the activation norm)', 'nonnegative list' },
    rlp_layer = { IMAGE_SITES.rlp_layer, 'the site of the random latent perturbation control (RLP; gpt2 by default: the middle block)' },
    rlp_eps = { 0.1, "RLP's radius (L2, relative)", 'nonnegative' },
    seeds = { '1', 'fine-tuning seeds', 'natural list' },
    eval_examples = { 500, 'test images for the held-out attacks (gpt2: validation windows)', 'count' },
    test_examples = { 10000, 'test images for clean accuracy', 'count' },
    len = { 128, 'gpt2: tokens a window (at most the model\'s n_positions)', 'count' },
    tokenizer = { '', "gpt2: a folder with vocab.json + merges.txt (default: GPT-2's, from the data folder)" },
    attack_eps = { 0.1, "gpt2: the scoring attack's radius at the token embeddings (L2, relative)", 'nonnegative' },
  },
  quick = { finetune = 128, eval_examples = 32, test_examples = 256, steps = 1, at_eps = '1', len = 32 },
  check = function(opt)
    if opt.model == '' then error('pretrained_lat: --model must name a checkpoint (safetensors, or with --arch=gpt2 a GPT-2 folder)', 0) end
  end,

  setup = function(opt)
    if opt.arch == 'gpt2' then return setup_lm(opt) end
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
    local lat_layers, rlp_layer = sites(opt)
    local configs = D.list{ format = '%.2g', rlp = { rlp_layer, opt.rlp_eps }, at = { opt.arch == 'gpt2' and 'embedding' or 'input', list(opt.at_eps, 'number') },
      lat = D.pairs_of(opt.quick and { lat_layers[math.min(2, #lat_layers)] } or lat_layers, list(opt.lat_eps, 'number')) }
    for _, seed in ipairs(list(opt.seeds, 'number')) do
      for _, c in ipairs(configs) do out[#out + 1] = D.at(c, seed) end
    end
    return out
  end,

  run = function(c, ctx)
    local s, opt = ctx.setup, ctx.opt
    s.model:load_state_dict(s.state)
    if c.name == D.UNDEFENDED then return evaluate(s, 'as loaded', opt) end
    local threat = threat_of(c, s.lm)
    local t0 = now()
    lat.train.fit{ model = s.model, epochs = opt.ft_epochs,
      loader = lat.data.DataLoader(s.ft_data, { batch_size = opt.batch, shuffle = true, seed = ctx:seed('data order') }),
      loss = D.loss(c, threat, { weight = 1, steps = opt.steps, rng = ctx:generator('attack') }),
      optimizer = lat.optim.SGD(s.model:named_parameters(), { lr = opt.ft_lr, momentum = 0.9 }) }
    s.model:eval()
    local row = evaluate(s, c.name, opt)
    row.train_seconds, row.seed = now() - t0, c.seed
    local file = (c.key:gsub('[^%w%.=-]+', '_'))
    if s.lm then
      row.checkpoint = ctx:path(file)
      lat.models.gpt2.save(s.model, row.checkpoint)
      print(('  %-22s seed %d: loss %.3f, under attack %.3f  -> %s'):format(c.name, c.seed, row.clean_loss, row.attacked_loss, row.checkpoint))
      return row
    end
    row.checkpoint = ctx:path(file .. '.safetensors')
    lat.save(row.checkpoint, s.model:state_dict())
    print(('  %-18s seed %d: clean %.1f%%  held-out %.1f%%  -> %s'):format(c.name, c.seed, 100 * row.clean_accuracy, 100 * row.robustness, row.checkpoint))
    return row
  end,

  summarise = function(rows, ctx)
    if rows[1] and rows[1].clean_loss then
      print(ctx:heading(('%-26s %10s %14s'):format('model', 'val loss', 'attacked loss')))
      for _, r in ipairs(rows) do print(('%-26s %10.3f %14.3f'):format(r.name, r.clean_loss, r.attacked_loss)) end
      return
    end
    print(ctx:heading(('%-22s %8s %10s'):format('model', 'clean %', 'held-out %')))
    for _, r in ipairs(rows) do print(('%-22s %8.1f %10.1f'):format(r.name, 100 * r.clean_accuracy, 100 * r.robustness)) end
  end,
}
