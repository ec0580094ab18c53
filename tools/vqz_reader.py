#!/usr/bin/env python3
"""vqz_reader.py - an independent reader of .vqz files and weight bundles, from spec/vqz-format.md and spec/bundle.md
alone (stdlib + python3-zstandard). Usage: --check tests/vectors/manifest.json | --dump FILE.vqz [BUNDLE]"""
import hashlib, itertools, json, math, os, struct, sys, zlib
import zstandard
from vqz_modelled import Fault, modelled, prior_rows, require  # section 6.5 frames, bundle section 3.1 priors

SIGNATURE, ZSTD_MAGIC = b"\x89VQZ\r\n\x1a\n", b"\x28\xb5\x2f\xfd"
LIMITS = dict(header=16 << 20, level=1 << 26, chunk=1 << 24, metadata=1 << 20, alpha=1 << 29, pixels=1 << 28)

u = lambda b, off, n: int.from_bytes(b[off:off + n], "little")  # noqa: E731 (little-endian field)
def high_bits(K):  # section 6: high bits per index, and high values per byte of the high plane
    hb = max(0, (K - 1).bit_length() - 8)
    return hb, (8 // hb if hb in (1, 2) else 2 if hb in (3, 4) else 1)
packed_size = lambda K, n: n if high_bits(K)[0] == 0 else -(-n // high_bits(K)[1]) + n  # noqa: E731
class Vqz:
    def __init__(self, d, prior=None):
        self.data, self.prior, n = d, prior or [None] * 32, len(d)
        require(d[:8] == SIGNATURE[:min(n, 8)], "SIGNATURE", "bad signature")
        require(n >= 16, "TRUNCATED", "header cut")
        self.minor, hs = u(d, 10, 2), u(d, 12, 4)
        require(u(d, 8, 2) == 1, "VERSION", "major version %d" % u(d, 8, 2))
        require(hs >= 137, "FORMAT", "header too small")
        require(hs <= LIMITS["header"], "LIMIT", "header size")
        require(hs <= n, "TRUNCATED", "header cut")
        require(zlib.crc32(d[:hs - 4]) == u(d, hs - 4, 4), "CHECKSUM", "header CRC")
        strict, fixed = self.minor <= 1, u(d, 16, 2)  # reserved bytes are checked in 1.0 and 1.1 files only
        require(fixed == 128 or (fixed > 128 and not strict), "FORMAT", "fixed size")
        kind, L, nsec, nlen = d[18], d[19], u(d, 20, 2), d[22]
        require(not strict or (d[23] == 0 and not any(d[104:128])), "FORMAT", "reserved bytes")
        P, H, W, CH, CW, stride = (u(d, 24 + 4 * i, 4) for i in range(6))
        require(kind in (1, 2), "UNSUPPORTED", "media kind")
        require(1 <= L <= 32 and fixed + 4 * L + nlen + 4 <= hs, "FORMAT", "level count")
        self.K = [u(d, fixed + 4 * i, 4) for i in range(L)]
        require(all(2 <= k <= 65536 for k in self.K) and min(P, H, W) >= 1, "FORMAT", "K or grid")
        require(P * H * W <= LIMITS["level"], "LIMIT", "grid")
        require(1 <= CH <= H and 1 <= CW <= W, "FORMAT", "chunk")
        require(P * CH * CW <= LIMITS["chunk"], "LIMIT", "chunk")
        name = d[fixed + 4 * L:fixed + 4 * L + nlen]
        require(1 <= stride <= 65536 and nlen > 0 and min(name) >= 0x20 and 0x7F not in name, "FORMAT", "name")
        self.header = h = dict(version=[1, self.minor], media_kind=kind, levels=L, K=self.K, grid=[P, H, W],
                               chunk=[CH, CW], stride=stride, model_name=name.decode("utf-8"),
                               model_sha256=d[48:80].hex())
        if kind == 1:
            w, ht, ch, depth, cs = u(d, 80, 4), u(d, 84, 4), d[88], d[89], d[90]
            require((not strict or not any(d[91:104])) and w >= 1 and ht >= 1, "FORMAT", "image")
            require(w * ht <= LIMITS["pixels"], "LIMIT", "pixels")
            require(1 <= ch <= 4 and depth in (8, 16), "FORMAT", "image format")
            require(cs <= 2, "UNSUPPORTED", "colour space")
            h["image"] = dict(width=w, height=ht, channels=ch, bit_depth=depth, colour_space=cs)
        else:
            rate, mrate, count, ch, depth = u(d, 80, 4), u(d, 84, 4), u(d, 88, 8), u(d, 96, 2), d[98]
            require((not strict or not any(d[99:104])) and 1 <= rate <= 1 << 20 and 1 <= mrate <= 1 << 20
                    and 1 <= count <= 1 << 48 and ch >= 1 and depth in (0, 8, 16, 24, 32), "FORMAT", "audio")
            h["audio"] = dict(sample_rate=rate, model_rate=mrate, sample_count=count, channels=ch, bit_depth=depth)
        self.cx, self.cy = -(-W // CW), -(-H // CH)
        C, pos = self.cx * self.cy, fixed + 4 * L + nlen
        require(hs == pos + 16 * nsec + 12 * L * C + 4, "FORMAT", "header size")
        alpha = kind == 1 and h["image"]["channels"] in (2, 4)
        off, self.sections = hs, {}
        for e in range(pos, pos + 16 * nsec, 16):
            typ, flags, crc, size = u(d, e, 2), u(d, e + 2, 2), u(d, e + 4, 4), u(d, e + 8, 8)
            require((not strict or flags & ~1 == 0) and typ not in self.sections and (typ != 2 or alpha), "FORMAT",
                    "section flags, duplicate, or alpha without an alpha channel")
            require(typ != 1 or size <= LIMITS["metadata"], "LIMIT", "metadata")
            require(typ in (1, 2, 3) or not flags & 1, "UNSUPPORTED", "unknown critical section")
            require(typ != 3 or (size == crc == 0 and flags & 1), "FORMAT", "modelled-frames section")
            self.sections[typ] = (off, size, crc)
            off += size
        if alpha:
            img, asz = h["image"], self.sections.get(2, (0, 0))[1]
            self.alpha_size = img["width"] * img["height"] * img["bit_depth"] // 8
            require(2 in self.sections, "FORMAT", "alpha section missing")
            require(self.alpha_size <= LIMITS["alpha"] and 12 <= asz <= self.alpha_size * 129 // 128 + 1032,
                    "LIMIT", "alpha")
        pos += 16 * nsec
        self.frames = [[] for _ in range(L)]
        for lv, c in itertools.product(range(L), range(C)):
            comp, raw, crc = u(d, pos, 4), u(d, pos + 4, 4), u(d, pos + 8, 4)
            require(raw == packed_size(self.K[lv], P * self.rect(c)[2] * self.rect(c)[3]), "FORMAT", "raw size")
            require(4 <= comp <= raw + raw // 128 + 1024, "LIMIT", "compressed size")
            self.frames[lv].append((off, comp, raw, crc))
            pos, off = pos + 12, off + comp
        require(self.frames[0][0][0] <= n, "TRUNCATED", "sections cut")
        require(n <= off, "FORMAT", "trailing data")
        self.available = len(list(itertools.takewhile(lambda r: r[-1][0] + r[-1][1] <= n, self.frames)))
    def rect(self, c):
        (CH, CW), (P, H, W) = self.header["chunk"], self.header["grid"]
        y, x = (c // self.cx) * CH, (c % self.cx) * CW
        return y, x, min(CH, H - y), min(CW, W - x)
    def zstd(self, blob, raw):  # zstandard.ZstdError counts as VQZ_ERR_FORMAT (see status)
        require(blob[:4] == ZSTD_MAGIC, "FORMAT", "not a zstd frame")
        cs = zstandard.get_frame_parameters(blob).content_size
        require(cs in (raw, zstandard.CONTENTSIZE_UNKNOWN), "FORMAT", "content size")
        obj = zstandard.ZstdDecompressor().decompressobj()
        out = obj.decompress(blob)
        require(obj.eof and not obj.unused_data and len(out) == raw, "FORMAT", "not exactly one frame")
        return out
    def chunk(self, lv, c):
        off, comp, raw, crc = self.frames[lv][c]
        require(off < len(self.data), "MISSING", "frame absent")
        require(off + comp <= len(self.data), "TRUNCATED", "frame cut")
        require(zlib.crc32(blob := self.data[off:off + comp]) == crc, "CHECKSUM", "frame CRC")
        K, n = self.K[lv], self.header["grid"][0] * self.rect(c)[2] * self.rect(c)[3]
        if blob[:4] == b"VQZA":  # section 6.5: only in a file with the modelled-frames section
            return require(3 in self.sections, "FORMAT", "section 3") or modelled(blob, K, n, self.prior[lv])
        b, (hb, per) = self.zstd(blob, raw), high_bits(K)
        idx = list(b)
        if hb:  # the packed high-bit plane, then the low bytes grouped by high value
            nh = -(-n // per)
            hi = [(b[i // per] >> (hb * (i % per))) & ((1 << hb) - 1) for i in range(n)]
            used = [hb * min(per, n - j * per) for j in range(nh)]  # bits above them must be zero
            require(all(used[j] >= 8 or b[j] >> used[j] == 0 for j in range(nh)), "FORMAT", "padding bits")
            start = list(itertools.accumulate([nh] + [hi.count(v) for v in range(1 << hb)]))
            groups = [iter(b[start[v]:start[v + 1]]) for v in range(1 << hb)]
            idx = [v << 8 | next(groups[v]) for v in hi]
        require(all(i < K for i in idx), "INDEX_RANGE", "index >= K")
        return idx
    def level(self, lv):
        P, H, W = self.header["grid"]
        grid = [0] * (P * H * W)
        for c in range(self.cx * self.cy):
            (y, x, h, w), part = self.rect(c), self.chunk(lv, c)
            for p, r in itertools.product(range(P), range(h)):
                grid[(p * H + y + r) * W + x:(p * H + y + r) * W + x + w] = part[(p * h + r) * w:(p * h + r + 1) * w]
        return grid
    def section(self, typ):
        off, size, crc = self.sections[typ]
        require(zlib.crc32(self.data[off:off + size]) == crc, "CHECKSUM", "section CRC")
        return self.data[off:off + size]

def status(fn):
    try:
        return "ok", fn()
    except Fault as f:
        return f.args[0], None
    except zstandard.ZstdError:
        return "VQZ_ERR_FORMAT", None
def describe(data, prior=None):
    st, f = status(lambda: Vqz(data, prior))
    if st != "ok":
        return {"open": st}
    out = {"open": "ok", "header": f.header, "levels_available": f.available, "levels": []}
    for lv in range(len(f.K)):
        s, grid = status(lambda: f.level(lv))
        out["levels"].append(dict(status=s, **({"indices": grid} if s == "ok" else {}),
                                  chunks=[status(lambda: f.chunk(lv, c))[0] for c in range(f.cx * f.cy)]))
    out["metadata"] = f.section(1).decode("utf-8") if 1 in f.sections else None
    out["alpha"] = f.zstd(f.section(2)[8:], f.alpha_size).hex() if 2 in f.sections else None
    return out

def describe_bundle(data):  # spec/bundle.md section 3
    try:
        (n,), size = struct.unpack_from("<Q", data), {"F32": 4, "F16": 2, "BF16": 2}
        require(n <= len(data) - 8, "TRUNCATED", "header length")
        head = json.loads(data[8:8 + n].decode("utf-8"))
        meta = head.pop("__metadata__", {})  # spans must tile the data: contiguous, dtype x shape bytes each
        spans = sorted(t["data_offsets"] + [math.prod(t["shape"]) * size[t["dtype"]]] for t in head.values())
        ends = [0] + [e for _, e, _ in spans]
        require(all(b == ends[i] and e - b == nb for i, (b, e, nb) in enumerate(spans))
                and 8 + n + ends[-1] == len(data), "FORMAT", "offsets")
    except (ValueError, KeyError, TypeError, struct.error):
        return {"open": "VQZ_ERR_FORMAT"}
    except Fault as f:
        return {"open": f.args[0]}
    out = {"open": "ok", "sha256": hashlib.sha256(data).hexdigest(), "metadata": meta, "tensors": {}}
    for name, t in head.items():
        raw = data[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]
        raw = b"".join(b"\0\0" + raw[i:i + 2] for i in range(0, len(raw), 2)) if t["dtype"] == "BF16" else raw
        fmt = "e" if t["dtype"] == "F16" else "f"
        vals = list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))
        ok = all(abs(v) < float("inf") for v in vals)  # NaN compares false too
        out["tensors"][name] = dict(dtype=t["dtype"], shape=t["shape"],
                                    **({"values": vals} if ok else {"load": "VQZ_ERR_NONFINITE"}))
    return out

prior_of = lambda path: prior_rows(describe_bundle(open(path, "rb").read())["tensors"]["rvq.prior"])  # noqa: E731
def agrees(got, want):  # every key of want must be in got with an agreeing value
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and agrees(got[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(agrees, got, want))
    return got == want
def main(argv):
    if not (argv[1:2] == ["--dump"] and len(argv) in (3, 4) or argv[1:2] == ["--check"] and len(argv) == 3):
        return print(__doc__, file=sys.stderr) or 2
    if argv[1] == "--dump":
        return print(json.dumps(describe(open(argv[2], "rb").read(), argv[3:] and prior_of(argv[3])))) or 0
    manifest, folder, bad = json.load(open(argv[2])), os.path.dirname(argv[2]), 0
    for kind, fn in (("vqz", describe), ("bundle", describe_bundle)):
        for name, want in manifest[kind].items():
            args = [prior_of(os.path.join(folder, want.pop("prior")))] if "prior" in want else []
            if not agrees(got := fn(open(os.path.join(folder, name), "rb").read(), *args), want):
                bad += 1
                print("MISMATCH %s:\n  got  %s\n  want %s" % (name, json.dumps(got), json.dumps(want)))
    print("all vectors agree" if not bad else "%d vectors disagree" % bad)
    return 1 if bad else 0
if __name__ == "__main__":
    sys.exit(main(sys.argv))
