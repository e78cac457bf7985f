"""safetensors_ref.py: the Python side of test_checkpoint_dtypes.lua. Writes safetensors files
byte by byte with numpy (u64 header length, JSON header, data; no safetensors package), in every
dtype lat reads, with PyTorch's conversions as the reference values, and checks the F16/BF16
files lat writes against PyTorch's rounding.

    safetensors_ref.py all16 DIR         every F16 and BF16 bit pattern, and torch's float32 of each
    safetensors_ref.py dtypes DIR        a tensor of each dtype, and what lat should keep of it
    safetensors_ref.py encode_src DIR    float32 values at and around every rounding boundary
    safetensors_ref.py encode_check DIR  lat's F16/BF16 files of those against torch (JSON report)
    safetensors_ref.py sharded DIR       a checkpoint in two shards with its index
"""
import json
import os
import struct
import sys

import numpy as np
import torch

NUMPY = {'F32': '<f4', 'F64': '<f8', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2',
         'I8': 'i1', 'U8': 'u1', 'BOOL': '?', 'BF16': '<u2'}  # BF16: its bits as uint16


def write(path, tensors, meta=None):
    """tensors: name -> (safetensors dtype, numpy array; for BF16 the bits as uint16)"""
    header, data = {}, b''
    if meta is not None:
        header['__metadata__'] = meta
    for name, (dtype, a) in tensors.items():
        raw = np.ascontiguousarray(a, dtype=NUMPY[dtype]).tobytes()
        header[name] = {'dtype': dtype, 'shape': list(a.shape),
                        'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + data)


def read(path):
    """name -> (dtype, numpy array) of a safetensors file"""
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n])
    header.pop('__metadata__', None)
    out = {}
    for name, v in header.items():
        lo, hi = v['data_offsets']
        a = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype=NUMPY[v['dtype']]).reshape(v['shape'])
        out[name] = (v['dtype'], a)
    return out


def bf16_bits(t):
    return t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def f32_bits(t):
    return t.float().numpy().view(np.uint32)


def all16(d):
    bits = np.arange(65536, dtype=np.uint16)
    f16 = torch.from_numpy(bits.view(np.float16).copy())
    bf16 = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16)
    write(os.path.join(d, 'all16.safetensors'), {
        'f16': ('F16', bits.view(np.float16)), 'bf16': ('BF16', bits),
        'f16_as_f32': ('F32', f32_bits(f16).view(np.float32)),
        'bf16_as_f32': ('F32', f32_bits(bf16).view(np.float32)),
    })


def dtypes(d):
    f64 = np.array([0.0, -0.0, 1.0, 0.1, -2.5e-300, 1e-45, 3.4028234663852886e38, -1e38,
                    1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, np.inf, -np.inf, np.nan], '<f8')
    i64 = np.array([[0, -1, 2 ** 31 - 1], [-2 ** 31, 12345678, -7]], '<i8')
    i16 = np.array([-32768, -1, 0, 32767], '<i2')
    i8 = np.array([-128, -1, 0, 127], 'i1')
    bools = np.array([[True, False], [False, True]], '?')
    rng = np.random.default_rng(5)
    f16 = rng.standard_normal((3, 5)).astype('<f2')
    bf16 = bf16_bits(torch.from_numpy(rng.standard_normal(7).astype('<f4')))
    f32 = rng.standard_normal(4).astype('<f4')
    stored = {'f64': ('F64', f64), 'i64': ('I64', i64), 'i16': ('I16', i16), 'i8': ('I8', i8),
              'bool': ('BOOL', bools), 'f16': ('F16', f16), 'bf16': ('BF16', bf16),
              'f32': ('F32', f32), 'i32': ('I32', i64.astype('<i4')),
              'u8': ('U8', np.array([0, 255], 'u1')), 'empty_f16': ('F16', np.zeros((0, 3), '<f2')),
              'scalar_i64': ('I64', np.array(-5, '<i8'))}
    write(os.path.join(d, 'dtypes.safetensors'), stored, {'format': 'pt'})
    kept = {'f64': ('F32', torch.from_numpy(f64).float().numpy()),
            'i64': ('I32', i64.astype('<i4')), 'i16': ('I32', i16.astype('<i4')),
            'i8': ('I32', i8.astype('<i4')), 'bool': ('U8', bools.astype('u1')),
            'f16': ('F32', torch.from_numpy(f16).float().numpy()),
            'bf16': ('F32', torch.from_numpy(bf16.view(np.int16).copy()).view(torch.bfloat16).float().numpy()),
            'f32': ('F32', f32), 'i32': ('I32', i64.astype('<i4')), 'u8': ('U8', np.array([0, 255], 'u1')),
            'empty_f16': ('F32', np.zeros((0, 3), '<f4')), 'scalar_i64': ('I32', np.array(-5, '<i4'))}
    write(os.path.join(d, 'dtypes_kept.safetensors'), kept)


def encode_src(d):
    """float32 values that test rounding: every F16 and BF16 value, the midpoints between
    neighbours and one float32 step either side, the overflow thresholds, random bits"""
    h = np.arange(0, 0x7C01, dtype=np.uint16).view(np.float16).astype(np.float64)  # 0 .. inf
    mids16 = ((h[:-1] + h[1:]) / 2).astype(np.float32)  # exact: 12 significant bits
    b = (np.arange(0, 0x7F81, dtype=np.uint32) << 16).view(np.float32).astype(np.float64)
    mids_bf = ((b[:-1] + b[1:]) / 2).astype(np.float32)
    parts = [h.astype(np.float32), mids16, b.astype(np.float32), mids_bf]
    bits = np.concatenate([p.view(np.uint32) for p in parts])
    bits = np.concatenate([bits, bits - 1, bits + 1])
    bits = bits[(bits & 0x7FFFFFFF) <= 0x7F800000]  # the -1 and +1 steps stay numbers
    bits = np.concatenate([bits, bits | 0x80000000,
                           np.random.default_rng(9).integers(0, 2 ** 32, 2 ** 20, dtype=np.uint32),
                           np.array([0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FBFFFFF], np.uint32)])
    write(os.path.join(d, 'encode_src.safetensors'), {'x': ('F32', bits.view(np.float32))})


def compare(got, want, inf):
    """bit patterns (uint16) equal, except that a NaN need only be a NaN; inf: the bits of +inf"""
    got_nan, want_nan = (got & 0x7FFF) > inf, (want & 0x7FFF) > inf
    bad = np.nonzero((got != want) & ~(got_nan & want_nan))[0]
    return {'n': int(got.size), 'nans': int(want_nan.sum()), 'mismatches': int(bad.size),
            'first': [[int(k), int(got[k]), int(want[k])] for k in bad[:5]]}


def encode_check(d):
    x = torch.from_numpy(read(os.path.join(d, 'encode_src.safetensors'))['x'][1].copy())
    f16 = read(os.path.join(d, 'enc_f16.safetensors'))
    bf16 = read(os.path.join(d, 'enc_bf16.safetensors'))
    print(json.dumps({
        'dtypes': [f16['x'][0], bf16['x'][0], f16['ids'][0]],
        'ids': f16['ids'][1].tolist(),
        'f16': compare(f16['x'][1].view(np.uint16), x.to(torch.float16).numpy().view(np.uint16), 0x7C00),
        'bf16': compare(bf16['x'][1], bf16_bits(x), 0x7F80),
    }))


def sharded(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((4, 3)).astype('<f2')
    w2 = bf16_bits(torch.from_numpy(rng.standard_normal(5).astype('<f4')))
    b1 = rng.standard_normal(4).astype('<f4')
    tracked = np.array(17, '<i8')
    one = {'layer.0.weight': ('F16', w1), 'layer.0.bias': ('F32', b1)}
    two = {'layer.1.weight': ('BF16', w2), 'bn.num_batches_tracked': ('I64', tracked)}
    names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']
    write(os.path.join(d, names[0]), one, {'format': 'pt'})
    write(os.path.join(d, names[1]), two, {'format': 'pt'})
    weight_map = {k: names[0] for k in one}
    weight_map.update({k: names[1] for k in two})
    total = sum(np.asarray(a).nbytes for _, a in list(one.values()) + list(two.values()))
    with open(os.path.join(d, 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)
    kept = {'layer.0.weight': ('F32', torch.from_numpy(w1).float().numpy()),
            'layer.0.bias': ('F32', b1),
            'layer.1.weight': ('F32', torch.from_numpy(w2.view(np.int16).copy()).view(torch.bfloat16).float().numpy()),
            'bn.num_batches_tracked': ('I32', tracked.astype('<i4'))}
    write(os.path.join(d, 'kept.safetensors'), kept)


if __name__ == '__main__':
    {'all16': all16, 'dtypes': dtypes, 'encode_src': encode_src, 'encode_check': encode_check,
     'sharded': sharded}[sys.argv[1]](sys.argv[2])
