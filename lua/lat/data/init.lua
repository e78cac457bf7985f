-- data/init.lua: lat.data, data sets and batches. Datasets (:len(), :get(i), optional :batch(index)),
-- DataLoader and transforms, the byte, word and BPE (GPT-2) tokenizers, the data set loaders and
-- the IDX reader (PNG files: lat.io).
--   local train = lat.data.fashion_mnist('train')
--   for batch in lat.data.DataLoader(train, {batch_size = 128, shuffle = true, seed = 1}):iter() do
--     local logits = model(batch.x)          -- x float32 [128, 1, 28, 28], y int32 [128]
--   end
local dataset = require 'lat.data.dataset'
local loader = require 'lat.data.loader'
local files = require 'lat.data.files'
local vision = require 'lat.data.vision'
local text = require 'lat.data.text'

return {
  -- datasets and batches
  Dataset = dataset.Dataset, TensorDataset = dataset.TensorDataset, ListDataset = dataset.ListDataset,
  map = dataset.map, subset = dataset.subset, concat = dataset.concat,
  DataLoader = loader.DataLoader, compose = loader.compose, collate = loader.collate,
  augment = require 'lat.data.augment',
  -- tokens
  bytes = require 'lat.data.bytes',
  words = require 'lat.data.words',
  bpe = require 'lat.data.bpe',
  email = require 'lat.data.email',
  charset = require 'lat.data.charset',
  -- data sets
  root = files.root,
  fashion_mnist = vision.fashion_mnist, image_folder = vision.image_folder,
  spam = text.spam, moby_dick = text.moby_dick, sotu = text.sotu,
  -- files
  read_idx = files.read_idx,
}
