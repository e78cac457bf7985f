-- text.lua: the text data sets (SpamAssassin, Moby Dick, State of the Union addresses) as lists
-- of examples, each split into train / val / test by a fixed rule (datasets/README.md).
local core = require 'lat.core'
local files = require 'lat.data.files'
local dataset = require 'lat.data.dataset'
local email = require 'lat.data.email'
local raise = core.raise

local T = {}

local function check_split(what, split)
  if split == 'train' or split == 'val' or split == 'test' or split == 'all' then return split end
  raise(("%s: split must be 'train', 'val', 'test' or 'all', got '%s'"):format(what, tostring(split)))
end

-- the names in a data set's folder, or the fetch hint
local function listing(what, dir)
  local names = files.list_dir(dir)
  if not names then files.missing(what, dir) end
  return names
end

-- ---------------------------------------------------------------- SpamAssassin

-- the package's folders: group, label, message count
local SPAM_GROUPS = {
  { 'easy-ham-1', 'easy_ham', 0, 2500 }, { 'easy-ham-2', 'easy_ham', 0, 1400 },
  { 'hard-ham-1', 'hard_ham', 0, 250 }, { 'spam-1', 'spam', 1, 500 }, { 'spam-2', 'spam', 1, 1396 },
}

-- The split of a message file 'NNNNN.<md5 of the message>.txt': the first 8 hex digits of the
-- MD5 as a number, mod 10: 0 test, 1 val, 2..9 train. Copies of one message share a split.
function T.spam_split_of(name)
  local md5 = name:match('^%d+%.(%x+)%.txt$')
  if not md5 or #md5 < 8 then return nil end
  local b = tonumber(md5:sub(1, 8), 16) % 10
  return b == 0 and 'test' or b == 1 and 'val' or 'train'
end

-- spam(split[, {root =, raw = false}]): SpamAssassin messages as examples {text = cleaned text
-- ('Subject: ...' then the body; raw = true keeps the whole message), label = 0 ham / 1 spam,
-- group = 'easy_ham' | 'hard_ham' | 'spam', source = package folder, id = message number}.
function T.spam(split, opts)
  local what = 'spam'
  split = check_split(what, split or 'train')
  local base = files.root(opts) .. '/spam-assassin/data'
  local out = {}
  for _, g in ipairs(SPAM_GROUPS) do
    local dir = base .. '/' .. g[1]
    local names, count = listing(what, dir), 0
    for _, name in ipairs(names) do
      local s = T.spam_split_of(name)
      if s then
        count = count + 1
        if split == 'all' or s == split then
          local msg = files.read_file(dir .. '/' .. name, what)
          out[#out + 1] = {
            text = opts and opts.raw and msg or email.clean(msg), label = g[3], group = g[2],
            source = g[1], id = name:match('^(%d+)'),
          }
        end
      end
    end
    if count ~= g[4] then
      raise(('%s: %s holds %d messages, expected %d; %s'):format(what, dir, count, g[4], files.HINT))
    end
  end
  local ds = dataset.ListDataset(out)
  ds.split = split
  return ds
end

-- ---------------------------------------------------------------- documents

-- a list dataset of documents with ds:text([sep]) joining their texts (sep default '\n\n')
local function documents(list, split)
  local ds = dataset.ListDataset(list)
  ds.split = split
  function ds.text(self, sep) return table.concat(self:column('text'), sep or '\n\n') end
  return ds
end

local function decade_split(k)
  local b = k % 10
  return b == 0 and 'test' or b == 5 and 'val' or 'train'
end

-- moby_dick(split[, {root =}]): Melville's chapters as documents {text =, chapter = number or
-- 'Etymology' | 'Extracts' | 'Epilogue'}. Chapter n goes to test when n % 10 == 0, to val when
-- n % 10 == 5, else to train; the etymology, extracts and epilogue to train; the table of
-- contents is left out. The text starts with the heading ('CHAPTER 1. Loomings.').
function T.moby_dick(split, opts)
  local what = 'moby_dick'
  split = check_split(what, split or 'train')
  local dir = files.root(opts) .. '/moby-dick/data'
  local names = listing(what, dir)
  local docs, chapters = {}, 0
  local function add(key, file, s)
    if split == 'all' or s == split then
      docs[#docs + 1] = { chapter = key, text = files.read_file(dir .. '/' .. file, what) }
    end
  end
  add('Etymology', 'etymology.txt', 'train')
  add('Extracts', 'extracts.txt', 'train')
  local numbers = {}
  for _, name in ipairs(names) do
    local n = tonumber(name:match('^chapter_(%d+)%.txt$'))
    if n then numbers[#numbers + 1] = n end
  end
  table.sort(numbers)
  for _, n in ipairs(numbers) do
    chapters = chapters + 1
    add(n, 'chapter_' .. n .. '.txt', decade_split(n))
  end
  add('Epilogue', 'epilogue.txt', 'train')
  if chapters ~= 135 then
    raise(('%s: %s holds %d chapters, expected 135; %s'):format(what, dir, chapters, files.HINT))
  end
  return documents(docs, split)
end

local PARTIES = { d = 'Democratic', r = 'Republican', dr = 'Democratic-Republican', f = 'Federalist',
  w = 'Whig', wd = 'Whig & Democratic', nu = 'National Union', n = 'none' }

-- sotu(split[, {root =}]): State of the Union addresses 1790-2021 as documents {text =, year =,
-- president = 'george_washington' (from the file name), party =}, in order of year. An address
-- goes to test when its year % 10 == 0, to val when year % 10 == 5, else to train.
function T.sotu(split, opts)
  local what = 'sotu'
  split = check_split(what, split or 'train')
  local dir = files.root(opts) .. '/sotu/data'
  local docs, count = {}, 0
  for _, name in ipairs(listing(what, dir)) do
    local year, who, party = name:match('^(%d%d%d%d)_(.+)_(%l+)%.txt$')
    if year then
      count = count + 1
      year = tonumber(year)
      local s = decade_split(year)
      if split == 'all' or s == split then
        docs[#docs + 1] = { year = year, president = who, party = PARTIES[party] or party,
          text = files.read_file(dir .. '/' .. name, what) }
      end
    end
  end
  if count ~= 233 then
    raise(('%s: %s holds %d addresses, expected 233; %s'):format(what, dir, count, files.HINT))
  end
  return documents(docs, split)
end

return T
