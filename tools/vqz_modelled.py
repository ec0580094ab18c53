#!/usr/bin/env python3
"""vqz_modelled.py - the modelled index frames of spec/vqz-format.md section 6.5 (an adaptive frequency model driving a
range coder) and the weight bundle's prior (spec/bundle.md section 3.1), from the spec alone; used by vqz_reader.py."""

Fault = type("Fault", (Exception,), {})  # args: (status name such as "VQZ_ERR_CHECKSUM", why)
def require(cond, code, why):
    if not cond:
        raise Fault("VQZ_ERR_" + code, why)

def prior_rows(t):  # the rvq.prior tensor (F32 [L, K] as parsed): integer rows, each >= 1, summing to 2^24
    K = t["shape"][1]
    rows = [[int(x) for x in t["values"][i * K:(i + 1) * K]] for i in range(t["shape"][0])]
    require(all(sum(r) == 1 << 24 and min(r) >= 1 for r in rows), "FORMAT", "prior")
    return rows

def modelled(b, K, n, prior):  # n indices < K from frame b; prior: the level's row or None
    s, t, out = b[4], b[5], []
    require(len(b) >= 13 and b[6:9] == b"\0\0\0" and s <= 20 and t <= 12, "FORMAT", "modelled frame header")
    require(not s or prior, "UNSUPPORTED", "the frame starts from the model's prior")
    require(64 * n >= K, "FORMAT", "too few indices for a modelled frame")
    f = [max(1, prior[k] >> (24 - s)) if s else 1 for k in range(K)]
    code, rng, pos, T = int.from_bytes(b[9:13], "big"), 0xFFFFFFFF, 13, sum(f)
    for _ in range(n):
        r = rng // T
        v, k, cum = code // r, 0, 0
        require(v < T, "FORMAT", "value outside the model")
        while cum + f[k] <= v:
            cum, k = cum + f[k], k + 1
        out.append(k)
        code, rng = code - r * cum, r * f[k]
        while rng < 1 << 24:
            require(pos < len(b), "FORMAT", "modelled frame cut")
            code, rng, pos = (code << 8 | b[pos]) & 0xFFFFFFFF, rng << 8, pos + 1
        f[k], T = f[k] + (1 << t), T + (1 << t)
        if T > 1 << 22:
            f = [(x + 1) >> 1 for x in f]
            T = sum(f)
    require(pos == len(b), "FORMAT", "bytes left after the modelled frame")
    return out
