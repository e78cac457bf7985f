-- vision.lua: image data sets as tensor datasets: Fashion-MNIST from its IDX files, and a folder
-- of PNGs with one subfolder per class.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local files = require 'lat.data.files'
local dataset = require 'lat.data.dataset'
local ffi, C, raise = core.ffi, core.C, core.raise

local V = {}

V.FASHION_MNIST_CLASSES = { 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
  'Sneaker', 'Bag', 'Ankle boot' }
local FMNIST = { train = { prefix = 'train', n = 60000 }, test = { prefix = 't10k', n = 10000 } }

-- fashion_mnist(split[, {root = folder}]): split 'train' (60000) or 'test' (10000); a tensor
-- dataset with x float32 [N, 1, 28, 28] in [0, 1] and y int32 [N] (0..9, see .classes).
function V.fashion_mnist(split, opts)
  local what = 'fashion_mnist'
  local s = FMNIST[split or 'train']
  if not s then raise(("fashion_mnist: split must be 'train' or 'test', got '%s'"):format(tostring(split))) end
  local dir = files.root(opts) .. '/fashion-mnist/'
  local ipath = dir .. s.prefix .. '-images-idx3-ubyte.gz'
  local lpath = dir .. s.prefix .. '-labels-idx1-ubyte.gz'
  local images = files.read_data(what, ipath, C.lat_read_idx)
  local labels = files.read_data(what, lpath, C.lat_read_idx)
  local ishape = images.shape
  if #ishape ~= 3 or ishape[1] ~= s.n or ishape[2] ~= 28 or ishape[3] ~= 28 then
    raise(('%s: %s holds images of shape [%s], expected [%d, 28, 28]; %s'):format(what, ipath,
      table.concat(ishape, ', '), s.n, files.HINT))
  end
  if labels.ndim ~= 1 or labels:size(1) ~= s.n then
    raise(('%s: %s holds labels of shape [%s], expected [%d]; %s'):format(what, lpath,
      table.concat(labels.shape, ', '), s.n, files.HINT))
  end
  local lp = labels.u
  for k = 0, s.n - 1 do
    if lp[k] > 9 then raise(('%s: %s: label %d of example %d is not a class 0..9; %s'):format(what, lpath, lp[k], k + 1, files.HINT)) end
  end
  local x = images:reshape(s.n, 1, 28, 28):float():mul_(1 / 255)
  local ds = dataset.TensorDataset{ x = x, y = labels:int() }
  ds.classes = V.FASHION_MNIST_CLASSES
  return ds
end

-- image_folder(dir): dir/<class>/*.png, classes sorted by name (label = 0-based position), files
-- sorted by name within a class. Every image must have the same channels and size. A tensor
-- dataset with x float32 [N, C, H, W] in [0, 1] and y int32 [N]; .classes and .files list them.
function V.image_folder(dir)
  if type(dir) ~= 'string' then raise('image_folder: expected a folder path') end
  local names = files.list_dir(dir)
  if not names then raise(('image_folder: cannot open the folder %s'):format(dir)) end
  local classes, paths, labels = {}, {}, {}
  for _, name in ipairs(names) do
    local sub = dir .. '/' .. name
    if name:sub(1, 1) ~= '.' and files.is_dir(sub) then
      classes[#classes + 1] = name
      for _, f in ipairs(files.list_dir(sub) or {}) do
        if f:lower():match('%.png$') then
          paths[#paths + 1] = sub .. '/' .. f
          labels[#labels + 1] = #classes - 1
        end
      end
    end
  end
  if #classes == 0 then raise(('image_folder: %s has no class subfolders'):format(dir)) end
  if #paths == 0 then raise(('image_folder: no .png files in the class folders of %s'):format(dir)) end
  local x, shape, per
  for k, path in ipairs(paths) do
    local img = files.read_data('image_folder', path, C.lat_read_png)
    if not x then
      shape = img.shape
      per = img:numel()
      x = lat.empty({ #paths, shape[1], shape[2], shape[3] }, 'uint8')
    elseif table.concat(img.shape, ',') ~= table.concat(shape, ',') then
      raise(('image_folder: %s has shape [%s] (channels, height, width), but %s has [%s]; all images must agree')
        :format(path, table.concat(img.shape, ', '), paths[1], table.concat(shape, ', ')))
    end
    ffi.copy(x.u + (k - 1) * per, img.u, per)
  end
  local y = lat.empty(#paths, 'int32')
  for k, l in ipairs(labels) do y.i[k - 1] = l end
  local ds = dataset.TensorDataset{ x = x:float():mul_(1 / 255), y = y }
  ds.classes, ds.files = classes, paths
  return ds
end

return V
