#!/usr/bin/env python3
"""summary.py OUTDIR ENC... — the markdown summary of scripts/corpus/measure
(reads OUTDIR/.measure: times.txt, stats.json, chunkyard.log, layers.tsv,
verified.txt, estimate.json)."""
import collections, json, os, re, sys

out, encs = sys.argv[1], sys.argv[2:]
m = os.path.join(out, ".measure")
t = {}
for line in open(os.path.join(m, "times.txt")):
    f = line.split()
    t[" ".join(f[:-1])] = float(f[-1])
st = json.load(open(os.path.join(m, "stats.json")))
ref = int(t["ref_bytes"])

enc_of = collections.defaultdict(set)   # digest -> encoders
tar_of = {}
nimg = collections.Counter()
for line in open(os.path.join(m, "layers.tsv")):
    enc, r, d, size, mt = line.rstrip("\n").split("\t")
    enc_of[d].add(enc)
    nimg[enc] = nimg.get(enc, 0)
imgs = {e: len([x for x in os.listdir(os.path.join(out, e)) if not x.startswith(".")]) for e in encs}

conv = collections.defaultdict(collections.Counter)  # enc -> outcome -> n
seen = set()
for line in open(os.path.join(m, "chunkyard.log")):
    mm = re.search(r'msg="(converted layer|storing blob opaque)".*?digest=(sha256:[0-9a-f]+)', line)
    if not mm or mm.group(2) in seen:
        continue
    seen.add(mm.group(2))
    if mm.group(1) == "converted layer":
        e = re.search(r'encoding="((?:[^"\\]|\\.)*)"', line)
        try:
            j = json.loads(json.loads('"' + e.group(1) + '"'))
            what = f"split {j.get('Format')} {j.get('Encoder')}" + (f" level {j['Level']}" if j.get('Level') is not None else "")
        except Exception:
            what = "split ?"
    else:
        w = re.search(r'why="?([^"]*)"?', line)
        what = "opaque"
    for enc in enc_of.get(mm.group(2), {"(not in corpus)"}):
        conv[enc][what] += 1

verified = collections.defaultdict(dict)
for line in open(os.path.join(m, "verified.txt")):
    side, enc, n = line.split()
    verified[enc][side] = int(n)

def r(a, b):
    return f"{a / b:.2f}x" if b else "-"

o = []
o.append("| | distribution v3.1.2 | chunkyard | ratio |")
o.append("|---|---|---|---|")
o.append(f"| stored bytes | {ref:,} | {st['stored_bytes']:,} | {r(ref, st['stored_bytes'])} smaller |")
o.append(f"| layers: converted (split) / pending / total blobs | | {st['converted_blobs']} / {st['pending_conversions']} / {st['blobs']} | |")
pr = sum(t.get(f"push ref.{e}", 0) for e in encs)
pc = sum(t.get(f"push cy.{e}", 0) for e in encs)
o.append(f"| push wall time, all images | {pr:.1f} s | {pc:.1f} s | {r(pc, pr)} |")
o.append(f"| background conversion after last push | | {t['convert_wait']:.1f} s | |")
lr = sum(t.get(f"pull ref.{e}", 0) for e in encs)
lc = sum(t.get(f"pull cycold.{e}", 0) for e in encs)
lh = sum(t.get(f"pull cyhot.{e}", 0) for e in encs)
o.append(f"| pull wall time, all images, cold layer cache | {lr:.1f} s | {lc:.1f} s | {r(lc, lr)} |")
o.append(f"| pull wall time, all images, hot layer cache | {lr:.1f} s | {lh:.1f} s | {r(lh, lr)} |")
o.append("")
o.append("Per encoder (times in seconds for all rebuilds of that encoder; chunkyard outcome per distinct layer blob, from the server log):")
o.append("")
o.append("| encoder | images | layer blobs | chunkyard outcome | push ref / cy | pull ref / cy cold / cy hot | blobs verified ref / cold / hot |")
o.append("|---|---|---|---|---|---|---|")
for e in encs:
    nl = len([d for d, s in enc_of.items() if e in s])
    oc = ", ".join(f"{k}: {v}" for k, v in sorted(conv[e].items())) or "-"
    v = verified.get(e, {})
    o.append(f"| {e} | {imgs[e]} | {nl} | {oc} | {t.get('push ref.'+e,0):.1f} / {t.get('push cy.'+e,0):.1f} | "
             f"{t.get('pull ref.'+e,0):.1f} / {t.get('pull cycold.'+e,0):.1f} / {t.get('pull cyhot.'+e,0):.1f} | "
             f"{v.get('ref','-')} / {v.get('cycold','-')} / {v.get('cyhot','-')} |")
o.append("")
est = os.path.join(m, "estimate.json")
if os.path.exists(est) and os.path.getsize(est) > 0:
    j = json.load(open(est))
    tt = j["total"]
    o.append("`chunkyard bench estimate --json` over the pulled layouts (total):")
    o.append("")
    o.append("| | bytes |")
    o.append("|---|---|")
    o.append(f"| plain registry (each blob once) | {tt['plain']['bytes']:,} |")
    o.append(f"| chunkyard (estimate) | {tt['chunkyard']['bytes']:,} ({tt['plain_over_chunkyard']:.2f}x smaller) |")
    o.append(f"| ideal CDC over the uncompressed tars | {tt['ideal_cdc']['bytes']:,} ({tt['plain_over_ideal_cdc']:.2f}x smaller) |")
    o.append(f"| layers / reproduced | {tt['layers']} / {tt['reproduced_layers']} |")
    o.append(f"| encoders found | {json.dumps(tt.get('encoders', {}))} |")
    o.append(f"| not reproduced | {json.dumps(tt.get('not_reproduced', {}))} |")
    o.append(f"| layer tar bytes | {tt['tar_bytes']:,} |")
    o.append("")
    o.append("What each encoder's images add to the estimate, in push order (layouts already counted by an earlier encoder add only their new bytes):")
    o.append("")
    o.append("| encoder | plain adds | chunkyard adds (estimate) | ideal CDC adds | reproduced / layers | first rebuild: plain / chunkyard | each later rebuild, mean: plain / chunkyard |")
    o.append("|---|---|---|---|---|---|---|")
    for e in encs:
        ls = [l for l in j["layouts"] if ("/" + e + "/") in l["path"]]
        if not ls:
            continue
        pl = sum(l["plain"]["bytes"] for l in ls)
        cy = sum(l["chunkyard"]["bytes"] for l in ls)
        idl = sum(l["ideal_cdc"]["bytes"] for l in ls)
        rep = sum(l["reproduced_layers"] for l in ls)
        nl = sum(l["layers"] for l in ls)
        later = ls[1:]
        mp = sum(l["plain"]["bytes"] for l in later) / max(len(later), 1)
        mc = sum(l["chunkyard"]["bytes"] for l in later) / max(len(later), 1)
        o.append(f"| {e} | {pl:,} | {cy:,} | {idl:,} | {rep} / {nl} | {ls[0]['plain']['bytes']:,} / {ls[0]['chunkyard']['bytes']:,} | {mp:,.0f} / {mc:,.0f} |")
lc = os.path.join(m, "lc-cold")
if os.path.isdir(lc):
    n = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(lc) for f in fs)
    o.append("")
    o.append(f"chunkyard's layer cache after the pulls (separate --layer-cache-dir, not in stored bytes): {n:,} bytes.")
print("\n".join(o))
