#!/usr/bin/env python3
# Extracts render/src/kustomize/schema.txt from the OpenAPI document compiled
# into kustomize (kyaml/openapi/kubernetesapi/v1_21_2/swagger.pb, kustomize v5.5.0):
#   git show kustomize/v5.5.0:kyaml/openapi/kubernetesapi/v1_21_2/swagger.pb > /tmp/swagger.pb
#   python3 extract_schema.py > ../../src/kustomize/schema.txt
# The .pb is a gnostic OpenAPIv2 Document; this is a minimal protobuf reader.
import sys
data = open('/tmp/swagger.pb','rb').read()
def varint(b, i):
    r = 0; s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i
def fields(b):
    i = 0; out = []
    while i < len(b):
        k, i = varint(b, i); f, t = k >> 3, k & 7
        if t == 0: v, i = varint(b, i)
        elif t == 1: v = b[i:i+8]; i += 8
        elif t == 5: v = b[i:i+4]; i += 4
        elif t == 2:
            l, i = varint(b, i); v = b[i:i+l]; i += l
        else: raise Exception('wt %d' % t)
        out.append((f, v))
    return out
def get(fs, n): return [v for f, v in fs if f == n]
doc = fields(data)
defs = {}
for d in get(doc, 9):
    for ns in get(fields(d), 1):
        nf = fields(ns)
        defs[get(nf,1)[0].decode()] = get(nf,2)[0]
def parse_schema(b):
    fs = fields(b)
    s = {}
    r = get(fs, 1)
    if r: s['ref'] = r[0].decode().replace('#/definitions/','')
    ext = {}
    for na in get(fs, 31):
        nf = fields(na); name = get(nf,1)[0].decode()
        anyf = fields(get(nf,2)[0]); y = get(anyf,2)
        ext[name] = y[0].decode() if y else ''
    s['ext'] = ext
    it = get(fs, 23)
    if it:
        sc = get(fields(it[0]), 1)
        if sc: s['items'] = parse_schema(sc[0])
    pr = get(fs, 25)
    props = {}
    if pr:
        for ns in get(fields(pr[0]), 1):
            nf = fields(ns); props[get(nf,1)[0].decode()] = parse_schema(get(nf,2)[0])
    s['props'] = props
    ap = get(fs, 21)
    if ap:
        sc = get(fields(ap[0]), 1)
        if sc: s['addl'] = parse_schema(sc[0])
    return s
S = {k: parse_schema(v) for k, v in defs.items()}
import re
def yl(v):  # tiny yaml list/scalar parse
    v = v.strip()
    return v
gvk = []
for name, s in S.items():
    g = s['ext'].get('x-kubernetes-group-version-kind')
    if g:
        for item in g.split('- ')[1:]:
            kv = {}
            for line in item.split('\n'):
                if ':' in line:
                    a, b = line.split(':', 1); kv[a.strip()] = b.strip().strip('"')
            gvk.append((kv.get('group',''), kv.get('version',''), kv.get('kind',''), name))
# field info
def target(s):
    if 'ref' in s: return s['ref']
    return None
# determine which defs matter (contain patch strategy somewhere)
memo = {}
def interesting(name, stack=()):
    if name in memo: return memo[name]
    if name in stack: return False
    s = S.get(name)
    if not s: return False
    res = False
    for f, fs in s['props'].items():
        if field_interesting(fs, stack + (name,)): res = True
    if 'addl' in s and field_interesting(s['addl'], stack+(name,)): res = True
    memo[name] = res
    return res
def field_interesting(fs, stack):
    if 'x-kubernetes-patch-strategy' in fs['ext']: return True
    for sub in [fs, fs.get('items'), fs.get('addl')]:
        if sub and 'ref' in sub and interesting(sub['ref'], stack): return True
    return False
for n in S: interesting(n)
memo.clear()
for n in S: interesting(n)
out = []
for g, v, k, name in sorted(gvk):
    if interesting(name): out.append('G %s %s %s %s' % (g or '-', v, k, name))
for name in sorted(S):
    if not interesting(name): continue
    out.append('D ' + name)
    s = S[name]
    items = list(s['props'].items())
    if 'addl' in s: items.append(('*', s['addl']))
    for f, fs in sorted(items):
        if not field_interesting(fs, ()): continue
        ext = fs['ext']
        strat = ext.get('x-kubernetes-patch-strategy', '-').strip() or '-'
        keys = []
        lmk = ext.get('x-kubernetes-list-map-keys')
        if lmk:
            keys = [x.strip().strip('-').strip().strip('"') for x in lmk.strip().split('\n') if x.strip()]
        elif 'x-kubernetes-patch-merge-key' in ext:
            keys = [ext['x-kubernetes-patch-merge-key'].strip()]
        ref = '-'
        shape = 'v'
        if 'ref' in fs: ref = fs['ref']
        elif fs.get('items') and 'ref' in fs['items']: ref = fs['items']['ref']; shape = 'l'
        elif fs.get('addl') and 'ref' in fs['addl']: ref = fs['addl']['ref']; shape = 'm'
        if ref != '-' and not interesting(ref): ref = '-'
        out.append('F %s %s %s %s %s' % (f, shape, strat, ','.join(keys) or '-', ref))
print('\n'.join(out))
