import re, sys
def split_top(s):
    out, depth, cur = [], 0, ''
    for ch in s:
        if ch in '(<[{': depth += 1
        if ch in ')>]}': depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur.strip()); cur = ''
        else: cur += ch
    out.append(cur.strip()); return out
def conv(src):
    s = open(src).read()
    s = s.replace('#include "cuda/cuda_check.h"', '#include "emu_helpers.h"')
    s = s.replace('extern __shared__ float4 smem4[];', 'float4* smem4 = reinterpret_cast<float4*>(emu_dyn_smem);')
    s = s.replace('extern __shared__ __align__(128) float4 smem4[];',
                  'float4* smem4 = reinterpret_cast<float4*>(emu_dyn_smem);  // 128-byte aligned (emu_prelude.h)')
    s = s.replace('#include <cub/device/device_radix_sort.cuh>', '#include "emu_cub.h"')
    s = s.replace('#include <mma.h>', '#include "emu_wmma.h"')
    pat = re.compile(r'([A-Za-z_][\w:]*(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', re.S)
    def rep(m):
        name, cfg, args = m.group(1), split_top(m.group(2)), m.group(3)
        smem = cfg[2] if len(cfg) > 2 else '0'
        return f'emu_launch(dim3({cfg[0]}), dim3({cfg[1]}), size_t({smem}), [&] {{ {name}({args}); }});'
    s, n = pat.subn(rep, s)
    return s, n
for src in sys.argv[1:]:
    s, n = conv(src)
    name = src.split('/')[-1].replace('.cu', '_emu.cpp')
    open(name, 'w').write(s)
    print(name, n, 'launches')
